"""Integration: the lag sensor and the sink asset against the real Kafka and Postgres."""

import random
import time

import dagster as dg
import pytest
import yaml

from openpipe.config import DEFAULT_CONFIG_PATH
from openpipe.sinks import SINKS
from openpipe.sinks.samples import encode, wearable_event
from openpipe_dagster.assets.sinks import build_sink_assets
from openpipe_dagster.resources import KafkaResource, PostgresResource, SettingsResource
from openpipe_dagster.jobs import sink_job
from openpipe_dagster.sensors.sinks import build_sink_sensor

pytestmark = pytest.mark.integration


@pytest.fixture
def resources(settings, make_topic, tmp_path):
    """Resources whose settings point the wearables sink at a fresh test topic."""
    topic = make_topic("dagster")
    raw = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    raw["kafka"]["topics"]["wearables"] = topic
    config = tmp_path / "settings.yaml"
    config.write_text(yaml.safe_dump(raw))
    db = settings.database
    return topic, {
        "settings_resource": SettingsResource(config_path=str(config)),
        "kafka": KafkaResource(bootstrap_servers=settings.kafka.bootstrap_servers),
        "postgres": PostgresResource(
            host=db.host, port=db.port, dbname=db.name, user=db.user, password=db.password
        ),
    }


def test_sensor_requests_a_run_on_lag_and_the_asset_drains_it(settings, resources, produce):
    topic, res = resources
    now = int(time.time() * 1000)
    rng = random.Random(4)
    produce(topic, [(b"k", encode(wearable_event(rng, now)), None) for _ in range(40)], now)
    spec = SINKS["wearable_readings"]
    sensor = build_sink_sensor(spec, sink_job(spec, settings), settings)
    with dg.instance_for_test() as instance:
        with dg.build_sensor_context(instance=instance, resources=res) as context:
            tick = sensor(context)
        (request,) = tick.run_requests
        assert request.run_key.startswith("wearable_readings-")
        with dg.build_sensor_context(instance=instance, resources=res, cursor=tick.cursor) as ctx:
            again = sensor(ctx)
        assert isinstance(again, dg.SkipReason), "same offsets, same key: no second run"

        result = dg.materialize(
            [build_sink_assets(settings)["wearable_readings"]], resources=res, instance=instance
        )
        assert result.success
        (event,) = result.get_asset_materialization_events()
        metadata = event.materialization.metadata
        assert metadata["rows_written"].value == 40
        assert metadata["lag_after"].value == 0
        assert metadata["storage"].value in {"native", "timescaledb"}

        with dg.build_sensor_context(instance=instance, resources=res) as context:
            caught_up = sensor(context)
        assert isinstance(caught_up, dg.SkipReason) or not caught_up.run_requests
