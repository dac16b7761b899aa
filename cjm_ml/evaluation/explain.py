"""``cjm explain`` and the demo's explanation report, with the checks a simulated group allows.

On a folder the simulator wrote (a ``rooftops.json`` with planted deviations beside the feature
folder), the roll-ups are scored against the planted frictions and, on request, the what-if is
checked by re-simulating. On a real dealer group the report is ``cjm_ml.explain.report``'s alone.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from cjm_ml.config import Settings
from cjm_ml.evaluation.recovery import format_recovery, planted_recovery
from cjm_ml.evaluation.simulated import Simulated, read_simulated
from cjm_ml.evaluation.what_if import format_what_if, resimulated_what_if
from cjm_ml.explain.drivers import DriverExplainer
from cjm_ml.explain.report import Explained, explain_task, explain_tasks, format_pictures
from cjm_ml.explain.rollup import HOTSPOT_COLUMNS, hotspots
from cjm_ml.io import write_parquet_atomic
from cjm_ml.params import TASKS, Task
from cjm_ml.simulation import SimulatedGroup, simulate


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
    hotspots_file: Path | None = None,
) -> str:
    """``cjm explain``: ``explain_task``'s roll-up and instance (defaults:
    ``<data_dir>/features/<task>.parquet``, ``<models_dir>/<task>``, ``<data_dir>/explain``),
    and on a simulated group (a ``rooftops.json`` with planted deviations in the feature
    folder's parent) the planted-friction recovery (with ``what_if``, the re-simulation
    checks). With ``hotspots_file``, the task's hotspots replace its rows there
    (``update_hotspots``). Returns the text. Refuses a missing file, an unknown rooftop or
    instance, by name."""
    settings = settings or Settings()
    features = features or settings.data_dir / "features" / f"{task}.parquet"
    explained = explain_task(
        task,
        features=features,
        model=model or settings.models_dir / task,
        out=out or settings.data_dir / "explain",
        rooftop=rooftop,
        instance_id=instance_id,
    )
    lines = list(explained.lines)
    if hotspots_file is not None:
        update_hotspots(hotspots_file, explained.rollup)
        lines += [f"Friction hotspots ({task}) -> {hotspots_file}", ""]
    simulated = read_simulated(features.parent.parent)
    if simulated is not None:
        lines += _planted_checks(explained, simulated, task, rooftop, what_if)
    return "\n".join([*lines, format_pictures(explained.pictures)])


def update_hotspots(path: Path, rollups: pd.DataFrame) -> pd.DataFrame:
    """Write the hotspots of ``rollups`` (``explain.rollup.hotspots``) into the file at
    ``path`` (atomically), where the journey map and the API read them: the rows of the
    roll-ups' tasks replace those tasks' rows, other tasks' rows are kept. Returns what was
    written. Refuses an existing file that is not a hotspots table, by name."""
    fresh = hotspots(rollups)
    kept = _other_tasks_hotspots(path, set(rollups["task"]))
    if not kept.empty:
        fresh = (
            pd.concat([kept, fresh], ignore_index=True)
            .sort_values(
                ["task", "rooftop_id", "mean_contribution"],
                ascending=[True, True, False],
                kind="stable",
            )
            .reset_index(drop=True)
        )
    write_parquet_atomic(fresh, path)
    return fresh


def _other_tasks_hotspots(path: Path, tasks: set[str]) -> pd.DataFrame:
    """The rows of the hotspots file at ``path`` (none: no file) of tasks not in ``tasks``."""
    if not path.exists():
        return pd.DataFrame(columns=list(HOTSPOT_COLUMNS))
    old = pd.read_parquet(path)
    missing = [c for c in HOTSPOT_COLUMNS if c not in old.columns]
    if missing:
        raise ValueError(f"{path}: not a hotspots table (no {', '.join(missing)})")
    return old.loc[~old["task"].isin(tasks), list(HOTSPOT_COLUMNS)]


def _planted_checks(
    explained: Explained, simulated: Simulated, task: Task, rooftop: str | None, what_if: bool
) -> list[str]:
    """The recovery of the task's planted frictions (at ``rooftop``, if given), and with
    ``what_if`` one re-simulation per planted rooftop and friction; no lines if none."""
    planted = [p for p in simulated.planted if p.task == task]
    if rooftop is not None:
        planted = [p for p in planted if p.rooftop_id == rooftop]
    if not planted:
        return []
    lines = ["Planted frictions (simulated group)"]
    lines += [format_recovery(planted_recovery(explained.rollup, planted)), ""]
    if what_if:
        original = simulate(simulated.config)
        pairs = list(dict.fromkeys((p.rooftop_id, p.friction) for p in planted))
        checkable, skipped = split_checkable(explained.explainer, pairs)
        checks = [
            resimulated_what_if(
                explained.explainer,
                simulated.config,
                rooftop_id,
                friction,
                original=original,
                table=explained.table,
            )
            for rooftop_id, friction in checkable
        ]
        lines += ["What-if against re-simulation"]
        lines += [format_what_if(checks)] if checks else []
        lines += [*skipped, ""]
    return lines


def split_checkable(
    explainer: DriverExplainer, pairs: list[tuple[str, str]]
) -> tuple[list[tuple[str, str]], list[str]]:
    """The (rooftop, friction) pairs whose what-if the model can compute, and a line for each
    it cannot: a friction whose features were all constant in training is not in the model."""
    checkable = [(r, f) for r, f in pairs if f in explainer.fixes]
    skipped = [
        f"  {r} {f}: not checked: the model uses none of its features (constant in training)"
        for r, f in pairs
        if f not in explainer.fixes
    ]
    return checkable, skipped


def explain_demo(
    demo_dir: Path, models_dir: Path, *, out: Path | None = None, what_if: bool = True
) -> str:
    """The demo's explanation report: each task's group roll-up (``explain_tasks``, which also
    writes the beeswarms, ``<out>/rollups.parquet`` and ``<out>/hotspots.parquet``), the
    planted-friction recovery over all tasks, and (``what_if``) one re-simulation check per
    task. ``out`` defaults to ``<demo_dir>/explain``. Returns the text."""
    out = out or demo_dir / "explain"
    explained = explain_tasks(TASKS, demo_dir / "features", models_dir, out)
    lines = [line for e in explained.values() for line in e.lines]
    simulated = read_simulated(demo_dir)
    if simulated is not None and simulated.planted:
        rollups = pd.concat([e.rollup for e in explained.values()], ignore_index=True)
        lines += ["Planted frictions (simulated group)"]
        lines += [format_recovery(planted_recovery(rollups, simulated.planted)), ""]
        if what_if:
            lines += ["What-if against re-simulation", _first_per_task(explained, simulated), ""]
    lines += [f"Pictures and roll-ups: {out}"]
    return "\n".join(lines)


def _first_per_task(explained: dict[Task, Explained], simulated: Simulated) -> str:
    """The re-simulation check of each task's first planted friction, as text."""
    original: SimulatedGroup = simulate(simulated.config)
    checks = []
    for task, e in explained.items():
        pairs = [(p.rooftop_id, p.friction) for p in simulated.planted if p.task == task]
        first = next(iter(split_checkable(e.explainer, pairs)[0]), None)
        if first is None:
            continue
        checks.append(
            resimulated_what_if(
                e.explainer,
                simulated.config,
                first[0],
                first[1],
                original=original,
                table=e.table,
            )
        )
    return format_what_if(checks)
