"""The ``cjm explain`` command's body and the demo's explanation report (I/O at the edge).

Both read a feature table and a model bundle, print roll-ups and drivers as text (returned, for
the command line to echo), and write SHAP pictures as PNG files. On a simulated group (a
``rooftops.json`` with planted deviations beside the feature folder) they also score the
roll-ups against the planted frictions and, on request, check the what-if by re-simulating.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from cjm_ml.config import Settings
from cjm_ml.explain.drivers import DriverExplainer, InstanceExplanation
from cjm_ml.training.norms import group_norms
from cjm_ml.explain.plots import write_beeswarm, write_waterfall
from cjm_ml.explain.rollup import (
    GROUP,
    RECOVERY_TOP,
    WhatIfCheck,
    hotspots,
    planted_recovery,
    recovery_rate,
    resimulated_what_if,
    rollup,
)
from cjm_ml.io import write_parquet_atomic
from cjm_ml.params import TASKS, Task
from cjm_ml.simulation import SimulatedGroup, SimulationConfig, simulate
from cjm_ml.simulation.rooftops import PlantedDeviation
from cjm_ml.training.model import RiskModel

log = logging.getLogger(__name__)

#: Drivers listed per scope in the printed roll-up.
ROLLUP_SHOWN = 8


@dataclass(frozen=True)
class _Simulated:
    """What a simulated group's ``rooftops.json`` says: its config and planted deviations."""

    config: SimulationConfig
    planted: list[PlantedDeviation]


def _read_simulated(folder: Path) -> _Simulated | None:
    path = folder / "rooftops.json"
    if not path.exists():
        return None
    raw = json.loads(path.read_text())
    if "config" not in raw or "planted_deviations" not in raw:
        return None
    return _Simulated(
        config=SimulationConfig.model_validate(raw["config"]),
        planted=[PlantedDeviation.model_validate(p) for p in raw["planted_deviations"]],
    )


def _load(task: Task, features: Path, model_dir: Path) -> tuple[pd.DataFrame, DriverExplainer]:
    if not features.exists():
        raise FileNotFoundError(f"{features}: no feature table; run `cjm features` or `cjm demo`")
    if not (model_dir / "bundle.json").exists():
        raise FileNotFoundError(f"{model_dir}: no model bundle for {task}; run `cjm train` first")
    table = pd.read_parquet(features)
    model = RiskModel.load(model_dir)
    if model.task != task:
        raise ValueError(f"{model_dir}: the bundle is a {model.task} model, not {task}")
    return table, DriverExplainer(model, group_norms(table, task))


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
    """One instance's drivers and its fix to try, as text."""
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
        lines.append("  No friction to fix: nothing actionable raises this risk.")
    else:
        lines.append(
            f"  Fix to try ({a.label}): {a.action} [{a.owner}, {a.channel}, "
            f"{a.urgency.replace('_', ' ')}]; the model's risk without it: {a.what_if_risk:.0%} "
            f"(now {a.risk:.0%})"
        )
    return "\n".join(lines)


def format_recovery(recovery: pd.DataFrame) -> str:
    """The planted-friction recovery table and rate, as text."""
    table = pd.DataFrame(
        {
            "task": recovery["task"],
            "rooftop": recovery["rooftop_id"],
            "planted friction": recovery["label"],
            "above group standard (pts/case)": [
                "-" if pd.isna(e) else f"{e * 100:+.2f}" for e in recovery["excess"]
            ],
            "rank by excess": recovery["excess_rank"].astype("string").fillna("-"),
            "rank by risk added": recovery["friction_rank"].astype("string").fillna("-"),
            "rank among all drivers": recovery["rank"].astype("string").fillna("-"),
            "recovered": recovery["recovered"].map({True: "yes", False: "NO"}),
        }
    )
    rate = recovery_rate(recovery)
    return (
        f"{table.to_string(index=False)}\nPlanted frictions recovered (among the rooftop's top "
        f"{RECOVERY_TOP} frictions by risk carried above the group standard): "
        f"{int(recovery['recovered'].sum())} of {len(recovery)} ({rate:.0%})"
    )


def format_what_if(checks: list[WhatIfCheck]) -> str:
    """What-if checks against re-simulation, as text (with the note where the model is wrong)."""
    table = pd.DataFrame(
        {
            "task": [c.task for c in checks],
            "rooftop": [c.rooftop_id for c in checks],
            "friction fixed": [c.friction for c in checks],
            "true rate": [f"{c.true_before:.1%} -> {c.true_after:.1%}" for c in checks],
            "true change": [f"{c.true_change * 100:+.1f} pts" for c in checks],
            "what-if predicted": [f"{c.predicted_change * 100:+.1f} pts" for c in checks],
            "what-if, every case fixed": [f"{c.what_if_change * 100:+.1f} pts" for c in checks],
            "model on re-simulated": [f"{c.resimulated_change * 100:+.1f} pts" for c in checks],
            "verdict": ["WRONG" if c.wrong else "ok" for c in checks],
        }
    )
    notes = [f"  {c.rooftop_id} {c.friction}: {c.note}" for c in checks]
    return table.to_string(index=False) + "\n" + "\n".join(notes)


