"""Planted-friction recovery: do the roll-ups find the deviations the simulator planted?"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from cjm_ml.simulation.rooftops import PlantedDeviation

#: A planted friction counts as recovered when the roll-up ranks it this high or better.
RECOVERY_TOP = 3


def planted_recovery(rollups: pd.DataFrame, planted: Sequence[PlantedDeviation]) -> pd.DataFrame:
    """For each planted deviation (rooftop, friction, task), where the roll-up of its task
    places the friction at its rooftop. A planted deviation is a rooftop carrying more of a
    friction than the group standard, so it is ``recovered`` when the friction is among the
    rooftop's ``RECOVERY_TOP`` frictions by ``excess`` (risk carried above the group standard)
    and that excess is positive. Also given: ``friction_rank`` (among the rooftop's frictions
    by mean positive contribution), ``rank`` (among all its drivers, context included),
    ``mean_contribution`` and ``excess``. A friction the task's features cannot express has no
    rank and is not recovered."""
    seen = dict.fromkeys((p.rooftop_id, p.friction, p.task) for p in planted)
    records = [
        _recovery(rollups, rooftop_id, friction, task) for rooftop_id, friction, task in seen
    ]
    out = pd.DataFrame.from_records(records)
    return out.astype({"friction_rank": "Int64", "rank": "Int64", "excess_rank": "Int64"})


def _recovery(
    rollups: pd.DataFrame, rooftop_id: str, friction: str, task: str
) -> dict[str, object]:
    at = rollups[(rollups["task"] == task) & (rollups["rooftop_id"] == rooftop_id)]
    frictions = at[at["kind"] == "friction"]
    excess_rank = frictions["excess"].rank(ascending=False, method="min")
    row = at[at["driver"] == friction]
    record: dict[str, object] = {
        "task": task,
        "rooftop_id": rooftop_id,
        "friction": friction,
        "label": friction,
        "excess_rank": None,
        "friction_rank": None,
        "rank": None,
        "mean_contribution": None,
        "excess": None,
        "recovered": False,
    }
    if not row.empty:
        r = row.iloc[0]
        rank = int(excess_rank[row.index[0]])
        record.update(
            label=r["label"],
            excess_rank=rank,
            friction_rank=int(r["friction_rank"]),
            rank=int(r["rank"]),
            mean_contribution=float(r["mean_contribution"]),
            excess=float(r["excess"]),
            recovered=bool(rank <= RECOVERY_TOP and r["excess"] > 0),
        )
    return record


def recovery_rate(recovery: pd.DataFrame) -> float:
    """The share of planted deviations recovered (NaN when none were planted)."""
    return float(recovery["recovered"].mean()) if len(recovery) else float("nan")


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
