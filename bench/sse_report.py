"""Results of `bench/sse.py` and the table it prints (ours | baseline | ratio)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from bench.sse_load import Report


@dataclass
class Result:
    """What one side measured; `notes` are printed under the table."""

    requested: int = 0
    idle: Report = field(default_factory=Report)
    held: Report = field(default_factory=Report)
    rss_before_kb: int = 0
    rss_loaded_kb: int = 0
    open_outside_cores: float = 0.0  # processes outside the benchmark, while opening
    hold_cores: float = 0.0
    hold_outside_cores: float = 0.0  # processes outside the benchmark
    redis_before: int = 0
    redis_during: int = 0
    subscribers: Report = field(default_factory=Report)
    published: int = 0
    latency: Report = field(default_factory=Report)
    publish_cores: float = 0.0
    publish_outside_cores: float = 0.0
    notes: list[str] = field(default_factory=list)


def percentile(samples: list[int], q: int) -> float:
    """Return the `q`th percentile of nanosecond samples, in ms."""
    return statistics.quantiles(samples, n=100, method="inclusive")[q - 1] / 1e6


def rows(r: Result, hold: float) -> list[tuple[str, float | None, str]]:
    """Return the table rows for one side: label, numeric value (for the ratio), text."""
    per_stream = (r.rss_loaded_kb - r.rss_before_kb) / r.held.open if r.held.open else None
    fail = r.idle.failures.most_common(1)
    expected = r.published * r.subscribers.open
    lat = r.latency.samples
    pcts = [percentile(lat, q) if len(lat) > 1 else None for q in (50, 95, 99)]
    opened_per_s = r.idle.confirmed / r.idle.connect_seconds if r.idle.connect_seconds else 0
    shakes = sorted(r.idle.handshakes)
    shake = [shakes[int(q * (len(shakes) - 1))] * 1e3 if shakes else 0.0 for q in (0.5, 0.99, 1)]
    return [
        ("idle streams requested", r.requested, f"{r.requested:,}"),
        ("  established (got retry:)", r.idle.confirmed, f"{r.idle.confirmed:,}"),
        (f"  still open after {hold:g} s hold", r.held.open, f"{r.held.open:,}"),
        ("  failed handshakes", sum(r.idle.failures.values()),
         f"{sum(r.idle.failures.values()):,}" + (f" ({fail[0][0]})" if fail else "")),
        ("  opened per second", opened_per_s, f"{opened_per_s:,.0f}"),
        ("  handshake p50 (ms)", shake[0], f"{shake[0]:,.0f}"),
        ("  handshake p99 / max (ms)", shake[1], f"{shake[1]:,.0f} / {shake[2]:,.0f}"),
        ("  CPU of processes outside bench", r.open_outside_cores,
         f"{r.open_outside_cores:.3f}"),
        ("server RSS before (MiB)", r.rss_before_kb, f"{r.rss_before_kb / 1024:,.1f}"),
        ("server RSS holding (MiB)", r.rss_loaded_kb, f"{r.rss_loaded_kb / 1024:,.1f}"),
        ("RSS per stream (KiB)", per_stream, f"{per_stream:.1f}" if per_stream else "-"),
        ("server CPU holding (cores)", r.hold_cores, f"{r.hold_cores:.3f}"),
        ("  CPU of processes outside bench", r.hold_outside_cores, f"{r.hold_outside_cores:.3f}"),
        ("Redis clients before", r.redis_before, f"{r.redis_before:,}"),
        ("Redis clients holding", r.redis_during, f"{r.redis_during:,}"),
        ("latency subscribers open", r.subscribers.open, f"{r.subscribers.open:,}"),
        ("events received / expected", len(lat) / expected if expected else None,
         f"{len(lat):,} / {expected:,}"),
        ("publish->receive p50 (ms)", pcts[0], f"{pcts[0]:.1f}" if pcts[0] else "-"),
        ("publish->receive p95 (ms)", pcts[1], f"{pcts[1]:.1f}" if pcts[1] else "-"),
        ("publish->receive p99 (ms)", pcts[2], f"{pcts[2]:.1f}" if pcts[2] else "-"),
        ("server CPU publishing (cores)", r.publish_cores, f"{r.publish_cores:.3f}"),
        ("  CPU of processes outside bench", r.publish_outside_cores,
         f"{r.publish_outside_cores:.3f}"),
        ("load generator CPU (s, both runs)",
         r.held.cpu_seconds + r.latency.cpu_seconds,
         f"{r.held.cpu_seconds + r.latency.cpu_seconds:.1f}"),
    ]  # fmt: skip


def ratio(value: float | None, base: float | None) -> str:
    """Return `value / base` as text, or `-` when either is missing or `base` is ~0."""
    if value is None or base is None or abs(base) < 1e-3:
        return "-"
    return f"{value / base:.2f}"


def report(results: dict[str, Result], header: str, hold: float) -> None:
    """Print the table (ours | baseline | ratio) and the notes."""
    ours_rows = rows(results["ours"], hold)
    base_rows = rows(results["baseline"], hold) if "baseline" in results else None
    table = [("measure", "ours", "baseline", "ours/baseline")]
    for i, (label, value, text) in enumerate(ours_rows):
        _, base, base_text = base_rows[i] if base_rows else (label, None, "skipped")
        table.append((label, text, base_text, ratio(value, base)))
    widths = [max(len(row[i]) for row in table) for i in range(4)]
    print(header)
    for i, row in enumerate(table):
        print("  ".join(c.ljust(w) if j == 0 else c.rjust(w) for j, (c, w) in enumerate(
            zip(row, widths, strict=True))))  # fmt: skip
        if i == 0:
            print("  ".join("-" * w for w in widths))
    for name, result in results.items():
        for note in result.notes:
            print(f"[{name}] {note}")
        for phase, got in (("idle", result.idle), ("latency", result.subscribers)):
            for reason, n in got.failures.most_common():
                print(f"[{name}] {phase} handshake failures: {n} x {reason}")
        if result.idle.held_at_first_failure is not None:
            print(f"[{name}] failures began with ~{result.idle.held_at_first_failure:,} held")