def run_explain(
    task: Task,
    *,
    rooftop: str | None = None,
    instance_id: str | None = None,
    features: Path | None = None,
    model: Path | None = None,
    out: Path | None = None,
    what_if: bool = False,
    settings: Settings | None = None,
) -> str:
    """``cjm explain``: the task's roll-up for the group (or a rooftop beside the group), one
    instance's drivers (``instance_id``, else the riskiest of the scope), and on a simulated
    group the planted-friction recovery (and with ``what_if`` the re-simulation checks). Writes
    ``<out>/<task>/beeswarm_<scope>.png`` and ``waterfall_<instance>.png``. Returns the text.
    Refuses a missing file, an unknown rooftop or instance, by name."""
    settings = settings or Settings()
    features = features or settings.demo_dir / "features" / f"{task}.parquet"
    model = model or settings.models_dir / task
    out = out or settings.demo_dir / "explain"
    table, explainer = _load(task, features, model)
    rooftops = sorted(table["rooftop_id"].astype("string").dropna().unique())
    if rooftop is not None and rooftop not in rooftops:
        raise ValueError(f"unknown rooftop {rooftop!r}; the table has {', '.join(rooftops)}")
    scope = table if rooftop is None else table[table["rooftop_id"].astype("string") == rooftop]
    roll = rollup(explainer.driver_contributions(table), explainer.drivers, task)
    lines = [f"{task}: {len(table):,} instances from {features}; model {model}", ""]
    lines += ["Group roll-up: what adds the most risk", format_rollup(roll, GROUP), ""]
    if rooftop is not None:
        lines += [f"{rooftop} against the group", format_rollup(roll, rooftop), ""]
    if instance_id is None:
        riskiest = explainer.risk(explainer.encode(scope)).argmax()
        row = scope.iloc[int(riskiest)]
    else:
        match = table[table["instance_id"].astype("string") == instance_id]
        if match.empty:
            raise ValueError(f"{features}: no instance {instance_id!r}")
        row = match.iloc[0]
    explained = explainer.explain_row(row.to_dict())
    lines += [format_instance(explained, str(row["instance_id"]), str(row["rooftop_id"])), ""]
    simulated = _read_simulated(features.parent.parent)
    if simulated is not None:
        planted = [p for p in simulated.planted if p.task == task]
        if rooftop is not None:
            planted = [p for p in planted if p.rooftop_id == rooftop]
        if planted:
            lines += ["Planted frictions (simulated group)"]
            lines += [format_recovery(planted_recovery(roll, planted)), ""]
            if what_if:
                original = simulate(simulated.config)
                pairs = dict.fromkeys((p.rooftop_id, p.friction) for p in planted)
                checks = [
                    resimulated_what_if(
                        explainer, simulated.config, r, f, original=original, table=table
                    )
                    for r, f in pairs
                ]
                lines += ["What-if against re-simulation", format_what_if(checks), ""]
    name = GROUP if rooftop is None else rooftop
    pictures = [
        write_beeswarm(explainer, scope, out / task / f"beeswarm_{name}.png"),
        write_waterfall(explainer, row, out / task / f"waterfall_{row['instance_id']}.png"),
    ]
    lines += [f"Pictures: {', '.join(str(p) for p in pictures)}"]
    return "\n".join(lines)


def explain_demo(
    demo_dir: Path, models_dir: Path, *, out: Path | None = None, what_if: bool = True
) -> str:
    """The demo's explanation report: each task's group roll-up, the planted-friction recovery
    over all tasks, and (``what_if``) one re-simulation check per task. Writes the beeswarms,
    ``<out>/rollups.parquet`` and ``<out>/hotspots.parquet`` (the journey map's input); ``out``
    defaults to ``<demo_dir>/explain``. Returns the text."""
    out = out or demo_dir / "explain"
    simulated = _read_simulated(demo_dir)
    lines: list[str] = []
    rolls: list[pd.DataFrame] = []
    explainers: dict[Task, tuple[pd.DataFrame, DriverExplainer]] = {}
    for task in TASKS:
        table, explainer = _load(task, demo_dir / "features" / f"{task}.parquet", models_dir / task)
        explainers[task] = (table, explainer)
        roll = rollup(explainer.driver_contributions(table), explainer.drivers, task)
        rolls.append(roll)
        write_beeswarm(explainer, table, out / task / f"beeswarm_{GROUP}.png")
        lines += [f"{task}: group roll-up ({len(table):,} instances)", format_rollup(roll, GROUP)]
        lines += [""]
    rollups = pd.concat(rolls, ignore_index=True)
    write_parquet_atomic(rollups.astype({"friction_rank": "float"}), out / "rollups.parquet")
    write_parquet_atomic(hotspots(rollups), out / "hotspots.parquet")
    if simulated is not None and simulated.planted:
        lines += ["Planted frictions (simulated group)"]
        lines += [format_recovery(planted_recovery(rollups, simulated.planted)), ""]
        if what_if:
            original: SimulatedGroup = simulate(simulated.config)
            checks = []
            for task in TASKS:
                first = next((p for p in simulated.planted if p.task == task), None)
                if first is None:
                    continue
                table, explainer = explainers[task]
                checks.append(
                    resimulated_what_if(
                        explainer,
                        simulated.config,
                        first.rooftop_id,
                        first.friction,
                        original=original,
                        table=table,
                    )
                )
            lines += ["What-if against re-simulation", format_what_if(checks), ""]
    lines += [f"Pictures and roll-ups: {out}"]
    return "\n".join(lines)
