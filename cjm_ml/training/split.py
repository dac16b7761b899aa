"""Time-based splits: train on the past, validate and test on later instances."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class TimeSplit:
    """Labelled instances cut by cutoff time into train, then validation, then test."""

    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame


def time_split(
    table: pd.DataFrame, valid_share: float = 0.15, test_share: float = 0.15
) -> TimeSplit:
    """Split the labelled rows of a feature table by ``cutoff_ts``, never randomly.

    The latest ``test_share`` of instances (by cutoff) is the test period, the
    ``valid_share`` before it the validation period, the rest training. Instances sharing a
    cutoff never straddle a boundary, so no test instance precedes a training one. Refuses a
    table with too few labelled rows of each class to split.
    """
    if not (0 < valid_share < 1 and 0 < test_share < 1 and valid_share + test_share < 1):
        raise ValueError("valid_share and test_share must be in (0, 1) and sum below 1")
    labelled = table[table["label"].notna()].sort_values(
        ["cutoff_ts", "instance_id"], kind="stable"
    )
    n = len(labelled)
    if n < 50 or labelled["label"].nunique() < 2:
        raise ValueError(f"need at least 50 labelled instances of both classes to split; got {n}")
    cut_valid = labelled["cutoff_ts"].iloc[int(n * (1 - valid_share - test_share))]
    cut_test = labelled["cutoff_ts"].iloc[int(n * (1 - test_share))]
    ts = labelled["cutoff_ts"]
    return TimeSplit(
        train=labelled[ts < cut_valid].reset_index(drop=True),
        valid=labelled[(ts >= cut_valid) & (ts < cut_test)].reset_index(drop=True),
        test=labelled[ts >= cut_test].reset_index(drop=True),
    )
