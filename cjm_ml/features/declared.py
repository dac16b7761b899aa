"""Declared features computed: each instance's value of each declared feature at its cutoff.

The declarations (``cjm_ml.featureset``: a features file, or the generic features of every
touchpoint) say what to read; this module reads it, vectorised over instances. Each take reads
the customer's events that happened *and were known* strictly before the cutoff
(``Timeline.window`` with ``known_before``), so declared features keep the point-in-time
guarantee:

- ``latest``: the attribute of the latest such event (a number, a category, a flag);
- ``count``: how many such events (in the window); ``mean`` / ``sum``: of a numeric attribute
  over them;
- ``days_since`` / ``years_since``: from the latest such event (or the date its attribute
  holds: an ISO date, a time, or a bare year read as 1 January) to the cutoff;
  ``days_until``: from the cutoff to the date the latest event's attribute holds (a warranty
  end: negative once it has passed).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from cjm_ml.features.timeline import NS_DAY, Timeline, Window, to_ns
from cjm_ml.featureset import NUMERIC_TAKES, DeclaredFeature, Kind, Take

#: Words read as a flag's 1 (case-insensitive); any other filled-in word is 0.
TRUE_WORDS = ("1", "true", "yes", "y", "t")
_DAYS_PER_YEAR = 365.25
_YEAR = re.compile(r"^\d{4}$")


def declared_columns(
    events: pd.DataFrame | Timeline,
    instances: pd.DataFrame | Mapping[str, Any],
    features: Sequence[DeclaredFeature],
) -> pd.DataFrame:
    """Each declared feature for each instance (``customer_id``, ``cutoff_ts``), from the
    customer's events known strictly before the cutoff; aligned with ``instances``' index.
    Numbers and dates as float (NaN: nothing known), categories as strings, flags as 0/1."""
    index = instances.index if isinstance(instances, pd.DataFrame) else None
    return pd.DataFrame(declared_arrays(events, instances, features), index=index)


def declared_arrays(
    events: pd.DataFrame | Timeline,
    instances: pd.DataFrame | Mapping[str, Any],
    features: Sequence[DeclaredFeature],
) -> dict[str, Any]:
    """``declared_columns`` as columns (name -> 1-D array): the scoring path's form."""
    tl = Timeline.of(events)
    cust = tl.customer_codes(instances["customer_id"])
    cutoff = to_ns(instances["cutoff_ts"])
    windows: dict[float | None, Window] = {}  # one per length: features share them
    for days in dict.fromkeys(f.window_days for f in features):
        start = None if days is None else cutoff - int(days * NS_DAY)
        windows[days] = tl.window(cust, start, cutoff, known_before=cutoff)
    return {f.name: _column(tl, windows[f.window_days], cutoff, f) for f in features}


def _column(tl: Timeline, window: Window, cutoff: np.ndarray, f: DeclaredFeature) -> object:
    positions = tl.positions(f.event_type)
    if f.take == "count":
        return Timeline.count(positions, window).astype(float)
    if f.take in NUMERIC_TAKES:
        return _over_window(tl, positions, window, f)
    last = Timeline.last(positions, window)
    if f.attribute is None:  # days_since / years_since the event itself
        return _elapsed(cutoff - tl.ts_at(last), f.take)
    values = _attribute_at(tl, last, f.attribute)
    if f.take == "latest":
        return _typed(values, f.kind)
    moments = _as_moments(values)
    elapsed = moments - cutoff if f.take == "days_until" else cutoff - moments
    return _elapsed(elapsed, f.take)


def _attribute_at(tl: Timeline, positions: np.ndarray, key: str) -> pd.Series:
    """The attribute's text at each position (missing where the position is -1)."""
    found = positions >= 0
    out = pd.Series(pd.NA, index=range(len(positions)), dtype="string")
    if found.any():
        out[found] = tl.attribute(positions[found], key).to_numpy()
    return out


def _typed(values: pd.Series, kind: Kind) -> object:
    if kind == "category":
        return pd.array(values, dtype="string")
    if kind == "flag":
        words = values.str.strip().str.lower()
        return np.where(words.isna(), np.nan, words.isin(TRUE_WORDS).astype(float))
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _as_moments(values: pd.Series) -> np.ndarray:
    """Dates, times or bare years (1 January) as ns since the epoch, NaN where unreadable."""
    text = values.str.strip()
    text = text.where(~text.str.fullmatch(_YEAR.pattern).fillna(False), text + "-01-01")
    moments = pd.to_datetime(text, utc=True, errors="coerce", format="mixed")
    ns = moments.to_numpy(dtype="datetime64[ns]").astype(np.int64).astype(float)
    return np.where(moments.isna().to_numpy(), np.nan, ns)


def _elapsed(ns: np.ndarray, take: Take) -> np.ndarray:
    days = np.asarray(ns, dtype=float) / NS_DAY
    return days / _DAYS_PER_YEAR if take == "years_since" else days


def _over_window(tl: Timeline, positions: np.ndarray, window: Window, f: DeclaredFeature) -> object:
    """The mean or sum of a numeric attribute over each window's known events (NaN: none
    with a value). Prefix sums over the positions; events recorded late are counted only once
    known, by ``Timeline.count`` on the valued positions."""
    assert f.attribute is not None  # the model refuses mean/sum without one
    values = pd.to_numeric(tl.attribute(positions, f.attribute), errors="coerce").to_numpy(
        dtype=float, na_value=np.nan
    )
    valued = positions[~np.isnan(values)]
    weights = values[~np.isnan(values)]
    total = Timeline.total(valued, weights, window)
    n = Timeline.count(valued, window)
    if f.take == "sum":
        return np.where(n > 0, total, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, total / np.maximum(n, 1), np.nan)
