"""SHAP pictures: a beeswarm and a waterfall written as PNG files, no figure left open."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from cjm_ml.explain import plots
from cjm_ml.explain.drivers import DriverExplainer
from cjm_ml.explain.plots import write_beeswarm, write_waterfall
from cjm_ml.params import Task

PNG = b"\x89PNG\r\n\x1a\n"


def test_beeswarm_and_waterfall_are_png_files(
    tmp_path: Path, tables: dict[Task, pd.DataFrame], explainers: dict[Task, DriverExplainer]
) -> None:
    ex, table = explainers["service_defection"], tables["service_defection"]
    bee = write_beeswarm(ex, table, tmp_path / "sd" / "beeswarm_group.png", sample=500)
    fall = write_waterfall(ex, table.iloc[3], tmp_path / "sd" / "waterfall.png")
    for path in (bee, fall):
        data = path.read_bytes()
        assert data.startswith(PNG) and len(data) > 10_000, path
    assert sorted(p.name for p in (tmp_path / "sd").iterdir()) == [
        "beeswarm_group.png",
        "waterfall.png",
    ]  # no temporary files left behind
    assert plt.get_fignums() == []


def test_beeswarm_refuses_an_empty_table(
    tmp_path: Path, tables: dict[Task, pd.DataFrame], explainers: dict[Task, DriverExplainer]
) -> None:
    with pytest.raises(ValueError, match="no_show: no instances to draw"):
        write_beeswarm(explainers["no_show"], tables["no_show"].head(0), tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_a_waterfall_draws_only_the_drivers_that_move_its_risk(
    tmp_path: Path,
    tables: dict[Task, pd.DataFrame],
    explainers: dict[Task, DriverExplainer],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ex, row = explainers["no_show"], tables["no_show"].iloc[11]
    drawn: list[Any] = []
    real = plots.shap.plots.waterfall
    monkeypatch.setattr(
        plots.shap.plots, "waterfall", lambda v, **kw: drawn.append(v) or real(v, **kw)
    )
    write_waterfall(ex, row, tmp_path / "w.png")
    one = ex.explain_row(row.to_dict(), top=len(ex.drivers), bottom=len(ex.drivers))
    assert sorted(drawn[0].feature_names) == sorted(d.label for d in one.up + one.down)
    # Nothing moves the risk enough: a picture that says so, not a crash.
    monkeypatch.setattr(plots, "MIN_DRIVER_RISK", 1.0)
    path = write_waterfall(ex, row, tmp_path / "none.png")
    assert path.read_bytes().startswith(PNG) and len(drawn) == 1
    bee = write_beeswarm(ex, tables["no_show"].head(50), tmp_path / "bee.png")
    assert bee.read_bytes().startswith(PNG)
    assert plt.get_fignums() == []
