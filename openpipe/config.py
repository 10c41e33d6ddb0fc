"""Typed settings: `config/settings.yaml` plus `OPENPIPE__SECTION__KEY` environment overrides.

Every component loads its settings through `load_settings()`. Unknown keys and bad
values fail at start with a `ConfigError` that names the key and what is allowed.
An override of a text setting (a password, a host) is taken exactly as given; only
settings of other types (numbers, booleans, lists, sections) parse the value as YAML.
"""

from __future__ import annotations

import hashlib
import os
import types
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin
from urllib.parse import urlsplit

import orjson
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG_PATH = REPO_ROOT / "config" / "settings.yaml"
ENV_PREFIX = "OPENPIPE__"
CONFIG_PATH_ENV = "OPENPIPE_CONFIG"

FaultKind = Literal[
    "malformed_json",
    "missing_field",
    "wrong_type",
    "null_value",
    "out_of_range",
    "future_timestamp",
    "stale_timestamp",
    "duplicate",
    "late",
]
FAULT_KINDS: tuple[str, ...] = FaultKind.__args__
Persona = Literal["healthy", "hypertensive", "diabetic", "tachycardic", "athlete"]
PERSONAS: tuple[str, ...] = Persona.__args__

Probability = Annotated[float, Field(ge=0.0, le=1.0)]
Count = Annotated[int, Field(ge=0)]
PositiveSeconds = Annotated[float, Field(gt=0)]
Port = Annotated[int, Field(ge=1, le=65535)]


