"""What a set of canonical events covers, and what it leaves a model to learn from (pure).

``profile_events`` turns the events into a ``CoverageReport``: events per touchpoint (with its
stage), per rooftop and per month; for each prediction task the instances found, their labels,
and the features that will be constant or mostly missing on this data, found by building the
task's feature table (on a seeded random sample of its instances when there are more than
``MAX_PROFILED_INSTANCES``; the report says so).

``feature_issues`` and ``feature_warnings`` judge one feature table: ``cjm profile``,
``cjm features`` and ``cjm train`` all print ``feature_warnings``' lines, so the warning has one
wording. A feature is

- *all missing*: no instance has a value;
- *mostly missing*: more than ``MOSTLY_MISSING`` of the instances have no value;
- *constant*: every instance has the same value (a missing value counts as a value of its own,
  so a flag known for half the instances is not constant: whether it is known still tells).

For a category feature "unknown" is a missing value (the feature table fills missing
categories with it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from cjm_ml.events import catalogue
from cjm_ml.features.build import BUILDERS
from cjm_ml.features.instances import NoInstancesError, build_instances
from cjm_ml.features.timeline import Timeline
from cjm_ml.featureset import FeatureSet, feature_set_of
from cjm_ml.formatting import format_count, format_percent
from cjm_ml.params import TASKS, Task, TaskParams
from cjm_ml.registry import features_for

log = logging.getLogger(__name__)

#: A feature missing for more than this share of the instances is "mostly missing".
MOSTLY_MISSING = 0.95
#: Above this many instances of a task, its features are built on a random sample this big.
MAX_PROFILED_INSTANCES = 200_000
#: The seed of that sample, so the same file profiles the same way twice.
SAMPLE_SEED = 0
#: The value a category feature takes when it is missing (``features.build``).
UNKNOWN = "unknown"

IssueKind = Literal["all_missing", "mostly_missing", "constant"]


# --------------------------------------------------------------------------------------------
# One feature table


@dataclass(frozen=True, kw_only=True)
class FeatureIssue:
    """A feature a model can learn little or nothing from on this data: its name and label
    (from the registry), what is wrong (``kind``), the share of instances without a value, and
    the value a constant feature always takes (as text; ``None`` otherwise)."""

    feature: str
    label: str
    kind: IssueKind
    missing_share: float
    value: str | None = None

    @property
    def finding(self) -> str:
        """What is wrong, in words: "constant (always 0)", "missing for every instance",
        "missing for 97.5% of instances"."""
        if self.kind == "constant":
            return f"constant (always {self.value})"
        if self.kind == "all_missing":
            return "missing for every instance"
        return f"missing for {format_percent(self.missing_share, 1)} of instances"


def feature_issues(
    table: pd.DataFrame, task: Task | FeatureSet, mostly_missing: float = MOSTLY_MISSING
) -> list[FeatureIssue]:
    """The task's features (or the feature set's, in its order) that are all missing, mostly
    missing (more than ``mostly_missing`` of the rows) or constant in ``table``, a feature
    table of ``task``. An empty table has none. Refuses (``ValueError``) a table without some
    of the features' columns, naming them."""
    feature_set = feature_set_of(task)
    task, specs = feature_set.task, feature_set.specs
    absent = [f.name for f in specs if f.name not in table.columns]
    if absent:
        raise ValueError(f"{task}: feature table lacks {', '.join(absent)}")
    if len(table) == 0:
        return []
    issues = []
    for spec in specs:
        column = table[spec.name]
        missing = column.isna().to_numpy(dtype=bool)
        if spec.unit == "category":
            missing = missing | (column == UNKNOWN).to_numpy(dtype=bool, na_value=False)
        issue = _issue(column[~missing], float(missing.mean()), mostly_missing)
        if issue is not None:
            kind, value = issue
            issues.append(
                FeatureIssue(
                    feature=spec.name,
                    label=spec.wording.label if spec.wording else spec.description,
                    kind=kind,
                    missing_share=float(missing.mean()),
                    value=value,
                )
            )
    return issues


def _issue(
    known: pd.Series, missing_share: float, mostly_missing: float
) -> tuple[IssueKind, str | None] | None:
    """What is wrong with a feature given its known values and missing share, if anything."""
    if len(known) == 0:
        return "all_missing", None
    if missing_share > mostly_missing:
        return "mostly_missing", None
    if missing_share == 0 and known.nunique() == 1:
        return "constant", _as_text(known.iloc[0])
    return None


def _as_text(value: object) -> str:
    """A feature value as the warning quotes it: numbers without a useless ".0"."""
    if isinstance(value, float | np.floating):
        return f"{float(value):g}"
    return str(value)


