"""The features a model reads: the registry's hand-built ones and those the user declares.

A dealer's exports carry what matters beyond the journey's touchpoints: the vehicle's model
year and mileage, its warranty end, the customer's tenure. A **features file** (TOML) declares
features over such attributes, without code::

    [features.vehicle_age_years]
    label = "Vehicle age"                    # how the feature reads to a dealer
    event_type = "vehicle_delivery"          # the events it reads (catalogue event type)
    attribute = "model_year"                 # the attribute it reads (none: the events)
    kind = "number"                          # number, category or flag
    take = "years_since"                     # how it is taken at the cutoff (``Take``)
    tasks = ["service_defection"]            # default: every task
    # window_days = 90                       # count, mean, sum: only the last 90 days
    # stage = "delivery"                     # default: the event type's journey stage
    # actionable = false                     # whether the dealer can act on it; if so, with
    # fix = { kind = "at_most", value = 2 }  #   its what-if (``Fix``; no value: the median)
    # play = { action = "...", channel = "phone", urgency = "today", owner = "BDC" }

How each take reads the events at a cutoff is ``cjm_ml.features.declared``'s business (always
from events that happened and were known strictly before it). ``generic_features()`` declares
the same kind of features for every touchpoint of the catalogue.

A ``FeatureSet`` is what one model of one task reads about: the registry's entries for the
task, then the declared features for it, each as a ``FeatureSpec`` (unit, wording, friction)
so that training, the model artifact, serving and the explanations treat both alike. The
artifact carries the declarations; every lookup of a feature's entry goes through its set.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cjm_ml.events import catalogue
from cjm_ml.params import TASKS, Task
from cjm_ml.registry import (
    FEATURES,
    FeatureSpec,
    Fix,
    FixKind,
    FrictionSpec,
    Unit,
    Wording,
    features_for,
    friction_spec,
)
from cjm_ml.tomlfiles import read_toml_model

Kind = Literal["number", "category", "flag"]
Take = Literal["latest", "count", "mean", "sum", "days_since", "years_since", "days_until"]
#: The takes that read a numeric attribute over the window.
NUMERIC_TAKES = ("mean", "sum")
#: The shipped features file of the vehicle and buyer profile a DMS deal records at delivery
#: (``cjm features --features-file``; a copy to start from).
PROFILE_FEATURES = Path(__file__).parent / "data" / "features" / "profiles.toml"
#: The windows (days) and the takes of the generic features of each touchpoint.
GENERIC_WINDOWS_DAYS: tuple[int, ...] = (7, 30)
#: The columns of every instance table (and so of every feature table) that are not features:
#: a declared feature may not take their names.
INSTANCE_COLUMNS = (
    "instance_id",
    "customer_id",
    "dealer_group_id",
    "rooftop_id",
    "marketing_source",
    "anchor_ts",
    "cutoff_ts",
    "label",
)
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
#: The unit (how values read) of a declared number by its take.
_UNIT_OF_TAKE: dict[str, Unit] = {
    "count": "count",
    "days_since": "days",
    "years_since": "years",
    "days_until": "days_until",
}


class FeaturesFileError(ValueError):
    """A features file that cannot be used; names the file and each key path at fault."""


class DeclaredFix(BaseModel):
    """A declared actionable feature's value once its friction is removed (the what-if):
    ``set`` to ``value``, or ``at_most`` / ``at_least`` ``value`` (none: the group median)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: FixKind
    value: float | str | None = None


