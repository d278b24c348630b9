"""Results of `bench/sse.py` and the tables it prints (ours | baseline | ratio), with targets."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from bench.sse_load import Report

TTFB_TARGET_S = 2.0  # issue #20's targets
RSS_TARGET_KB = 20.0
LATENCY_TARGET_MS = 30.0


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


@dataclass
class Sample:
    """The server at one moment: streams (fds above the start), fds and Redis clients."""

    at: float
    streams: int
    fds: list[int]
    redis_total: int
    redis_by_worker: list[int]


@dataclass
class StormResult:
    """What one side's storm (and loaded-latency) measured."""

    requested: int = 0
    workers: list[int] = field(default_factory=list)
    opened: Report = field(default_factory=Report)
    held: Report = field(default_factory=Report)
    rss_before_kb: int = 0
    rss_held_kb: int = 0
    open_cores: float = 0.0
    open_cpu_seconds: float = 0.0  # the workers', while the storm opened
    open_outside_cores: float = 0.0
    hold_cores: float = 0.0
    samples: list[Sample] = field(default_factory=list)  # before, while opening, holding
    subscribers: Report = field(default_factory=Report)
    published: int = 0
    latency: Report = field(default_factory=Report)
    publish_cores: float = 0.0
    publish_outside_cores: float = 0.0
    held_after_latency: int | None = None
    notes: list[str] = field(default_factory=list)

    def at_fraction(self, fraction: float) -> Sample | None:
        """Return the first sample with at least `fraction` of the requested streams open."""
        want = max(1, int(self.requested * fraction))
        return next((s for s in self.samples if s.streams >= want), None)


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


Rows = list[tuple[str, float | None, str]]


def print_table(ours: Rows, base: Rows | None, base_name: str = "baseline") -> None:
    """Print rows side by side: ours | the baseline's (or `skipped`) | ours/baseline."""
    table = [("measure", "ours", base_name, f"ours/{base_name}")]
    for i, (label, value, text) in enumerate(ours):
        _, base_value, base_text = base[i] if base else (label, None, "skipped")
        table.append((label, text, base_text, ratio(value, base_value)))
    widths = [max(len(row[i]) for row in table) for i in range(4)]
    for i, row in enumerate(table):
        print("  ".join(c.ljust(w) if j == 0 else c.rjust(w) for j, (c, w) in enumerate(
            zip(row, widths, strict=True))))  # fmt: skip
        if i == 0:
            print("  ".join("-" * w for w in widths))


def report(results: dict[str, Result], header: str, hold: float) -> None:
    """Print the idle/latency table (ours | baseline | ratio) and the notes."""
    print(header)
    base = results.get("baseline")
    print_table(rows(results["ours"], hold), rows(base, hold) if base else None)
    for name, result in results.items():
        for note in result.notes:
            print(f"[{name}] {note}")
        for phase, got in (("idle", result.idle), ("latency", result.subscribers)):
            for reason, n in got.failures.most_common():
                print(f"[{name}] {phase} handshake failures: {n} x {reason}")
        if result.idle.held_at_first_failure is not None:
            print(f"[{name}] failures began with ~{result.idle.held_at_first_failure:,} held")


# --- the storm scenarios -------------------------------------------------------------------


def quantile_ms(values: list[float], q: float) -> float:
    """Return the `q` quantile (0..1, nearest rank) of seconds, in ms (0 without values)."""
    ordered = sorted(values)
    return ordered[int(q * (len(ordered) - 1))] * 1e3 if ordered else 0.0


def rss_per_stream_kb(r: StormResult) -> tuple[float | None, float | None]:
    """Return the workers' RSS per held stream: (total, increment over the start), in KiB."""
    if not r.held.open:
        return None, None
    return r.rss_held_kb / r.held.open, (r.rss_held_kb - r.rss_before_kb) / r.held.open


