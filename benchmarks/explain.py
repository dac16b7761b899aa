"""Benchmark: friction drivers for one instance and for 100k, beside plain prediction.

For each task, with the demo's champion bundle (``models/<task>/``) and feature table
(``data/demo/features/<task>.parquet``; run ``make demo`` first):

- one instance, as the scoring API explains a score: a feature dict in, drivers up and down
  in dealer language, what-ifs and the recommended action out (``explain_row``); latency median
  and p99 over ``--instances`` rows, beside plain prediction of the same dict
  (``encode_row`` + LightGBM + calibration);
- a batch of ``--rows`` instances (drawn with replacement from the table): rows per second for
  plain prediction (``predict_risk``), native TreeSHAP alone (``pred_contrib``), and full
  explanations (``explain``: contributions, drivers, sentences, what-ifs, actions); medians of
  ``--repeats``;
- model size: the same task refitted with bigger trees (``--leaves``), its test AUC and batch
  explanation speed beside the champion's, so the AUC cost of small trees is on the table.

    .venv/bin/python benchmarks/explain.py [--rows 100000] [--instances 1000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cjm_ml.explain.drivers import DriverExplainer
from cjm_ml.params import TASKS, Task
from cjm_ml.training.evaluate import risk_metrics
from cjm_ml.training.model import RiskModel, TrainingParams
from cjm_ml.training.norms import group_norms
from cjm_ml.training.split import time_split

ROOT = Path(__file__).resolve().parent.parent


def _latency(
    call: Callable[[dict[str, Any]], object], rows: list[dict[str, Any]]
) -> tuple[float, float]:
    """Median and p99 of one call per row, in milliseconds (after a short warm-up)."""
    for row in rows[:20]:
        call(row)
    times = []
    for row in rows:
        started = time.perf_counter()
        call(row)
        times.append(time.perf_counter() - started)
    ms = np.array(times) * 1000
    return float(np.median(ms)), float(np.percentile(ms, 99))


def _rate(call: Callable[[pd.DataFrame], object], table: pd.DataFrame, repeats: int) -> float:
    """Rows per second of one call on the whole table, median of ``repeats``."""
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        call(table)
        seconds.append(time.perf_counter() - started)
    return len(table) / statistics.median(seconds)


def _test_auc(model: RiskModel, table: pd.DataFrame) -> float:
    test = time_split(table).test
    y = test["label"].astype(int).to_numpy()
    return float(risk_metrics(y, model.predict_risk(test))["roc_auc"])


def _predict_one(ex: DriverExplainer) -> Callable[[dict[str, Any]], object]:
    return lambda row: ex.risk(ex.encode_row(row))


def _shap_only(ex: DriverExplainer) -> Callable[[pd.DataFrame], object]:
    return lambda table: ex.contributions(ex.encode(table))


def _bench(
    task: Task, args: argparse.Namespace, rng: np.random.Generator
) -> tuple[str, str | None]:
    """One task's row of each table."""
    table = pd.read_parquet(args.demo / "features" / f"{task}.parquet")
    model = RiskModel.load(args.models / task)
    ex = DriverExplainer(model, group_norms(table, task))
    sample = table.iloc[rng.integers(0, len(table), args.instances)]
    dicts = sample[model.features].to_dict("records")
    pred_med, pred_p99 = _latency(_predict_one(ex), dicts)
    expl_med, expl_p99 = _latency(ex.explain_row, dicts)
    batch = table.iloc[rng.integers(0, len(table), args.rows)].reset_index(drop=True)
    plain = _rate(model.predict_risk, batch, args.repeats)
    shap_only = _rate(_shap_only(ex), batch, args.repeats)
    full = _rate(ex.explain, batch, args.repeats)
    speed = (
        f"| {task} | {model.booster_.num_trees()} | {pred_med:.2f} / {pred_p99:.2f} "
        f"| {expl_med:.2f} / {expl_p99:.2f} | {plain:,.0f} | {shap_only:,.0f} | {full:,.0f} |"
    )
    if not args.leaves:
        return speed, None
    split = time_split(table)
    big = RiskModel(task, TrainingParams(num_leaves=args.leaves, max_depth=10))
    big = big.fit(split.train, split.valid)
    big_full = _rate(DriverExplainer(big, group_norms(table, task)).explain, batch, 1)
    size = (
        f"| {task} | {model.params.num_leaves} leaves, {model.booster_.num_trees()} trees: "
        f"{_test_auc(model, table):.4f}, {full:,.0f} rows/s "
        f"| {args.leaves} leaves, {big.booster_.num_trees()} trees: "
        f"{_test_auc(big, table):.4f}, {big_full:,.0f} rows/s |"
    )
    return speed, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--leaves", type=int, default=31, help="Bigger trees to compare; 0: skip.")
    parser.add_argument("--demo", type=Path, default=ROOT / "data" / "demo")
    parser.add_argument("--models", type=Path, default=ROOT / "models")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    speeds, sizes = [], []
    for task in TASKS:
        speed, size = _bench(task, args, rng)
        print(speed, flush=True)
        speeds.append(speed)
        if size:
            print(size, flush=True)
            sizes.append(size)
    print(
        "\n| task | trees | one instance: predict ms (median / p99) | one instance: drivers ms "
        "(median / p99) | batch predict rows/s | batch TreeSHAP rows/s | batch drivers rows/s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    print("\n".join(speeds))
    if sizes:
        print("\n| task | champion: test AUC, drivers rows/s | bigger trees: test AUC, rows/s |")
        print("|---|---|---|")
        print("\n".join(sizes))


if __name__ == "__main__":
    main()
