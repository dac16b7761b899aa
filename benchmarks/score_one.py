"""Benchmark: scoring one customer, as the scoring API does per request.

For each task, samples customers of the demo group with an open instance at a fixed ``now``
and times, per customer, what a request does after reading the store: the customer's open
instances at ``now``, their point-in-time features, and the calibrated risk of the champion
bundle (``models/<task>/``). Prints the median and p99 latency per task. The events are the
demo group's (``make demo``); each customer's events are sliced out beforehand, as the store
would return them.

    .venv/bin/python benchmarks/score_one.py [--customers 200] [--now 2026-09-15T12:00Z]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd

from cjm_ml.events import sort_events
from cjm_ml.features.instances import open_instances
from cjm_ml.features.pipeline import open_feature_columns
from cjm_ml.params import TASKS, Task
from cjm_ml.training.model import RiskModel

ROOT = Path(__file__).resolve().parent.parent


def score(events: pd.DataFrame, task: Task, now: pd.Timestamp, model: RiskModel) -> np.ndarray:
    """What a request computes: open instances at ``now``, their features, their risk."""
    return model.predict_risk(open_feature_columns(events, task, now))


def _customers(events: pd.DataFrame, task: Task, now: pd.Timestamp, n: int) -> list[pd.DataFrame]:
    """``n`` customers with an open instance at ``now`` (fixed seed), each its own table."""
    ids = open_instances(events, task, now)["customer_id"].drop_duplicates()
    chosen = set(ids.sample(min(n, len(ids)), random_state=7))
    mine = events[events["customer_id"].isin(chosen)]
    return [sort_events(g) for _, g in mine.groupby("customer_id", sort=True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--now", default="2026-09-15T12:00Z")
    parser.add_argument("--events", type=Path, default=ROOT / "data/demo/events.parquet")
    parser.add_argument("--models", type=Path, default=ROOT / "models")
    parser.add_argument("--tasks", nargs="*", default=list(TASKS), choices=TASKS)
    args = parser.parse_args()
    now = pd.Timestamp(args.now)
    events = pd.read_parquet(args.events)
    print(f"now {now}; {args.customers} customers per task with an open instance")
    print("| task | customers | events per customer (median) | median ms | p99 ms |")
    print("|---|---:|---:|---:|---:|")
    for task in args.tasks:
        model = RiskModel.load(args.models / task)
        customers = _customers(events, task, now, args.customers)
        for mine in customers[:10]:  # warm up caches and lazy imports
            score(mine, task, now, model)
        times = []
        for mine in customers:
            started = time.perf_counter()
            risk = score(mine, task, now, model)
            times.append((time.perf_counter() - started) * 1000)
            assert len(risk) >= 1
        sizes = statistics.median(len(c) for c in customers)
        print(
            f"| {task} | {len(customers)} | {sizes:.0f} | {statistics.median(times):.2f} "
            f"| {np.percentile(times, 99):.2f} |"
        )


if __name__ == "__main__":
    main()