def _opening_rows(r: StormResult, hold: float) -> Rows:
    o = r.opened
    failed = sum(o.failures.values())
    top = o.failures.most_common(1)
    span, est_span = o.last_start - o.first_start, o.last_confirmed - o.first_start
    start_rate = (o.started - 1) / span if span > 0 else 0.0
    est_rate = o.confirmed / est_span if est_span > 0 else 0.0
    ttfb = [quantile_ms(o.ttfb, q) for q in (0.5, 0.99, 1.0)]
    shake = [quantile_ms(o.handshakes, q) for q in (0.5, 0.99, 1.0)]
    return [
        ("storm streams requested", r.requested, f"{r.requested:,}"),
        ("  attempts started", o.started, f"{o.started:,}"),
        ("  established (got retry:)", o.confirmed, f"{o.confirmed:,}"),
        (f"  still open after {hold:g} s hold", r.held.open, f"{r.held.open:,}"),
        ("  failed", failed, f"{failed:,}" + (f" ({top[0][0]})" if top else "")),
        ("  starts per second achieved", start_rate, f"{start_rate:,.0f}"),
        ("  established per second", est_rate, f"{est_rate:,.0f}"),
        ("  load schedule lag, max (ms)", o.late * 1e3, f"{o.late * 1e3:,.0f}"),
        ("  time to first byte p50 (ms)", ttfb[0], f"{ttfb[0]:,.1f}"),
        ("  time to first byte p99 / max (ms)", ttfb[1], f"{ttfb[1]:,.1f} / {ttfb[2]:,.0f}"),
        ("  handshake (retry:) p50 (ms)", shake[0], f"{shake[0]:,.1f}"),
        ("  handshake (retry:) p99 / max (ms)", shake[1], f"{shake[1]:,.1f} / {shake[2]:,.0f}"),
    ]


def _server_rows(r: StormResult) -> Rows:
    total, each = rss_per_stream_kb(r)
    before = r.samples[0] if r.samples else None
    at10, holding = r.at_fraction(0.1), (r.samples[-1] if r.samples else None)
    redis_texts = [f"{s.redis_total}" if s else "-" for s in (before, at10, holding)]
    per_worker = [str(s.redis_by_worker) if s else "-" for s in (at10, holding)]
    confirmed = r.opened.confirmed
    per_open = r.open_cpu_seconds * 1e3 / confirmed if confirmed else None
    return [
        ("workers' RSS before (MiB)", r.rss_before_kb, f"{r.rss_before_kb / 1024:,.1f}"),
        ("workers' RSS holding (MiB)", r.rss_held_kb, f"{r.rss_held_kb / 1024:,.1f}"),
        ("RSS per held stream, total (KiB)", total, f"{total:.1f}" if total else "-"),
        ("RSS per held stream, increment (KiB)", each, f"{each:.1f}" if each else "-"),
        ("workers' CPU opening (cores)", r.open_cores, f"{r.open_cores:.3f}"),
        ("  per stream established (ms)", per_open, f"{per_open:.2f}" if per_open else "-"),
        ("  CPU of processes outside bench", r.open_outside_cores,
         f"{r.open_outside_cores:.3f}"),
        ("workers' CPU holding (cores)", r.hold_cores, f"{r.hold_cores:.3f}"),
        ("Redis clients before / 10% / holding", holding.redis_total if holding else None,
         " / ".join(redis_texts)),
        ("Redis clients per worker 10% -> held", max(holding.redis_by_worker, default=0)
         if holding else None, " -> ".join(per_worker)),
        ("open fds per worker holding", sum(holding.fds) if holding else None,
         str(holding.fds) if holding else "-"),
    ]  # fmt: skip