def warning_lines(task: Task | FeatureSet, issues: list[FeatureIssue]) -> list[str]:
    """The warning about a task's ``issues``: a headline, then one indented line per feature;
    no line when there is no issue. The one wording ``cjm profile``, ``cjm features`` and
    ``cjm train`` print."""
    if not issues:
        return []
    feature_set = feature_set_of(task)
    task, total = feature_set.task, len(feature_set.names)
    are = "is" if len(issues) == 1 else "are"
    return [
        f"{task}: {len(issues)} of {total} features {are} constant or mostly missing on this "
        "data; a model learns little or nothing from them:",
        *(f"  {i.feature} ({i.label}): {i.finding}" for i in issues),
    ]


def feature_warnings(table: pd.DataFrame, task: Task | FeatureSet) -> list[str]:
    """``warning_lines`` for the feature ``table`` of ``task`` or of the feature set (see
    ``feature_issues``, whose refusal it passes on)."""
    return warning_lines(task, feature_issues(table, task))


# --------------------------------------------------------------------------------------------
# The events


@dataclass(frozen=True, kw_only=True)
class TouchpointCount:
    """A catalogue touchpoint (event type) and how many events of it the data holds."""

    key: str
    label: str
    events: int


@dataclass(frozen=True, kw_only=True)
class StageCount:
    """A journey stage, its events, and its touchpoints in catalogue order (those with no
    event too)."""

    key: str
    label: str
    color: str
    touchpoints: tuple[TouchpointCount, ...]

    @property
    def events(self) -> int:
        """Events of the stage, all touchpoints together."""
        return sum(t.events for t in self.touchpoints)

    @property
    def present(self) -> tuple[TouchpointCount, ...]:
        """The stage's touchpoints that occur in the data."""
        return tuple(t for t in self.touchpoints if t.events)

    @property
    def absent(self) -> tuple[TouchpointCount, ...]:
        """The stage's touchpoints that never occur in the data."""
        return tuple(t for t in self.touchpoints if not t.events)


@dataclass(frozen=True, kw_only=True)
class RooftopCount:
    """A rooftop's events and customers, and its first and last event (UTC)."""

    rooftop_id: str
    events: int
    customers: int
    first_ts: pd.Timestamp
    last_ts: pd.Timestamp


@dataclass(frozen=True, kw_only=True)
class MonthCount:
    """A calendar month (UTC, "2025-06") and its events, in total and per rooftop (rooftops
    with no event that month are left out)."""

    month: str
    events: int
    by_rooftop: dict[str, int]


# --------------------------------------------------------------------------------------------
# The tasks


@dataclass(frozen=True, kw_only=True)
class TaskCoverage:
    """Whether a task can be built on this data: its instances and their labels (1, 0, not
    yet known), why there is none (``problem``), how many of its features there are, which
    ones are constant or mostly missing (``issues``), and how many instances those were
    judged on (``profiled``: all of them, or a random sample)."""

    task: Task
    instances: int
    positives: int
    negatives: int
    unlabelled: int
    problem: str | None
    features: int
    issues: tuple[FeatureIssue, ...]
    profiled: int

    @property
    def buildable(self) -> bool:
        """Whether the data holds instances of the task (a feature table can be built)."""
        return self.instances > 0

    @property
    def trainable(self) -> bool:
        """Whether the labelled instances have both outcomes (a model can be trained)."""
        return self.positives > 0 and self.negatives > 0

    @property
    def sampled(self) -> bool:
        """Whether the features were judged on a sample of the instances."""
        return self.profiled < self.instances

    @property
    def verdict(self) -> str:
        """The task's state in words: what can be done with it on this data."""
        if self.problem is not None:
            return f"cannot be built: {self.problem}"
        if self.trainable:
            return "can be built and trained"
        if self.positives == self.negatives == 0:
            return "can be built, not trained: no outcome is known yet"
        only = 1 if self.positives else 0
        return f"can be built, not trained: every known outcome is {only}"


def task_coverage(
    events: pd.DataFrame | Timeline,
    task: Task,
    params: TaskParams | None = None,
    max_instances: int = MAX_PROFILED_INSTANCES,
) -> TaskCoverage:
    """The coverage of ``task`` on ``events``: its instances and labels (all of them), and
    its feature issues judged on the feature table of every instance, or of a seeded random
    sample of ``max_instances`` when there are more. Refuses (``ValueError``) a
    ``max_instances`` under 1."""
    if max_instances < 1:
        raise ValueError(f"max_instances must be at least 1, not {max_instances}")
    params = params or TaskParams()
    tl = Timeline.of(events)
    total = len(features_for(task))
    try:
        instances = build_instances(tl, task, params)
    except NoInstancesError as exc:
        return TaskCoverage(
            task=task,
            instances=0,
            positives=0,
            negatives=0,
            unlabelled=0,
            problem=str(exc),
            features=total,
            issues=(),
            profiled=0,
        )
    label = instances["label"]
    profiled = _sample(instances, max_instances)
    table = BUILDERS[task](tl, profiled, params)
    return TaskCoverage(
        task=task,
        instances=len(instances),
        positives=int((label == 1).sum()),
        negatives=int((label == 0).sum()),
        unlabelled=int(label.isna().sum()),
        problem=None,
        features=total,
        issues=tuple(feature_issues(table, task)),
        profiled=len(profiled),
    )


