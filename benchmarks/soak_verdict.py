"""The soak run's samples, its verdict and its plot (pure: no stack, files only for the PNG).

Verdict, per the issue: every lag bounded, freshness p95 within 30 s, and no component's
memory growing more than 10 % between the 10-minute mark and the end.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Sample:
    """One 30-second observation of the whole pipeline."""

    t: float  # seconds since the soak started
    lags: dict[str, int | None] = field(default_factory=dict)  # sink (and "flink") -> messages
    marks: dict[str, int] = field(default_factory=dict)  # topic -> sum of high watermarks
    freshness_p95: dict[str, float | None] = field(default_factory=dict)  # raw sink -> s
    # component -> PSS MiB without shared memory segments, and the shared part apart: a
    # segment (PostgreSQL's shared_buffers) is sized at start and fills as it is touched
    memory_mb: dict[str, float] = field(default_factory=dict)
    shared_mb: dict[str, float] = field(default_factory=dict)
    cpu_cores: dict[str, float] = field(default_factory=dict)  # component -> cores busy
    checkpoint_ms: float | None = None
    event_log_rows: int | None = None
    event_log_mb: float | None = None
    runs: dict[str, int] = field(default_factory=dict)  # status -> runs created since start


@dataclass
class Check:
    name: str
    passed: bool
    detail: str


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (x, y) points; 0 for fewer than two."""
    if len(points) < 2:
        return 0.0
    xs, ys = zip(*points, strict=True)
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return 0.0 if var == 0 else sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var


def topic_rate(samples: list[Sample], topic: str) -> float:
    """Messages/s arriving on `topic` over the run, from the high watermarks."""
    seen = [(s.t, s.marks[topic]) for s in samples if topic in s.marks]
    if len(seen) < 2 or seen[-1][0] == seen[0][0]:
        return 0.0
    return (seen[-1][1] - seen[0][1]) / (seen[-1][0] - seen[0][0])


def lag_checks(
    samples: list[Sample], topic_of: dict[str, str], max_lag_s: float, max_growth: float = 0.05
) -> list[Check]:
    """Bounded lag: over the second half the lag's trend is under `max_growth` of the topic's
    arrival rate, and the final lag (median of the last 3 samples) is no higher than the
    larger of max_lag_s of traffic and the highest lag of the first half."""
    checks = []
    half = samples[-1].t / 2 if samples else 0
    for name, topic in topic_of.items():
        known = [(s.t, s.lags[name]) for s in samples if s.lags.get(name) is not None]
        if not known:
            checks.append(Check(f"lag {name}", False, "never measured"))
            continue
        rate = topic_rate(samples, topic)
        growth = slope([(t, v) for t, v in known if t >= half])
        final = statistics.median(v for _, v in known[-3:])
        first_half = max((v for t, v in known if t < half), default=0)
        bound = max(max_lag_s * rate, first_half)
        ok = growth <= max_growth * rate and final <= bound
        behind = f" ({final / rate:.1f} s of {topic} at {rate:,.1f}/s)" if rate > 0 else ""
        checks.append(
            Check(
                f"lag {name}",
                ok,
                f"final {final:,.0f} msgs{behind}, bound {bound:,.0f}, max "
                f"{max(v for _, v in known):,}, second-half trend {growth:+,.1f} msgs/s",
            )
        )
    return checks


def freshness_checks(overall_p95: dict[str, float | None], bound_s: float) -> list[Check]:
    """Freshness p95 (ingested_at - kafka_timestamp over every row of the run) within bound_s."""
    return [
        Check(
            f"freshness {sink}",
            p95 is not None and p95 <= bound_s,
            "no rows" if p95 is None else f"p95 {p95:.1f} s (bound {bound_s:g} s)",
        )
        for sink, p95 in overall_p95.items()
    ]