class Play(BaseModel):
    """The fix to try for a friction: what to do, on which channel, how soon, by whom (the
    playbook's entries, and a declared actionable feature's ``play``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    action: str = Field(min_length=1)
    channel: str = Field(min_length=1)
    urgency: Literal["now", "today", "this_week"]
    owner: Literal["BDC", "sales_manager", "service_advisor", "service_manager"]


class DeclaredFeature(BaseModel):
    """One declared feature (see the module docstring). Refuses an unknown event type or
    stage, a take that needs an attribute without one, a category or flag taken otherwise
    than ``latest``, a window on a take that has none, and a fix or play on a feature the
    dealer cannot act on (an actionable one needs its play)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    label: str = Field(min_length=1)
    event_type: str
    attribute: str | None = None
    kind: Kind = "number"
    take: Take = "latest"
    window_days: float | None = Field(default=None, gt=0)
    stage: str | None = None
    tasks: tuple[Task, ...] = TASKS
    actionable: bool = False
    fix: DeclaredFix | None = None
    play: Play | None = None

    @field_validator("name")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("must be lower case letters, digits and _, starting with a letter")
        if value in INSTANCE_COLUMNS:
            raise ValueError(f"{value!r} is a column of every feature table; choose another name")
        return value

    @field_validator("event_type")
    @classmethod
    def _known_event_type(cls, value: str) -> str:
        if value not in catalogue().event_type_keys:
            raise ValueError(f"unknown event type {value!r}")
        return value

    @field_validator("stage")
    @classmethod
    def _known_stage(cls, value: str | None) -> str | None:
        if value is not None and value not in catalogue().stage_keys:
            raise ValueError(f"unknown stage {value!r}")
        return value

    @field_validator("tasks")
    @classmethod
    def _some_tasks(cls, value: tuple[Task, ...]) -> tuple[Task, ...]:
        if not value or len(set(value)) != len(value):
            raise ValueError("must name one or more distinct tasks")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> DeclaredFeature:
        if self.take in (*NUMERIC_TAKES, "latest", "days_until") and self.attribute is None:
            raise ValueError(f"take {self.take!r} reads an attribute: give 'attribute'")
        if self.kind != "number" and self.take != "latest":
            raise ValueError(f"a {self.kind} is taken as 'latest', not {self.take!r}")
        if self.window_days is not None and self.take not in ("count", *NUMERIC_TAKES):
            raise ValueError(f"take {self.take!r} has no window; drop 'window_days'")
        if not self.actionable and (self.fix is not None or self.play is not None):
            raise ValueError("a fix and a play belong to an actionable feature")
        if self.actionable and self.play is None:
            raise ValueError("an actionable feature needs its play (what to do about it)")
        if self.fix is not None and self.kind == "category" and self.fix.kind != "set":
            raise ValueError("a category's fix sets a value ('set')")
        return self

    @property
    def journey_stage(self) -> str:
        """The declared stage, or the stage of the event type it reads."""
        return self.stage or catalogue().stage_of(self.event_type).key

    @property
    def unit(self) -> Unit:
        """How its values read: a category, a flag, a count, days, years, or a number."""
        if self.kind != "number":
            return self.kind
        return _UNIT_OF_TAKE.get(self.take, "number")

    def spec(self) -> FeatureSpec:
        """Its entry, as the registry's: worded from its label, compared with the group's
        median (a flag: the share that has it; a category: with nothing)."""
        label, unit = self.label, self.unit
        says = f"{label.lower()}: {{value}}"
        wording = Wording(
            label=label,
            says=f"{label.lower()}: yes" if unit == "flag" else says,
            zero={"flag": f"{label.lower()}: no", "count": f"{label.lower()}: none"}.get(unit, ""),
            unknown=f"{label.lower()}: not known",
            standard={
                "category": "",
                "flag": "{standard} of cases {group} have it",
            }.get(unit, "the median {group} is {standard}"),
            norm={"category": None, "flag": "share"}.get(unit, "median"),
            noun=("time", "times") if unit == "count" else ("", ""),
        )
        fix = None if self.fix is None else Fix(kind=self.fix.kind, value=self.fix.value)
        return FeatureSpec(
            name=self.name,
            stage=self.journey_stage,
            touchpoint=self.event_type,
            unit=unit,
            description=label,
            actionable=self.actionable,
            tasks=self.tasks,
            wording=wording,
            friction=self.name if self.actionable else None,
            fix=fix,
        )

    def friction(self) -> FrictionSpec | None:
        """The friction an actionable declared feature expresses (named after it)."""
        if not self.actionable:
            return None
        return FrictionSpec(
            name=self.name, label=self.label, stage=self.journey_stage, touchpoint=self.event_type
        )


