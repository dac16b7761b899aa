"""Friction drivers as a report: a feature table and a model bundle in, text and pictures out.

``explain_task`` is the body of ``cjm explain`` (one task's roll-up for the group or a rooftop,
one instance's drivers and the fix to try, SHAP pictures); ``explain_tasks`` the demo's (every
task's group roll-up, and the roll-ups and hotspots the journey map reads). The text comes back
for the command line to print; the pictures and tables are written as files. An instance's
sentences quote the norms of its own dealer group's rows (``explainer_for``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from cjm_ml.artifact import ModelArtifact
from cjm_ml.explain.drivers import NO_FIX, DriverExplainer, InstanceExplanation
from cjm_ml.explain.plots import write_beeswarm, write_waterfall
from cjm_ml.explain.rollup import hotspots, rollup
from cjm_ml.io import write_parquet_atomic
from cjm_ml.params import Task
from cjm_ml.rules import GROUP
from cjm_ml.training.model import RiskModel
from cjm_ml.training.norms import group_norms

log = logging.getLogger(__name__)

#: Drivers listed per scope in the printed roll-up.
ROLLUP_SHOWN = 8


@dataclass(frozen=True)
class Explained:
    """One task's table, its explainer and roll-up (group and every rooftop), the report's text
    lines so far, and the pictures written."""

    table: pd.DataFrame
    explainer: DriverExplainer
    rollup: pd.DataFrame
    lines: list[str]
    pictures: list[Path]


def load_explainer(
    task: Task, features: Path, model_dir: Path, group: str | None = None
) -> tuple[pd.DataFrame, DriverExplainer]:
    """The feature table at ``features`` and an explainer of the bundle in ``model_dir`` for
    dealer group ``group``'s rows (default: the table's only group), quoting the table's
    norms (``explainer_for``). Refuses a missing table or bundle, a bundle of another task,
    or a table without ``dealer_group_id``."""
    if not features.exists():
        raise FileNotFoundError(f"{features}: no feature table; run `cjm features` or `cjm demo`")
    if not (model_dir / "bundle.json").exists():
        raise FileNotFoundError(f"{model_dir}: no model bundle for {task}; run `cjm train` first")
    table = pd.read_parquet(features)
    model = RiskModel.load(model_dir)
    if model.task != task:
        raise ValueError(f"{model_dir}: the bundle is a {model.task} model, not {task}")
    if "dealer_group_id" not in table.columns:
        raise ValueError(f"{features}: the table lacks dealer_group_id")
    return table, explainer_for(model, table, group)


def explainer_for(model: ModelArtifact, table: pd.DataFrame, group: str | None) -> DriverExplainer:
    """An explainer of ``model`` for dealer group ``group`` (``None``: the table's only group,
    else the groups pooled), quoting the norms (``group_norms``) of the group's rows of
    ``table``, or of every row "across groups" where the model quotes pooled norms for the
    group (too little of its data in training). ``table`` needs ``dealer_group_id``."""
    groups = table["dealer_group_id"].astype("string")
    if group is None and groups.nunique() == 1:
        group = str(groups.dropna().iloc[0])
    _, own = model.norms_for(group)
    rows = table[(groups == group).fillna(False).to_numpy()] if own and group else table
    return DriverExplainer(model, group_norms(rows, model.task, model.task_params), group=group)


def format_rollup(roll: pd.DataFrame, scope: str, top: int = ROLLUP_SHOWN) -> str:
    """One scope of a roll-up (``"group"`` or a rooftop) as a text table, heaviest first."""
    rows = roll[roll["rooftop_id"] == scope].sort_values("rank").head(top)
    table = pd.DataFrame(
        {
            "driver": rows["label"],
            "kind": rows["kind"],
            "cases touched": rows["instances"].map("{:,}".format),
            "share": rows["touched_share"].map("{:.0%}".format),
            "risk added (pts/case)": (rows["mean_contribution"] * 100).map("{:.2f}".format),
            "fix removes (pts/case)": [
                f"{g * 100:.2f}" if k == "friction" else ""
                for g, k in zip(rows["mean_fix_gain"], rows["kind"], strict=True)
            ],
            "vs group standard (pts)": [
                "" if scope == GROUP else f"{e * 100:+.2f}" for e in rows["excess"]
            ],
        }
    )
    return table.to_string(index=False)


def format_instance(explained: InstanceExplanation, instance_id: str, rooftop_id: str) -> str:
    """One instance's drivers and its fix to try (or ``NO_FIX``), as text."""
    lines = [
        f"Instance {instance_id} at {rooftop_id}: risk {explained.risk:.0%} "
        f"(the model's average {explained.base_risk:.0%})"
    ]
    for d in explained.up:
        lines.append(f"  + {d.sentence}")
    for d in explained.down:
        lines.append(f"  - {d.sentence}")
    a = explained.action
    if a is None:
        lines.append(f"  {NO_FIX}.")
    else:
        lines.append(
            f"  Fix to try ({a.label}): {a.action} [{a.owner}, {a.channel}, "
            f"{a.urgency.replace('_', ' ')}]; the model's risk without it: {a.what_if_risk:.0%} "
            f"(now {a.risk:.0%})"
        )
    return "\n".join(lines)