def _sample(instances: pd.DataFrame, size: int) -> pd.DataFrame:
    """``instances`` as they are, or a seeded random ``size`` of them in their order."""
    if len(instances) <= size:
        return instances
    rows = np.sort(np.random.default_rng(SAMPLE_SEED).choice(len(instances), size, replace=False))
    return instances.iloc[rows].reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# The report


@dataclass(frozen=True, kw_only=True)
class CoverageReport:
    """What a set of canonical events covers: its size and span, the journey stages with
    their touchpoints, the rooftops, the months, and each task's coverage (``TASKS`` order)."""

    events: int
    customers: int
    dealer_groups: tuple[str, ...]
    first_ts: pd.Timestamp
    last_ts: pd.Timestamp
    stages: tuple[StageCount, ...]
    rooftops: tuple[RooftopCount, ...]
    months: tuple[MonthCount, ...]
    tasks: tuple[TaskCoverage, ...]

    @property
    def summary(self) -> str:
        """One line: the dealer groups, rooftops, customers, events and dates covered."""
        groups = ", ".join(self.dealer_groups)
        return (
            f"Dealer group {groups} · {len(self.rooftops)} rooftops · "
            f"{format_count(self.customers)} customers · {format_count(self.events)} events · "
            f"{self.first_ts:%d %b %Y} to {self.last_ts:%d %b %Y}"
        )


def profile_events(
    events: pd.DataFrame,
    params: TaskParams | None = None,
    max_instances: int = MAX_PROFILED_INSTANCES,
) -> CoverageReport:
    """The coverage report of the canonical ``events`` (as ``load_events`` returns them) under
    the task windows of ``params`` (default: the embedded ones); each task's features are
    judged on at most ``max_instances`` of its instances (see ``task_coverage``). Refuses
    (``ValueError``) an empty table, and (``MissingColumnsError``) one without the canonical
    columns."""
    if len(events) == 0:
        raise ValueError("the events table is empty: there is nothing to profile")
    tl = Timeline(events)
    ts = events["ts"]
    report = CoverageReport(
        events=len(events),
        customers=int(events["customer_id"].nunique()),
        dealer_groups=tuple(sorted(str(g) for g in events["dealer_group_id"].unique())),
        first_ts=ts.min(),
        last_ts=ts.max(),
        stages=_stages(events["event_type"]),
        rooftops=_rooftops(events),
        months=_months(events),
        tasks=tuple(task_coverage(tl, task, params, max_instances) for task in TASKS),
    )
    log.info(
        "profiled %d events of %d customers: %d of %d tasks can be built",
        report.events,
        report.customers,
        sum(t.buildable for t in report.tasks),
        len(report.tasks),
    )
    return report


def _stages(event_type: pd.Series) -> tuple[StageCount, ...]:
    """Every catalogue stage with its touchpoints' event counts (zero where absent)."""
    counts = event_type.astype("string").value_counts()
    cat = catalogue()
    return tuple(
        StageCount(
            key=stage.key,
            label=stage.label,
            color=stage.color,
            touchpoints=tuple(
                TouchpointCount(key=e.key, label=e.label, events=int(counts.get(e.key, 0)))
                for e in cat.event_types
                if e.stage == stage.key
            ),
        )
        for stage in cat.stages
    )


def _rooftops(events: pd.DataFrame) -> tuple[RooftopCount, ...]:
    """Each rooftop's events, customers and first and last event, most events first."""
    by = events.groupby(events["rooftop_id"].astype("string"), sort=False, observed=True)
    table = pd.DataFrame(
        {
            "events": by.size(),
            "customers": by["customer_id"].nunique(),
            "first_ts": by["ts"].min(),
            "last_ts": by["ts"].max(),
        }
    )
    table = table.rename_axis("rooftop_id").reset_index()
    table = table.sort_values(["events", "rooftop_id"], ascending=[False, True])
    return tuple(
        RooftopCount(
            rooftop_id=str(r.rooftop_id),
            events=int(r.events),
            customers=int(r.customers),
            first_ts=r.first_ts,
            last_ts=r.last_ts,
        )
        for r in table.itertuples(index=False)
    )


def _months(events: pd.DataFrame) -> tuple[MonthCount, ...]:
    """Events per calendar month (UTC), oldest first, with the rooftops' share of each."""
    month = events["ts"].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy().astype("M8[M]")
    counts = (
        pd.DataFrame({"month": month, "rooftop_id": events["rooftop_id"].astype("string")})
        .value_counts()
        .sort_index()
    )
    out = []
    for m, per_rooftop in counts.groupby(level="month", sort=True):
        by_rooftop = per_rooftop.droplevel("month")
        out.append(
            MonthCount(
                month=f"{pd.Timestamp(m):%Y-%m}",
                events=int(by_rooftop.sum()),
                by_rooftop={str(r): int(n) for r, n in by_rooftop.items()},
            )
        )
    return tuple(out)
