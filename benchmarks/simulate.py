"""Benchmark: simulating a dealer group (target: 30,000 customers in under 2 minutes).

Runs the simulation several times per size and reports the median wall time, events per
second, and, as a same-process baseline, the time of writing the events to Parquet.

    .venv/bin/python benchmarks/simulate.py [--repeats 5] [--sizes 30000,100000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from cjm_ml.simulation import SimulationConfig, simulate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sizes", default="30000,100000")
    args = parser.parse_args()
    print("| customers | events | simulate (median s) | events/s | write Parquet (median s) |")
    print("|---:|---:|---:|---:|---:|")
    for size in (int(s) for s in args.sizes.split(",")):
        sim_times, write_times, n_events = [], [], 0
        for _ in range(args.repeats):
            started = time.perf_counter()
            group = simulate(SimulationConfig(customers=size, seed=7))
            sim_times.append(time.perf_counter() - started)
            n_events = len(group.events)
            with tempfile.TemporaryDirectory() as tmp:
                started = time.perf_counter()
                group.events.to_parquet(Path(tmp) / "events.parquet", index=False)
                write_times.append(time.perf_counter() - started)
        sim = statistics.median(sim_times)
        print(
            f"| {size:,} | {n_events:,} | {sim:.2f} | {n_events / sim:,.0f} "
            f"| {statistics.median(write_times):.2f} |"
        )


if __name__ == "__main__":
    main()