def format_pictures(pictures: Sequence[Path]) -> str:
    """The closing line of ``cjm explain``: where its pictures are."""
    return f"Pictures: {', '.join(str(p) for p in pictures)}"


def explain_task(
    task: Task,
    *,
    features: Path,
    model: Path,
    out: Path,
    rooftop: str | None = None,
    instance_id: str | None = None,
) -> Explained:
    """The task's roll-up for the group (and ``rooftop`` beside it) and one instance's drivers
    (``instance_id``, else the riskiest of the scope), as text lines; writes
    ``<out>/<task>/beeswarm_<scope>.png`` and ``waterfall_<instance>.png``. Refuses a missing
    file, an unknown rooftop or instance, by name."""
    table, explainer = load_explainer(task, features, model)
    rooftops = sorted(table["rooftop_id"].astype("string").dropna().unique())
    if rooftop is not None and rooftop not in rooftops:
        raise ValueError(f"unknown rooftop {rooftop!r}; the table has {', '.join(rooftops)}")
    scope = table if rooftop is None else table[table["rooftop_id"].astype("string") == rooftop]
    roll = rollup(explainer.driver_contributions(table), explainer.drivers, task)
    lines = [f"{task}: {len(table):,} instances from {features}; model {model}", ""]
    lines += ["Group roll-up: what adds the most risk", format_rollup(roll, GROUP), ""]
    if rooftop is not None:
        lines += [f"{rooftop} against the group", format_rollup(roll, rooftop), ""]
    row = _instance_row(explainer, table, scope, instance_id, features)
    if explainer.group != str(row["dealer_group_id"]):  # quote the instance's own group
        explainer = explainer_for(explainer.model, table, str(row["dealer_group_id"]))
    explained = explainer.explain_row(row.to_dict())
    lines += [format_instance(explained, str(row["instance_id"]), str(row["rooftop_id"])), ""]
    name = GROUP if rooftop is None else rooftop
    pictures = [
        write_beeswarm(explainer, scope, out / task / f"beeswarm_{name}.png"),
        write_waterfall(explainer, row, out / task / f"waterfall_{row['instance_id']}.png"),
    ]
    return Explained(table=table, explainer=explainer, rollup=roll, lines=lines, pictures=pictures)


def _instance_row(
    explainer: DriverExplainer,
    table: pd.DataFrame,
    scope: pd.DataFrame,
    instance_id: str | None,
    features: Path,
) -> pd.Series:
    """The instance to explain: ``instance_id``, else the scope's riskiest."""
    if instance_id is None:
        riskiest = explainer.risk(explainer.encode(scope)).argmax()
        return scope.iloc[int(riskiest)]
    match = table[table["instance_id"].astype("string") == instance_id]
    if match.empty:
        raise ValueError(f"{features}: no instance {instance_id!r}")
    return match.iloc[0]


def explain_tasks(
    tasks: Sequence[Task], features_dir: Path, models_dir: Path, out: Path
) -> dict[Task, Explained]:
    """Each task's group roll-up from ``<features_dir>/<task>.parquet`` and the bundle in
    ``<models_dir>/<task>``, as text lines; writes each group beeswarm under ``out``, and
    ``<out>/rollups.parquet`` and ``<out>/hotspots.parquet`` (the journey map's input). Refuses
    a missing table or bundle, by name."""
    explained: dict[Task, Explained] = {}
    for task in tasks:
        table, explainer = load_explainer(task, features_dir / f"{task}.parquet", models_dir / task)
        roll = rollup(explainer.driver_contributions(table), explainer.drivers, task)
        picture = write_beeswarm(explainer, table, out / task / f"beeswarm_{GROUP}.png")
        lines = [f"{task}: group roll-up ({len(table):,} instances)", format_rollup(roll, GROUP)]
        explained[task] = Explained(
            table=table, explainer=explainer, rollup=roll, lines=[*lines, ""], pictures=[picture]
        )
    rollups = pd.concat([e.rollup for e in explained.values()], ignore_index=True)
    write_parquet_atomic(rollups.astype({"friction_rank": "float"}), out / "rollups.parquet")
    write_parquet_atomic(hotspots(rollups), out / "hotspots.parquet")
    log.info("roll-ups and hotspots of %d task(s) -> %s", len(explained), out)
    return explained