class FeaturesFile(BaseModel):
    """A features file: ``[features.<name>]`` tables (the name is the key)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    features: dict[str, DeclaredFeature]

    @model_validator(mode="before")
    @classmethod
    def _names_from_keys(cls, raw: object) -> object:
        if isinstance(raw, dict) and isinstance(raw.get("features"), dict):
            named = {
                k: {"name": k, **v} if isinstance(v, dict) else v
                for k, v in raw["features"].items()
            }
            return {**raw, "features": named}
        return raw


def load_features_file(path: Path | str) -> tuple[DeclaredFeature, ...]:
    """The features declared in a TOML file, in file order; raises ``FeaturesFileError``
    naming the file and, for each problem, its key path (and a name the registry has)."""
    path = Path(path)
    file = read_toml_model(path, "features", FeaturesFile, FeaturesFileError)
    declared = tuple(file.features.values())
    try:
        check_declared(declared)
    except ValueError as e:
        raise FeaturesFileError(f"{path.name}: {e}") from None
    return declared


def check_declared(declared: Sequence[DeclaredFeature]) -> None:
    """Refuse (``ValueError``) declared features whose names repeat or that the registry
    already has."""
    registered = {f.name for f in FEATURES}
    names = [d.name for d in declared]
    taken = sorted(set(names) & registered)
    if taken:
        raise ValueError(f"features.{taken[0]}: the name of a built-in feature; choose another")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"features.{repeated[0]}: declared twice")


def generic_features(event_types: Iterable[str] | None = None) -> tuple[DeclaredFeature, ...]:
    """For each catalogue event type (or the given ones): its count in each of
    ``GENERIC_WINDOWS_DAYS`` before the cutoff and the days since the last one, named
    ``<event type>_<n>d`` / ``days_since_<event type>`` and worded from the catalogue."""
    cat = catalogue()
    out: list[DeclaredFeature] = []
    for key in event_types if event_types is not None else cat.event_type_keys:
        label = cat.event_type(key).label
        out += [
            DeclaredFeature(
                name=f"{key}_{days}d",
                label=f"{label}, last {days} days",
                event_type=key,
                take="count",
                window_days=days,
            )
            for days in GENERIC_WINDOWS_DAYS
        ]
        out.append(
            DeclaredFeature(
                name=f"days_since_{key}",
                label=f"Days since {label[:1].lower()}{label[1:]}",
                event_type=key,
                take="days_since",
            )
        )
    return tuple(out)


@dataclass(frozen=True)
class FeatureSet:
    """What a model of ``task`` reads about: the registry's features for the task, then the
    ``declared`` ones for it (those naming other tasks are left out), in that order (the
    feature table's column order). Refuses declared names the registry has, or repeated."""

    task: Task
    declared: tuple[DeclaredFeature, ...] = field(default=())

    def __post_init__(self) -> None:
        check_declared(self.declared)
        mine = tuple(d for d in self.declared if self.task in d.tasks)
        object.__setattr__(self, "declared", mine)

    @classmethod
    def of(
        cls, task: Task, declared: Iterable[DeclaredFeature | dict[str, Any]] = ()
    ) -> FeatureSet:
        """The set of ``task`` with ``declared`` (features or their dumped dicts, as a
        model bundle stores them)."""
        return cls(task, tuple(DeclaredFeature.model_validate(d) for d in declared))

    @cached_property
    def specs(self) -> tuple[FeatureSpec, ...]:
        """Every feature's entry: the registry's, then the declared ones."""
        return (*features_for(self.task), *(d.spec() for d in self.declared))

    @cached_property
    def _by_name(self) -> dict[str, FeatureSpec]:
        return {f.name: f for f in self.specs}

    @property
    def names(self) -> list[str]:
        """The features' names, in column order."""
        return [f.name for f in self.specs]

    @property
    def declared_names(self) -> list[str]:
        """The declared features' names."""
        return [d.name for d in self.declared]

    def spec(self, name: str) -> FeatureSpec:
        """A feature's entry; raises KeyError naming an unknown feature."""
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"{self.task}: unknown feature {name!r}") from None

    def friction(self, name: str) -> FrictionSpec:
        """A friction's entry: the registry's, or a declared actionable feature's."""
        for d in self.declared:
            if d.name == name and d.actionable:
                found = d.friction()
                assert found is not None
                return found
        return friction_spec(name)

    def plays(self) -> dict[str, Play]:
        """The declared actionable features' plays, by friction (feature) name."""
        return {d.name: d.play for d in self.declared if d.play is not None}

    def dump(self) -> list[dict[str, Any]]:
        """The declared features as plain data (a model bundle stores them)."""
        return [d.model_dump(mode="json") for d in self.declared]


def feature_set_of(task_or_set: Task | FeatureSet) -> FeatureSet:
    """A feature set as given, or a task's registry features alone (functions that take
    either: a task is shorthand for its hand-built features)."""
    if isinstance(task_or_set, FeatureSet):
        return task_or_set
    return FeatureSet(task_or_set)
