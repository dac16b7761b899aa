"""Benchmark: the three feature tables from a 10-million-event log.

Targets on the 2-core machine: all three tables in under 30 s, within 3x of one plain pandas
group-by pass over the same events (counts per customer and event type before each customer's
first lead cutoff), with peak memory under 4 GB. Also timed: the same tables with the shipped
profile features declared (``PROFILE_FEATURES``) and with the generic features of every
touchpoint (``cjm features --generic``).

The event log is simulated once and cached. Each measurement runs in a fresh process so that
peak memory (max RSS) belongs to that job alone; times are medians of ``--repeats`` runs, and
the floor and the feature build are timed in the same process, one after the other.

    .venv/bin/python benchmarks/features.py [--customers 500000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
from cache import CACHE, simulator_digest


def _events_path(customers: int) -> Path:
    path = CACHE / f"events-{customers}-{simulator_digest()}.parquet"
    if not path.exists():
        from cjm_ml.simulation import SimulationConfig, simulate

        print(f"simulating {customers:,} customers (cached at {path}) ...", file=sys.stderr)
        group = simulate(SimulationConfig(customers=customers, seed=7), progress=True)
        CACHE.mkdir(parents=True, exist_ok=True)
        group.events.to_parquet(path, index=False)
    return path


def _floor(events: pd.DataFrame, cutoffs: pd.DataFrame) -> float:
    """One plain pandas pass: counts per customer and event type before the customer's cutoff."""
    started = time.perf_counter()
    merged = events[["customer_id", "ts", "event_type"]].merge(cutoffs, on="customer_id")
    before = merged[merged["ts"] < merged["cutoff_ts"]]
    before.groupby(["customer_id", "event_type"], observed=True).size()
    return time.perf_counter() - started


def _features(events: pd.DataFrame, declared: str = "") -> tuple[float, dict[str, int]]:
    """The three tables' build time and sizes; ``declared``: "profiles", "generic" or none."""
    from cjm_ml.features.pipeline import build_feature_table
    from cjm_ml.features.timeline import Timeline
    from cjm_ml.featureset import PROFILE_FEATURES, generic_features, load_features_file

    features = {
        "": (),
        "profiles": load_features_file(PROFILE_FEATURES),
        "generic": generic_features(sorted(events["event_type"].astype(str).unique())),
    }[declared]
    started = time.perf_counter()
    timeline = Timeline(events)
    sizes = {
        task: len(build_feature_table(timeline, task, declared=features))
        for task in ("lead_leakage", "no_show", "service_defection")
    }
    return time.perf_counter() - started, sizes


def child(path: Path, mode: str, repeats: int) -> None:
    """Run one measurement in this process and print it as JSON."""
    events = pd.read_parquet(path)
    out: dict[str, object] = {"events": len(events)}
    if mode == "time":
        from cjm_ml.features.instances import build_instances

        leads = build_instances(events, "lead_leakage")
        cutoffs = leads.groupby("customer_id", as_index=False)["cutoff_ts"].min()
        out["floor_s"] = [_floor(events, cutoffs) for _ in range(repeats)]
    if mode in ("time", "memory"):
        runs = [_features(events) for _ in range(repeats)]
        out["features_s"] = [r[0] for r in runs]
        out["instances"] = runs[0][1]
    if mode == "time":
        for declared in ("profiles", "generic"):
            out[f"{declared}_s"] = [_features(events, declared)[0] for _ in range(repeats)]
    out["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=500_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", choices=["time", "memory", "read"])
    parser.add_argument("--path", type=Path)
    args = parser.parse_args()
    if args.child:
        child(args.path, args.child, args.repeats)
        return
    path = _events_path(args.customers)

    def run(mode: str, repeats: int) -> dict[str, object]:
        cmd = [
            sys.executable,
            __file__,
            "--child",
            mode,
            "--path",
            str(path),
            "--repeats",
            str(repeats),
        ]
        return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)

    timed = run("time", args.repeats)
    load_only = run("read", 0)  # reading the events alone, for the memory baseline
    memory = run("memory", 1)
    n = int(timed["events"])  # type: ignore[call-overload]
    feat = statistics.median(timed["features_s"])  # type: ignore[arg-type]
    floor = statistics.median(timed["floor_s"])  # type: ignore[arg-type]
    print(f"events: {n:,}; instances: {timed['instances']}")
    print("| measure | figure | target |")
    print("|---|---:|---:|")
    print(f"| all three feature tables (median of {args.repeats}) | {feat:.1f} s | < 30 s |")
    print(f"| events per second | {n / feat:,.0f} | |")
    print(f"| plain pandas group-by pass (floor, same process) | {floor:.1f} s | |")
    print(f"| ratio to the floor | {feat / floor:.2f}x | < 3x |")
    for declared in ("profiles", "generic"):
        took = statistics.median(timed[f"{declared}_s"])  # type: ignore[arg-type]
        print(f"| all three, with the {declared} features declared | {took:.1f} s | |")
    print(
        f"| peak memory, read events + build all three | {memory['max_rss_mb']:,.0f} MB | < 4 GB |"
    )
    print(f"| peak memory, read events only | {load_only['max_rss_mb']:,.0f} MB | |")


if __name__ == "__main__":
    main()
