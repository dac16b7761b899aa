"""The simulator's output tables: its event log as canonical events, and its truth per task."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cjm_ml.events import catalogue, event_dtypes, sort_events
from cjm_ml.params import Task
from cjm_ml.simulation.log import padded_ids
from cjm_ml.simulation.state import DAY, GroupState

#: Research before the first day of the history is kept this far back (in days).
KEEP_BEFORE_START_DAYS = 30


def events_frame(state: GroupState, dealer_group_id: str) -> pd.DataFrame:
    """The logged events inside the history, in the canonical event model, sorted."""
    parts = state.log.parts
    cols = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    keep = (cols["ts"] <= state.t_end) & (
        cols["ts"] >= state.t_start - KEEP_BEFORE_START_DAYS * DAY
    )
    cols = {k: v[keep] for k, v in cols.items()}
    cat = catalogue()
    dtypes = event_dtypes()
    vehicle = pd.Series(cols["vehicle"])
    frame = pd.DataFrame(
        {
            "event_id": padded_ids("e-", cols["key"], 9).astype("string"),
            "dealer_group_id": pd.Categorical.from_codes(
                np.zeros(len(cols["key"]), dtype=np.int8), categories=[dealer_group_id]
            ),
            "rooftop_id": pd.Categorical.from_codes(
                cols["rooftop"], categories=[r.rooftop_id for r in state.rooftops]
            ),
            "customer_id": padded_ids("c-", cols["cust"], 6).astype("string"),
            "ts": pd.to_datetime(cols["ts"].astype("int64"), unit="s", utc=True).astype(
                dtypes["ts"]
            ),
            "event_type": pd.Categorical.from_codes(cols["etype"], dtype=dtypes["event_type"]),
            "channel": pd.Categorical.from_codes(cols["channel"], categories=list(cat.channels)),
            "source": pd.Categorical.from_codes(cols["source"], categories=state.sources),
            "vehicle_id": padded_ids("v-", vehicle.clip(lower=0), 7)
            .where(vehicle >= 0)
            .astype("string"),
            "value": cols["value"],
            "attributes": pd.array(cols["attrs"], dtype="string"),
        }
    )
    frame["recorded_ts"] = _recorded_late(state, frame)
    return sort_events(frame)


def _recorded_late(state: GroupState, frame: pd.DataFrame) -> pd.Series:
    """``recorded_ts``: for the event types ``[recording]`` names, a share recorded that many
    hours after they happened; NaT (recorded as it happened) elsewhere. One random stream,
    drawn for every event, so the rest of the log does not move with these settings."""
    rng = state.rng("recording")
    draw, delay = rng.random(len(frame)), rng.random(len(frame))
    hours = np.full(len(frame), np.nan)
    for event_type, late in state.assumptions.recording.late.items():
        chosen = (frame["event_type"] == event_type).to_numpy() & (draw < late.share)
        low, high = late.delay_hours
        hours[chosen] = low + (high - low) * delay[chosen]
    later = pd.to_timedelta(hours, unit="h")
    return (frame["ts"] + later).where(~np.isnan(hours) & (hours > 0))


def truth_frames(state: GroupState) -> dict[Task, pd.DataFrame]:
    """The truth per task: one row per instance whose cutoff falls inside the history, with
    ids, timestamps, ``true_prob``, the label and the causal terms, sorted by instance id."""
    rooftop_ids = np.array([r.rooftop_id for r in state.rooftops])
    out: dict[Task, pd.DataFrame] = {}
    for task, frames in state.truth_rows.items():
        df = pd.concat(frames, ignore_index=True)
        df = df[df["cutoff_ts"] <= state.t_end].copy()
        prefix, width = ("a-", 7) if task == "no_show" else ("e-", 9)
        df.insert(
            0, "instance_id", padded_ids(prefix, df.pop("instance_key").to_numpy(), width).array
        )
        df.insert(1, "customer_id", padded_ids("c-", df.pop("customer_idx").to_numpy(), 6).array)
        df.insert(2, "rooftop_id", rooftop_ids[df.pop("rooftop_idx").to_numpy()])
        for c in [c for c in df.columns if c.endswith("_ts")]:
            df[c] = pd.to_datetime(np.floor(df[c].to_numpy()).astype("int64"), unit="s", utc=True)
        df["label"] = df["label"].astype("Int8")
        friction_cols = [c for c in df.columns if c.startswith("friction_")]
        applied = df[friction_cols].to_numpy() > 0
        names = np.array([c.removeprefix("friction_") for c in friction_cols])
        df["planted_frictions"] = [",".join(names[row]) for row in applied]
        out[task] = df.sort_values("instance_id", ignore_index=True)
    return out