def _loaded_rows(r: StormResult) -> Rows:
    lat = r.latency.samples
    expected = r.published * r.subscribers.open
    pcts = [percentile(lat, q) if len(lat) > 1 else None for q in (50, 95, 99)]
    still = r.held_after_latency
    return [
        ("loaded: latency subscribers open", r.subscribers.open, f"{r.subscribers.open:,}"),
        ("loaded: events received / expected", len(lat) / expected if expected else None,
         f"{len(lat):,} / {expected:,}"),
        ("loaded: publish->receive p50 (ms)", pcts[0], f"{pcts[0]:.1f}" if pcts[0] else "-"),
        ("loaded: publish->receive p95 (ms)", pcts[1], f"{pcts[1]:.1f}" if pcts[1] else "-"),
        ("loaded: publish->receive p99 (ms)", pcts[2], f"{pcts[2]:.1f}" if pcts[2] else "-"),
        ("loaded: workers' CPU publishing (cores)", r.publish_cores, f"{r.publish_cores:.3f}"),
        ("  CPU of processes outside bench", r.publish_outside_cores,
         f"{r.publish_outside_cores:.3f}"),
        ("loaded: storm streams still open after", still, f"{still:,}" if still is not None
         else "-"),
    ]  # fmt: skip


def storm_rows(r: StormResult, hold: float, loaded: bool) -> Rows:
    """Return the storm table's rows for one side (and loaded-latency's, if it ran)."""
    load_cpu = r.held.cpu_seconds + r.latency.cpu_seconds
    extra = _loaded_rows(r) if loaded else []
    return [
        *_opening_rows(r, hold), *_server_rows(r), *extra,
        ("load generator CPU (s)", load_cpu, f"{load_cpu:.1f}"),
    ]  # fmt: skip


def storm_targets(r: StormResult, loaded: bool) -> list[str]:
    """Return issue #20's target lines (`target ...: met` / `NOT met`) for one side."""

    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    failed = sum(r.opened.failures.values())
    p99 = quantile_ms(r.opened.ttfb, 0.99) / 1e3
    ok = r.held.open == r.requested and failed == 0 and bool(r.opened.ttfb) and p99 <= TTFB_TARGET_S
    lines = [
        f"target storm: held {r.held.open:,} / {r.requested:,}, failures {failed:,}, "
        f"TTFB p99 {p99:.2f} s <= {TTFB_TARGET_S:g} s: {verdict(ok)}"
    ]
    _total, each = rss_per_stream_kb(r)
    lines.append(
        f"target RSS per held stream {each if each is not None else float('nan'):.1f} KB <= "
        f"{RSS_TARGET_KB:g} KB: {verdict(each is not None and each <= RSS_TARGET_KB)}"
    )
    if loaded:
        lat, expected = r.latency.samples, r.published * r.subscribers.open
        p99_ms = percentile(lat, 99) if len(lat) > 1 else float("inf")
        ok = p99_ms <= LATENCY_TARGET_MS and expected > 0 and len(lat) >= expected
        lines.append(
            f"target p99 under load {p99_ms:.1f} ms <= {LATENCY_TARGET_MS:g} ms "
            f"({r.subscribers.open:,} subscribers, {len(lat):,} / {expected:,} events, "
            f"{r.held.open:,} storm streams held): {verdict(ok)}"
        )
    lines.append(redis_target(r))
    return lines


def redis_target(r: StormResult) -> str:
    """Redis connections per worker, at 10 % of the streams and holding them all, vs the bound.

    Each process may hold at most its pool (`POOL_SIZE`) plus the hub's two
    connections, however many streams it serves: the target is that no worker
    goes past that bound as streams grow (a storm fills the pool early).
    """
    from backend.redis_store import POOL_SIZE

    bound = POOL_SIZE + 2
    at10, held = r.at_fraction(0.1), (r.samples[-1] if r.samples else None)
    if at10 is None or held is None:
        return "target Redis connections per process constant: NOT met (10% never reached)"
    ok = all(count <= bound for count in held.redis_by_worker)
    return (
        f"target Redis connections per process constant: per worker {at10.redis_by_worker} "
        f"with {at10.streams:,} streams, {held.redis_by_worker} with {held.streams:,} "
        f"(all clients {at10.redis_total} -> {held.redis_total}; bound {bound} per worker "
        f"whatever the streams): {'met' if ok else 'NOT met'}"
    )
