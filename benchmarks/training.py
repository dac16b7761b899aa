"""Benchmark: training time per task at 100k and 1M instances (target: 1M in under 60 s).

The instances are drawn with replacement from a simulated group's feature tables (real
feature distributions and labels; training cost depends on rows, features and trees, not on
whether a row is unique), then split by time exactly as ``cjm train`` does. For each task and
size it times the LightGBM fit (early stopping on the validation period, calibration) and,
as the same-process baseline, the logistic regression fit on the same training rows.

    .venv/bin/python benchmarks/training.py [--sizes 100000,1000000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from cjm_ml.features.pipeline import build_feature_table
from cjm_ml.features.timeline import Timeline
from cjm_ml.params import TASKS
from cjm_ml.simulation import SimulationConfig, simulate
from cjm_ml.training.evaluate import risk_metrics
from cjm_ml.training.model import RiskModel, baseline_matrix, logistic_baseline
from cjm_ml.training.split import time_split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--customers", type=int, default=60_000)
    args = parser.parse_args()
    group = simulate(SimulationConfig(customers=args.customers))
    timeline = Timeline(group.events)
    rng = np.random.default_rng(0)
    print(
        "| task | instances | LightGBM fit (median s) | trees | logistic fit (median s) "
        "| LightGBM / logistic | test AUC |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for task in TASKS:
        source = build_feature_table(timeline, task)
        source = source[source["label"].notna()].reset_index(drop=True)
        for size in (int(s) for s in args.sizes.split(",")):
            table = source.iloc[rng.integers(0, len(source), size)].reset_index(drop=True)
            split = time_split(table)
            y_train = split.train["label"].astype(int)
            lgb_times, logit_times, trees, auc = [], [], 0, 0.0
            for _ in range(args.repeats):
                started = time.perf_counter()
                model = RiskModel(task).fit(split.train, split.valid)
                lgb_times.append(time.perf_counter() - started)
                started = time.perf_counter()
                logistic_baseline(task).fit(baseline_matrix(split.train, task), y_train)
                logit_times.append(time.perf_counter() - started)
                trees = model.booster_.num_trees()
                y = split.test["label"].astype(int).to_numpy()
                auc = risk_metrics(y, model.predict_risk(split.test))["roc_auc"]
            lgb_s, logit_s = statistics.median(lgb_times), statistics.median(logit_times)
            print(
                f"| {task} | {size:,} | {lgb_s:.1f} | {trees} | {logit_s:.1f} "
                f"| {lgb_s / logit_s:.2f}x | {auc:.3f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
