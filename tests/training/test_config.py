"""The training parameters file: defaults, per-task overrides, the search grid, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from cjm_ml.training.config import load_training_config
from cjm_ml.training.model import TrainingParams


def test_the_embedded_file_matches_the_library_defaults() -> None:
    config = load_training_config()
    assert all(p == TrainingParams() for p in config.lightgbm.values())
    assert (config.split.valid_share, config.split.test_share) == (0.15, 0.15)
    assert len(config.candidates("no_show", search=True)) == 12
    assert config.search_below_rows == 50_000
    assert config.candidates("no_show", search=False) == [TrainingParams()]


def test_a_task_table_overrides_the_shared_values(tmp_path: Path) -> None:
    path = tmp_path / "params.toml"
    path.write_text(
        "[lightgbm]\nnum_leaves = 15\n\n[lightgbm.service_defection]\nmin_child_samples = 300\n"
        "\n[search]\nbelow_rows = 10\nlearning_rate = [0.03, 0.1]\n"
    )
    config = load_training_config(path)
    assert config.search_below_rows == 10
    assert config.lightgbm["no_show"] == TrainingParams(num_leaves=15)
    assert config.lightgbm["service_defection"] == TrainingParams(
        num_leaves=15, min_child_samples=300
    )
    grid = config.candidates("service_defection", search=True)
    assert [(p.learning_rate, p.num_leaves, p.min_child_samples) for p in grid] == [
        (0.03, 15, 300),
        (0.1, 15, 300),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[lightgbm]\nnum_leafs = 15\n", "num_leafs"),
        ("[lightgbm]\nnum_leaves = 1\n", "num_leaves"),
        ("[search]\nlearning_rat = [0.1]\n", "unknown hyperparameters: learning_rat"),
        ("[split]\ntest_share = 0.7\n", "test_share"),
        ("[lightgbm\n", "not valid TOML"),
    ],
)
def test_a_bad_file_is_refused_by_name_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as caught:
        load_training_config(path)
    assert str(path) in str(caught.value)
    with pytest.raises(FileNotFoundError, match="parameters file not found"):
        load_training_config(tmp_path / "missing.toml")
