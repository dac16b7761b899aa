"""The time split on a hand-made table: the past trains, the latest instances test, ties never
straddle a boundary, and the refusals say why."""

from __future__ import annotations

import pandas as pd
import pytest

from cjm_ml.training.split import time_split

T0 = pd.Timestamp("2025-06-02T00:00:00Z")


def _table(labels: list[int | None], days: list[int] | None = None) -> pd.DataFrame:
    """One instance per label, a day apart (or on the given days), given newest first."""
    days = days if days is not None else list(range(len(labels)))
    table = pd.DataFrame(
        {
            "instance_id": [f"i-{k:03d}" for k in range(len(labels))],
            "cutoff_ts": [T0 + pd.Timedelta(days=d) for d in days],
            "label": pd.array(labels, dtype="Int8"),
        }
    )
    return table.iloc[::-1].reset_index(drop=True)


def test_train_then_validation_then_test_by_cutoff() -> None:
    split = time_split(_table([k % 2 for k in range(100)]))
    assert split.train["instance_id"].tolist() == [f"i-{k:03d}" for k in range(70)]
    assert split.valid["instance_id"].tolist() == [f"i-{k:03d}" for k in range(70, 85)]
    assert split.test["instance_id"].tolist() == [f"i-{k:03d}" for k in range(85, 100)]


def test_unlabelled_instances_are_left_out() -> None:
    labels: list[int | None] = [k % 2 for k in range(60)] + [None] * 5
    split = time_split(_table(labels), valid_share=0.2, test_share=0.2)
    assert (len(split.train), len(split.valid), len(split.test)) == (36, 12, 12)
    assert split.test["label"].notna().all()


def test_instances_sharing_a_cutoff_stay_on_one_side() -> None:
    # 60 instances on 6 days, 10 a day: the boundaries fall on whole days
    split = time_split(_table([k % 2 for k in range(60)], days=[k // 10 for k in range(60)]))
    assert (len(split.train), len(split.valid), len(split.test)) == (40, 10, 10)
    assert split.train["cutoff_ts"].max() < split.valid["cutoff_ts"].min()
    assert split.valid["cutoff_ts"].max() < split.test["cutoff_ts"].min()


def test_too_little_data_or_one_class_is_refused() -> None:
    with pytest.raises(
        ValueError, match="at least 50 labelled instances of both classes to split; got 49"
    ):
        time_split(_table([k % 2 for k in range(49)]))
    with pytest.raises(ValueError, match="of both classes to split; got 60"):
        time_split(_table([0] * 60))


@pytest.mark.parametrize(("valid", "test"), [(0.0, 0.15), (0.15, 1.0), (0.5, 0.5)])
def test_shares_outside_zero_one_are_refused(valid: float, test: float) -> None:
    with pytest.raises(ValueError, match="valid_share and test_share must be in"):
        time_split(_table([k % 2 for k in range(60)]), valid_share=valid, test_share=test)


def test_a_table_without_a_label_column_is_refused_by_name() -> None:
    with pytest.raises(KeyError, match="label"):
        time_split(_table([1, 0, 1]).drop(columns=["label"]))
