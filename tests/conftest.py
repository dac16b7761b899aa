"""Shared fixtures and the test tiers.

Fixtures: one small simulated group per test session (a few seconds to build), its three
feature tables, a risk model per task fitted on them, and its explainer.

Tiers: every test that builds a simulated group, starts a browser or a real HTTP server, or
runs a notebook is marked ``slow`` here, from what it uses: no hand-kept list. ``make unit``
runs the rest (``-m "not slow"``, under 90 s); ``make test`` runs everything. Fixtures are built
when a selected test first needs them, so the fast tier never builds the group.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import CodeType
from typing import Any

import pandas as pd
import pytest

from cjm_ml.explain.drivers import DriverExplainer
from cjm_ml.features.pipeline import build_feature_table
from cjm_ml.features.timeline import Timeline
from cjm_ml.params import TASKS, Task
from cjm_ml.simulation import SimulatedGroup, SimulationConfig, simulate
from cjm_ml.training.model import RiskModel
from cjm_ml.training.norms import group_norms
from cjm_ml.training.split import time_split

#: Fixtures that make a test slow: the session's simulated group and its tables, and so every
#: fixture built on them (``item.fixturenames`` is the whole closure).
SLOW_FIXTURES = frozenset({"small_group", "tables"})
#: Names that make a test slow when the test, or any fixture it uses, calls them: simulating or
#: re-simulating a group, a headless browser and its page server, the CRM stand-in (real HTTP).
SLOW_CALLS = frozenset({"simulate", "resimulated_what_if", "chromium", "serve", "Receiver"})


@pytest.fixture(scope="session")
def small_group() -> SimulatedGroup:
    """Six rooftops, 12,000 customers, two years: big enough for stable rates."""
    return simulate(SimulationConfig(rooftops=6, customers=12_000, seed=11))


@pytest.fixture(scope="session")
def tables(small_group: SimulatedGroup) -> dict[Task, pd.DataFrame]:
    """The small group's feature tables with labels, per task."""
    timeline = Timeline(small_group.events)
    return {t: build_feature_table(timeline, t) for t in TASKS}


@pytest.fixture(scope="session")
def models(tables: dict[Task, pd.DataFrame]) -> dict[Task, RiskModel]:
    """A calibrated LightGBM model per task, fitted on the small group's past (the time
    split's training period, calibrated on its validation period)."""
    out: dict[Task, RiskModel] = {}
    for task in TASKS:
        split = time_split(tables[task])
        out[task] = RiskModel(task).fit(split.train, split.valid)
    return out


@pytest.fixture(scope="session")
def explainers(
    models: dict[Task, RiskModel], tables: dict[Task, pd.DataFrame]
) -> dict[Task, DriverExplainer]:
    """An explainer per task, quoting the small group's norms."""
    return {t: DriverExplainer(models[t], group_norms(tables[t], t)) for t in TASKS}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark ``slow`` every notebook, and every test that uses a slow fixture or calls a slow
    name (itself or through its fixtures)."""
    slow = pytest.mark.slow
    for item in items:
        if is_slow(item):
            item.add_marker(slow)


def is_slow(item: pytest.Item) -> bool:
    """Whether a collected test belongs to the slow tier (see the module docstring)."""
    if item.path.suffix == ".ipynb":
        return True
    if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
        return True
    return any(SLOW_CALLS & _names(f.__code__) for f in _functions(item))


def _functions(item: pytest.Item) -> Iterator[Callable[..., Any]]:
    """The test function and the functions of every fixture it uses."""
    function = getattr(item, "function", None)
    if function is not None:
        yield function
    info = getattr(item, "_fixtureinfo", None)
    for definitions in getattr(info, "name2fixturedefs", {}).values():
        for definition in definitions:
            if hasattr(definition.func, "__code__"):
                yield definition.func


def _names(code: CodeType) -> set[str]:
    """The global and attribute names a function's code uses, nested functions included."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, CodeType):
            names |= _names(const)
    return names
