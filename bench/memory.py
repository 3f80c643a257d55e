"""Memory of the signals model over a simulated day: it must stay flat.

Feeds ``ServiceSignals`` for 200 services, one probe every 5 s each, for 24
simulated hours (17,280 samples per service, 3.5 million in all) on a
FakeClock, in process, snapshotting every service every 10 simulated minutes
(history and threshold timers advance there too). Prints the resident set
size every 2 simulated hours, then the cost of one ``snapshot()`` with full
windows.

    .venv/bin/python bench/memory.py [--services 200] [--hours 24] [--interval 5]
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from console.model.clock import FakeClock
from console.model.health import ProbeResult
from console.model.signals import ServiceSignals
from console.model.thresholds import SignalSpec, Threshold

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_mib() -> float:
    """Current resident set size (not the peak), from /proc."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE / (1 << 20)


def make_service(name: str) -> ServiceSignals:
    return ServiceSignals(
        name,
        interval=5.0,
        thresholds={
            "p95": Threshold(warning=250, critical=500),
            "error_rate": Threshold.model_validate({"warning": 1, "critical": 5, "for": "2m"}),
            "cache": Threshold(warning=80, critical=70, direction="below"),
        },
        signals={
            "cache": SignalSpec(json_path="metrics.cache_hit_rate", unit="%", scale=100.0),
            "memory": SignalSpec(json_path="metrics.memory_pct", unit="%"),
        },
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=200)
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--interval", type=float, default=5.0)
    parser.add_argument("--snapshot-every", type=float, default=600.0, help="simulated seconds")
    args = parser.parse_args()

    print(f"$ {' '.join([Path(sys.executable).name, *sys.argv])}")
    rng = random.Random(42)
    clock = FakeClock()
    start = clock.now()
    print(f"RSS before services: {rss_mib():7.1f} MiB")
    services = [make_service(f"svc-{i:03d}") for i in range(args.services)]
    medians = [rng.uniform(20, 300) for _ in services]
    steps = int(args.hours * 3600 / args.interval)
    report_every = int(7200 / args.interval)
    snapshot_every = max(1, int(args.snapshot_every / args.interval))
    print(
        f"{args.services} services × {steps:,} probes each = {args.services * steps:,} samples "
        f"over {args.hours:g} simulated hours"
    )
    print(f"RSS after creating:  {rss_mib():7.1f} MiB")
    began = time.perf_counter()
    snapshots = 0
    snapshot_time = 0.0
    # Pools of pre-drawn randomness, so the run measures Conn rather than `random`.
    spread = [rng.lognormvariate(0, 0.5) for _ in range(10_007)]
    bodies = [
        {"metrics": {"cache_hit_rate": rng.uniform(0.6, 0.99), "memory_pct": rng.uniform(30, 90)}}
        for _ in range(1_009)
    ]
    failures = {rng.randrange(10_007) for _ in range(100)}  # about 1% of probes fail
    draw = 0
    for step in range(1, steps + 1):
        now = clock.now()
        for service, median in zip(services, medians, strict=True):
            draw += 1
            if draw % 10_007 in failures:
                result = ProbeResult(service.name, now, 2000.0, "down", "HTTP 503", False, 503, None)
            else:
                latency = spread[draw % 10_007] * median
                body = bodies[draw % 1_009]
                result = ProbeResult(service.name, now, latency, "up", "HTTP 200", True, 200, body)
            service.record_probe(result)
        if step % snapshot_every == 0:
            t0 = time.perf_counter()
            for service in services:
                service.snapshot(now)
            snapshot_time += time.perf_counter() - t0
            snapshots += len(services)
        if step % report_every == 0:
            gc.collect()
            hours = (now - start) / 3600
            print(
                f"  simulated {hours:5.1f} h: RSS {rss_mib():7.1f} MiB"
                f"   ({time.perf_counter() - began:5.1f} s elapsed)"
            )
        clock.advance(args.interval)
    elapsed = time.perf_counter() - began
    total = args.services * steps
    print(f"fed {total:,} samples in {elapsed:.1f} s ({elapsed / total * 1e6:.1f} µs per sample incl. snapshots)")
    print(f"{snapshots:,} snapshots during the run: {snapshot_time / max(snapshots, 1) * 1e3:.3f} ms each")

    now = clock.now() - args.interval
    rounds = 10
    t0 = time.perf_counter()
    for _ in range(rounds):
        for service in services:
            service.snapshot(now)
    per = (time.perf_counter() - t0) / (rounds * len(services))
    live = services[0].snapshot(now)
    size = len(live.model_dump_json())
    print(f"snapshot() with full 1m/5m windows: {per * 1e3:.3f} ms per service ({rounds * len(services):,} calls)")
    print(f"  -> {len(services)} services every {args.interval:g} s = {per * len(services) / args.interval * 100:.1f}% of one core")
    print(f"  one ServiceLive as JSON: {size:,} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