class ConfigError(ValueError):
    """A configuration value is missing, unknown or out of its allowed range."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Range(Section):
    low: float
    high: float

    @model_validator(mode="before")
    @classmethod
    def _from_pair(cls, value: Any) -> Any:
        if isinstance(value, list | tuple):
            if len(value) != 2:
                raise ValueError("a range is a list of two numbers [low, high]")
            return {"low": value[0], "high": value[1]}
        return value

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) must not exceed high ({self.high})")
        return self

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high


class Topics(Section):
    wearables: str = "virtual-wearables"
    restaurants: str = "virtual-restaurants"
    gps: str = "virtual-gps"
    health_metrics_1min: str = "health-metrics-1min"
    health_metrics_10min: str = "health-metrics-10min"
    health_alerts: str = "health-alerts"

    def all(self) -> list[str]:
        return list(self.model_dump().values())


class ProducerTuning(Section):
    linger_ms: Count = 20
    batch_size: Annotated[int, Field(ge=1)] = 262144
    compression_type: Literal["none", "gzip", "snappy", "lz4", "zstd"] = "lz4"


class KafkaSettings(Section):
    bootstrap_servers: str = "127.0.0.1:9092"
    manage_local: bool = True
    controller_port: Port = 9093
    partitions: Annotated[int, Field(ge=1, le=1000)] = 3
    replication_factor: Annotated[int, Field(ge=1)] = 1
    topics: Topics = Topics()
    producer: ProducerTuning = ProducerTuning()
    heap_mb: Annotated[int, Field(ge=128)] = 512

    @property
    def broker_port(self) -> int:
        return int(self.bootstrap_servers.split(",")[0].rsplit(":", 1)[1])


class DeviceFamily(Section):
    count: Count
    bad_data_probability: Probability = 0.05
    fault_mix: dict[FaultKind, Annotated[float, Field(ge=0)]] = Field(
        default_factory=lambda: dict.fromkeys(FAULT_KINDS, 1.0)
    )

    @model_validator(mode="after")
    def _mix_has_weight(self) -> DeviceFamily:
        if self.bad_data_probability > 0 and not any(self.fault_mix.values()):
            raise ValueError("fault_mix needs at least one kind with a positive weight")
        return self


class WearableDevices(DeviceFamily):
    count: Count = 200
    heart_rate_interval_s: PositiveSeconds = 5
    blood_pressure_interval_s: PositiveSeconds = 60
    blood_sugar_interval_s: PositiveSeconds = 300
    personas: dict[Persona, Annotated[float, Field(ge=0)]] = Field(
        default_factory=lambda: dict.fromkeys(PERSONAS, 1.0)
    )

    @model_validator(mode="after")
    def _personas_have_weight(self) -> WearableDevices:
        if not any(self.personas.values()):
            raise ValueError("personas needs at least one persona with a positive weight")
        return self


class RestaurantDevices(DeviceFamily):
    count: Count = 20
    tables_per_restaurant: Annotated[int, Field(ge=1, le=10_000)] = 12
    order_interval_s: PositiveSeconds = 30


class GpsDevices(DeviceFamily):
    count: Count = 50
    interval_s: PositiveSeconds = 5


class Devices(Section):
    wearables: WearableDevices = WearableDevices()
    restaurants: RestaurantDevices = RestaurantDevices()
    gps: GpsDevices = GpsDevices()


class DatabaseSettings(Section):
    host: str = "127.0.0.1"
    port: Port = 5432
    name: str = "openpipe"
    dagster_name: str = "dagster"
    user: str = "openpipe"
    password: str = "openpipe"
    reader_user: str = "openpipe_reader"
    reader_password: str = "openpipe_reader"
    manage_local: bool = True
    superuser: str = "postgres"
    chunk_interval_hours: Annotated[int, Field(ge=1)] = 24
    retention_days: Annotated[int, Field(ge=1)] = 30
    partitions_ahead_days: Annotated[int, Field(ge=1)] = 3
    # auto: TimescaleDB when the server has it; on: require it; off: native partitions only.
    timescaledb: Literal["auto", "on", "off"] = "auto"
    # Raw hypertables' chunks older than this are compressed (columnstore), segmented by device.
    compress_after_days: Annotated[int, Field(ge=1)] = 7

    @model_validator(mode="before")
    @classmethod
    def _timescaledb_from_yaml_bool(cls, value: Any) -> Any:
        # YAML reads a bare on/off as a boolean; take it as the word the user wrote.
        if isinstance(value, dict) and isinstance(value.get("timescaledb"), bool):
            return {**value, "timescaledb": "on" if value["timescaledb"] else "off"}
        return value

    def dsn(self, *, database: str | None = None, reader: bool = False) -> str:
        """A libpq connection string for the app role (or the read-only role)."""
        user, password = (
            (self.reader_user, self.reader_password) if reader else (self.user, self.password)
        )
        return (
            f"host={self.host} port={self.port} dbname={database or self.name} "
            f"user={user} password={password}"
        )


class PipelineSettings(Section):
    batch_size: Annotated[int, Field(ge=1)] = 200000
    flush_interval_s: PositiveSeconds = 5
    max_batch_seconds: PositiveSeconds = 30
    sensor_min_interval_s: Annotated[int, Field(ge=1)] = 10
    # Sink sessions (openpipe/sinks/drain.py): a run drains micro-batch after micro-batch,
    # waiting at most poll_ms for messages when idle, and ends after session_seconds.
    poll_ms: Annotated[int, Field(ge=10, le=10000)] = 500
    session_seconds: Annotated[float, Field(ge=1, le=86400)] = 900
    # One materialization per sink per interval in which something was written.
    materialization_interval_s: Annotated[float, Field(ge=1, le=86400)] = 60
    # Concurrent sessions per sink, each with its own lock and partitions (p % N == shard).
    sink_shards: Annotated[int, Field(ge=1, le=64)] = 1


LatLon = tuple[Annotated[float, Field(ge=-90, le=90)], Annotated[float, Field(ge=-180, le=180)]]


class GpsRoute(Section):
    city: str
    waypoints: Annotated[list[LatLon], Field(min_length=2)]


class MonitoringSettings(Section):
    host: str = "127.0.0.1"
    simulator_port: Port = 8080
    viewer_port: Port = 8081
    kafka_ui_port: Port = 8082
    dagster_port: Port = 3000


class ViewerSettings(Section):
    """Limits the SQL viewer applies to every query it runs as the read-only role."""

    statement_timeout_ms: Annotated[int, Field(ge=100, le=600000)] = 5000
    lock_timeout_ms: Annotated[int, Field(ge=100, le=600000)] = 1000
    idle_in_transaction_timeout_ms: Annotated[int, Field(ge=100, le=600000)] = 10000
    row_cap: Annotated[int, Field(ge=1, le=1000000)] = 10000
    # A response's cells in bytes (as JSON text): the rows that would pass it are left out.
    max_result_bytes: Annotated[int, Field(ge=65536, le=1073741824)] = 4194304
    # A cell longer than this is cut to it and ends with a marker saying so.
    max_cell_bytes: Annotated[int, Field(ge=256, le=16777216)] = 65536
    # Queries running at once; one more is refused with 429 (memory stays bounded).
    max_queries_in_flight: Annotated[int, Field(ge=1, le=64)] = 4
    pool_size: Annotated[int, Field(ge=1, le=32)] = 4
    latest_rows: Annotated[int, Field(ge=1, le=1000)] = 20
    kafka_message_limit: Annotated[int, Field(ge=1, le=10000)] = 200
    kafka_timeout_s: Annotated[float, Field(gt=0, le=60)] = 5


class Thresholds(Section):
    heart_rate_bpm: float = 100
    systolic_mmhg: float = 140
    diastolic_mmhg: float = 90
    glucose_mg_dl: float = 180


class FlinkSettings(Section):
    manage_local: bool = True
    # The JobManager's REST address, which is also its web UI; the local stack serves it
    # on this URL's port.
    rest_url: str = "http://127.0.0.1:8083"
    # Where a browser opens the Flink web UI (links in Dagster). Empty: rest_url. Set it
    # where Dagster reaches the cluster by a name the browser cannot resolve (compose).
    ui_url: str = ""
    job_name: str = "openpipe-health-windows"
    task_slots: Annotated[int, Field(ge=1)] = 2
    parallelism: Annotated[int, Field(ge=1)] = 1
    # The health job's parallelism; 0: the wearables topic's partition count.
    job_parallelism: Annotated[int, Field(ge=0)] = 0
    # TaskManagers the local stack starts (compose: `--scale flink-taskmanager=N`).
    taskmanagers: Annotated[int, Field(ge=1, le=8)] = 1
    # The health job's state backend: heap (`hashmap`) or `rocksdb` (incremental checkpoints).
    state_backend: Literal["hashmap", "rocksdb"] = "hashmap"
    # How the health job's exactly-once Kafka sinks name their transactions: `pooling`
    # reuses a few ids per sink task (Kafka 3.0+); `incrementing` opens a new id per
    # checkpoint, which the broker keeps for transactional.id.expiration.ms (7 days).
    transaction_naming: Literal["pooling", "incrementing"] = "pooling"
    jobmanager_memory_mb: Annotated[int, Field(ge=512)] = 1024
    taskmanager_memory_mb: Annotated[int, Field(ge=768)] = 1536
    heart_rate_window_s: Annotated[int, Field(ge=1)] = 60
    blood_pressure_window_s: Annotated[int, Field(ge=1)] = 60
    blood_sugar_window_s: Annotated[int, Field(ge=1)] = 600
    watermark_delay_seconds: Annotated[int, Field(ge=0)] = 10
    idle_timeout_seconds: Annotated[int, Field(ge=1)] = 120
    checkpoint_interval_s: Annotated[int, Field(ge=1)] = 5
    thresholds: Thresholds = Thresholds()
    # Alert severity: "high" from this multiple of the threshold, "critical" from the next.
    severity_high_ratio: Annotated[float, Field(ge=1)] = 1.1
    severity_critical_ratio: Annotated[float, Field(ge=1)] = 1.25

    @model_validator(mode="before")
    @classmethod
    def _ui_defaults_to_rest(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("ui_url"):
            rest_url = data.get("rest_url", cls.model_fields["rest_url"].default)
            return {**data, "ui_url": rest_url}
        return data

    @field_validator("rest_url", "ui_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        try:
            valid_port = parts.port is None or parts.port > 0
        except ValueError:  # a port that is not a number from 0 to 65535
            valid_port = False
        if parts.scheme not in ("http", "https") or not parts.hostname or not valid_port:
            raise ValueError("must be an http(s) URL such as http://127.0.0.1:8083")
        return value.rstrip("/")

    @property
    def rest_port(self) -> int:
        """The port of `rest_url` (the local stack's JobManager listens there)."""
        parts = urlsplit(self.rest_url)
        return parts.port or (443 if parts.scheme == "https" else 80)

    @model_validator(mode="after")
    def _severity_ordered(self) -> FlinkSettings:
        if self.severity_high_ratio > self.severity_critical_ratio:
            raise ValueError("severity_high_ratio must not exceed severity_critical_ratio")
        return self


class ValidationSettings(Section):
    heart_rate_bpm: Range = Range(low=25, high=250)
    systolic_mmhg: Range = Range(low=50, high=260)
    diastolic_mmhg: Range = Range(low=25, high=180)
    glucose_mg_dl: Range = Range(low=20, high=700)
    table_number: Range = Range(low=1, high=500)
    quantity: Range = Range(low=1, high=100)
    unit_price_inr: Range = Range(low=0, high=100000)
    speed_kmh: Range = Range(low=0, high=300)
    accuracy_m: Range = Range(low=0, high=1000)
    max_future_seconds: Annotated[int, Field(ge=0)] = 300
    max_age_hours: Annotated[int, Field(ge=1)] = 24
    max_message_bytes: Annotated[int, Field(ge=1024)] = 1048576
    max_json_depth: Annotated[int, Field(ge=2)] = 32


class DagsterSettings(Section):
    # The webserver's port is monitoring.dagster_port, with the other listening ports.
    run_retries: Annotated[int, Field(ge=0)] = 3
    max_concurrent_runs: Annotated[int, Field(ge=1)] = 6
    # False where the simulator runs on its own (docker-compose starts it as a service):
    # Dagster then neither launches nor supervises one, so events are not produced twice.
    launch_simulator: bool = True


class AnalyticsSettings(Section):
    """Rollups, asset checks and alert reports in Dagster (openpipe_dagster.analytics)."""

    partitions_start: date = date(2026, 1, 1)
    rollup_delay_minutes: Annotated[int, Field(ge=0, le=59)] = 10
    stop_speed_kmh: Annotated[float, Field(ge=0, le=50)] = 2.0
    top_dishes: Annotated[int, Field(ge=1, le=20)] = 3
    freshness_bound_s: Annotated[float, Field(gt=0)] = 300
    check_window_minutes: Annotated[int, Field(ge=1, le=10080)] = 60
    bad_rate_sigmas: Annotated[float, Field(gt=0, le=20)] = 4.0
    bad_rate_min_messages: Annotated[int, Field(ge=1)] = 500
    stream_batch_tolerance: Annotated[float, Field(ge=0)] = 1e-6
    report_context_minutes: Annotated[int, Field(ge=1, le=1440)] = 15
    report_max_alerts: Annotated[int, Field(ge=1, le=100000)] = 500
    report_lookback_hours: Annotated[int, Field(ge=1, le=720)] = 24
    # At most one alert_report run per this many seconds, unless report_max_alerts wait.
    report_interval_s: Annotated[int, Field(ge=30, le=86400)] = 600
    reports_dir: str = ".openpipe/reports"
    observation_interval_s: Annotated[int, Field(ge=5)] = 60


class Settings(Section):
    kafka: KafkaSettings = KafkaSettings()
    devices: Devices = Devices()
    database: DatabaseSettings = DatabaseSettings()
    pipeline: PipelineSettings = PipelineSettings()
    gps_routes: Annotated[dict[str, GpsRoute], Field(min_length=1)]
    monitoring: MonitoringSettings = MonitoringSettings()
    flink: FlinkSettings = FlinkSettings()
    validation: ValidationSettings = ValidationSettings()
    dagster: DagsterSettings = DagsterSettings()
    viewer: ViewerSettings = ViewerSettings()
    analytics: AnalyticsSettings = AnalyticsSettings()

    def fingerprint(self) -> str:
        """A short stable hash of the effective settings (for 'deployed with config X')."""
        return hashlib.sha256(
            orjson.dumps(self.model_dump(), option=orjson.OPT_SORT_KEYS)
        ).hexdigest()[:12]


# Keys that moved, so that a file or an override that still uses one says where it went.
MOVED_KEYS = {
    "monitoring.flink_port": "the Flink REST and UI port is the port of flink.rest_url",
    "dagster.port": "the Dagster webserver port is monitoring.dagster_port",
}


def _unwrap(annotation: Any) -> Any:
    """`Annotated[X, ...]` and `X | None` -> X."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            rest = [arg for arg in get_args(annotation) if arg is not type(None)]
            if len(rest) != 1:
                return annotation
            annotation = rest[0]
        else:
            return annotation


def _declared_type(path: list[str]) -> Any:
    """The type `Settings` declares at a key path, or None where the path is not declared."""
    annotation: Any = Settings
    for part in path:
        annotation = _unwrap(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = annotation.model_fields.get(part)
            if field is None:
                return None
            annotation = field.annotation
        elif get_origin(annotation) is dict:
            annotation = get_args(annotation)[1]
        else:
            return None
    return annotation


def _is_text(annotation: Any) -> bool:
    """A setting whose value is text: `str`, or a choice among strings."""
    annotation = _unwrap(annotation)
    if get_origin(annotation) is Literal:
        return all(isinstance(choice, str) for choice in get_args(annotation))
    return annotation is str


def _override_value(name: str, path: list[str], text: str) -> Any:
    # A password such as 123456, `true` or `pa ss #1` is text; YAML would turn it into a
    # number, a boolean or `pa ss`. Only settings of other types read the value as YAML.
    if _is_text(_declared_type(path)) or not text.strip():
        return text
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{name}: value is not valid YAML: {exc}") from None


def _apply_env_overrides(raw: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    for name, text in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX):
            continue
        path = [part.lower() for part in name[len(ENV_PREFIX) :].split("__")]
        if not all(path):
            raise ConfigError(f"{name}: empty key segment; use OPENPIPE__SECTION__KEY")
        node = raw
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"{name}: {'.'.join(path)} is not inside a section")
            node = child
        node[path[-1]] = _override_value(name, path, text)
    return raw


def _describe(error: dict[str, Any]) -> str:
    key = ".".join(
        str(part)
        for part in error["loc"]
        if not str(part).startswith("function-") and part != "[key]"
    )
    if error["type"] == "extra_forbidden":
        moved = MOVED_KEYS.get(key)
        return f"{key}: unknown key ({moved})" if moved else f"{key}: unknown key"
    given = error.get("input")
    shown = "" if isinstance(given, dict | list) else f" (got {given!r})"
    return f"{key}: {error['msg']}{shown}"


def parse_settings(raw: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> Settings:
    """Validate a raw mapping (plus environment overrides) into `Settings`."""
    merged = _apply_env_overrides(
        orjson.loads(orjson.dumps(dict(raw))), os.environ if environ is None else environ
    )
    try:
        return Settings.model_validate(merged)
    except ValidationError as exc:
        problems = "; ".join(_describe(e) for e in exc.errors())
        raise ConfigError(f"invalid configuration: {problems}") from None


def load_settings(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Load the settings file (default: $OPENPIPE_CONFIG or config/settings.yaml)."""
    env = os.environ if environ is None else environ
    config_path = Path(path or env.get(CONFIG_PATH_ENV) or DEFAULT_CONFIG_PATH)
    try:
        raw = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ConfigError(f"configuration file not found: {config_path}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{config_path} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{config_path}: the top level must be a mapping of sections")
    return parse_settings(raw, env)
