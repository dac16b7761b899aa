"""Benchmark: generic journey features and the declared profile beside the hand-built set.

For each task, on the same instances and the same time split (``time_split``), LightGBM with
the task's embedded hyperparameters (``training.toml``, fitted the way ``RiskModel`` fits) on:

- **hand-built**: the registry's features of the task;
- **generic**: per catalogue touchpoint, its count in the last 7 and 30 days and the days since
  the last one (``cjm_ml.featureset.generic_features``), plus the rooftop and the marketing
  source;
- **both**: the two sets together (``cjm features --generic``);
- **+ profiles**: the hand-built set and the shipped profile features file
  (``PROFILE_FEATURES``: vehicle age, warranty end, mileage, model line, buyer age band;
  ``cjm features --features-file``), for the tasks it declares features for.

It prints each set's test AUC, the simulator's ceiling (the AUC of the true probabilities on
the same test rows) and the share of it each set captures ((AUC - 0.5) / (ceiling - 0.5)),
and the time to compute the generic columns.

    .venv/bin/python benchmarks/generic_features.py [--customers 30000] [--seed 7]
"""

from __future__ import annotations

import argparse
import time

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.utils.class_weight import compute_sample_weight

from cjm_ml.features.declared import declared_columns
from cjm_ml.features.pipeline import build_feature_table
from cjm_ml.features.timeline import Timeline
from cjm_ml.featureset import PROFILE_FEATURES, FeatureSet, generic_features, load_features_file
from cjm_ml.params import TASKS, Task
from cjm_ml.registry import features_for
from cjm_ml.simulation import SimulationConfig, simulate
from cjm_ml.training.config import load_training_config
from cjm_ml.training.split import time_split

CONTEXT = ["rooftop_id", "marketing_source"]


def _fit_auc(task: Task, train: pd.DataFrame, valid: pd.DataFrame, test: pd.DataFrame) -> float:
    """LightGBM as ``RiskModel`` fits it (balanced weights, early stopping on the validation
    period), on the given columns; the test AUC."""
    p = load_training_config().candidates(task, False)[0]
    model = lgb.LGBMClassifier(
        objective="binary", num_leaves=p.num_leaves, max_depth=p.max_depth,
        learning_rate=p.learning_rate, n_estimators=p.n_estimators,
        min_child_samples=p.min_child_samples, colsample_bytree=p.feature_fraction,
        reg_lambda=p.reg_lambda, class_weight="balanced" if p.balance_classes else None,
        random_state=p.seed, deterministic=True, force_row_wise=True, n_jobs=2, verbose=-1,
    )  # fmt: skip
    y_valid = valid["label"].astype(int).to_numpy()
    model.fit(
        train.drop(columns="label"),
        train["label"].astype(int).to_numpy(),
        eval_X=(valid.drop(columns="label"),),
        eval_y=(y_valid,),
        eval_sample_weight=[compute_sample_weight("balanced", y_valid)],
        callbacks=[lgb.early_stopping(p.early_stopping_rounds, verbose=False)],
    )
    risk = model.predict_proba(test.drop(columns="label"))[:, 1]
    return float(roc_auc_score(test["label"].astype(int).to_numpy(), risk))


def _frame(columns: pd.DataFrame) -> pd.DataFrame:
    """Numbers as floats, text as pandas categories (LightGBM's native categoricals)."""
    out = columns.copy()
    for name in out.columns:
        if name == "label":
            continue
        if out[name].dtype.kind in "biuf" or str(out[name].dtype) in ("Float64", "Int64", "Int8"):
            out[name] = out[name].astype(float)
        else:
            out[name] = out[name].astype("string").astype("category")
    return out


def measure(tl: Timeline, task: Task, truth: pd.DataFrame) -> dict[str, float]:
    """The sets' test AUCs for ``task``, the ceiling on the same rows and the generic
    columns' compute time."""
    profiles = FeatureSet(task, load_features_file(PROFILE_FEATURES))
    table = build_feature_table(tl, task, declared=profiles.declared)
    labelled = table[table["label"].notna()].reset_index(drop=True)
    started = time.perf_counter()
    generic = declared_columns(tl, labelled, generic_features())
    seconds = time.perf_counter() - started
    generic = generic.loc[:, generic.nunique(dropna=False) > 1]  # constant: nothing to learn
    hand = [f.name for f in features_for(task)]
    sets = {
        "hand-built": labelled[[*hand, "label"]],
        "generic": pd.concat([generic, labelled[[*CONTEXT, "label"]]], axis=1),
        "both": pd.concat([labelled[[*hand, "label"]], generic], axis=1),
    }
    if profiles.declared:
        sets["+ profiles"] = labelled[[*hand, *profiles.declared_names, "label"]]
    split = time_split(labelled.assign(_row=np.arange(len(labelled))))
    rows = [split.train["_row"], split.valid["_row"], split.test["_row"]]
    out: dict[str, float] = {"generic columns": float(generic.shape[1]), "seconds": seconds}
    test = labelled.iloc[rows[2].to_numpy()]
    true_prob = test[["instance_id"]].merge(truth, how="left")["true_prob"].to_numpy(dtype=float)
    out["ceiling"] = float(roc_auc_score(test["label"].astype(int).to_numpy(), true_prob))
    for name, columns in sets.items():
        frame = _frame(columns)
        train, valid, test = (frame.iloc[r.to_numpy()] for r in rows)
        out[name] = _fit_auc(task, train, valid, test)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=30_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    group = simulate(SimulationConfig(customers=args.customers, seed=args.seed), progress=False)
    tl = Timeline(group.events)
    print(f"{args.customers:,} customers, seed {args.seed}: test AUC (capture of the ceiling)")
    sets = ("hand-built", "generic", "both", "+ profiles")
    print(f"| task | {' | '.join(sets)} | ceiling | generic columns (non-constant) | generic s |")
    print("|---|" + "---:|" * (len(sets) + 3))
    for task in TASKS:
        m = measure(tl, task, group.truth[task][["instance_id", "true_prob"]])
        cells = [
            f"{m[s]:.3f} ({(m[s] - 0.5) / (m['ceiling'] - 0.5):.3f})" if s in m else "-"
            for s in sets
        ]
        print(
            f"| {task} | {' | '.join(cells)} | {m['ceiling']:.3f} | "
            f"{int(m['generic columns'])} | {m['seconds']:.1f} |"
        )


if __name__ == "__main__":
    main()