def memory_checks(
    samples: list[Sample], baseline_s: float, max_growth: float = 0.10, exclude=()
) -> list[Check]:
    """No component's memory grows by more than max_growth from baseline_s to the end.

    Each end is the median of up to three samples, so one spike does not decide.
    """
    checks = []
    names = sorted({n for s in samples for n in s.memory_mb} - set(exclude))
    near = sorted(samples, key=lambda s: abs(s.t - baseline_s))[:3]
    last = samples[-3:]
    for name in names:
        base = [s.memory_mb[name] for s in near if name in s.memory_mb]
        end = [s.memory_mb[name] for s in last if name in s.memory_mb]
        if not base or not end:
            checks.append(Check(f"memory {name}", False, "not measured at both ends"))
            continue
        b, e = statistics.median(base), statistics.median(end)
        growth = (e - b) / b if b else 0.0
        checks.append(
            Check(
                f"memory {name}",
                growth <= max_growth,
                f"{b:,.0f} MiB at {baseline_s / 60:.0f} min -> {e:,.0f} MiB at the end "
                f"({growth:+.1%})",
            )
        )
    return checks


def render_report(title: str, setup: str, checks: list[Check], extra: list[str], plot: str) -> str:
    """The soak report as Markdown."""
    passed = all(c.passed for c in checks)
    out = [f"# {title}", "", setup, "", f"**Verdict: {'PASS' if passed else 'FAIL'}**", ""]
    out += ["| check | result | detail |", "|---|---|---|"]
    out += [f"| {c.name} | {'pass' if c.passed else 'FAIL'} | {c.detail} |" for c in checks]
    out += ["", f"![soak series]({plot})", ""]
    out += [f"- {line}" for line in extra]
    return "\n".join(out) + "\n"


def plot(samples: list[Sample], path: Path, freshness_buckets: dict[str, list[tuple]]) -> None:
    """Six panels: lags, freshness p95, memory, CPU, checkpoint duration, Dagster."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = [s.t / 60 for s in samples]
    fig, axes = plt.subplots(3, 2, figsize=(14, 12), sharex=True)

    def series(ax, values: dict[str, list], title: str, ylabel: str) -> None:
        for name, ys in sorted(values.items()):
            ax.plot(minutes, ys, label=name, linewidth=1.2)
        ax.set_title(title)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if values:
            ax.legend(fontsize=7, loc="upper left")

    def collect(attr: str) -> dict[str, list]:
        names = sorted({n for s in samples for n in getattr(s, attr)})
        return {n: [getattr(s, attr).get(n) for s in samples] for n in names}

    series(axes[0][0], collect("lags"), "Lag (messages behind the high watermark)", "messages")
    ax = axes[0][1]
    for sink, points in sorted(freshness_buckets.items()):
        ax.plot([t / 60 for t, _ in points], [v for _, v in points], label=f"{sink} (all rows)")
    for sink, ys in collect("freshness_p95").items():
        ax.plot(minutes, ys, linestyle=":", label=f"{sink} (probes)")
    ax.axhline(30, color="red", linewidth=0.8)
    ax.set_title("Freshness p95 per 30 s (ingested_at - kafka_timestamp)")
    ax.set_ylabel("seconds")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    series(
        axes[1][0],
        collect("memory_mb"),
        "Memory (PSS without shared segments) per component",
        "MiB",
    )
    series(axes[1][1], collect("cpu_cores"), "CPU per component", "cores")
    series(
        axes[2][0],
        {"checkpoint": [s.checkpoint_ms for s in samples]},
        "Flink checkpoint duration (latest completed)",
        "ms",
    )
    ax = axes[2][1]
    ax.plot(minutes, [s.event_log_rows for s in samples], label="event log rows (max id)")
    ax.set_ylabel("rows")
    ax2 = ax.twinx()
    statuses = sorted({k for s in samples for k in s.runs})
    for status in statuses:
        ax2.plot(minutes, [s.runs.get(status, 0) for s in samples], "--", label=f"runs {status}")
    ax2.set_ylabel("runs created since start")
    ax.set_title("Dagster: event log and runs")
    ax.grid(alpha=0.3)
    lines = ax.get_legend_handles_labels()
    more = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=7, loc="upper left")
    for ax in axes[2]:
        ax.set_xlabel("minutes")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
