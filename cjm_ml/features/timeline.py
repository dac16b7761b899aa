"""Point-in-time access to the event table, vectorised.

``Timeline`` sorts the events once by customer, time and type, and answers questions for many
instances at once ("how many VDP views did this customer have in the 7 days before the
cutoff?", "when was the first outbound contact at or after the lead?") with binary searches
and prefix sums: no joins of instances against events, no per-customer Python loops.

Every window is half-open in time, ``[start, end)``: an event exactly at a cutoff is *not*
before it, so nothing at or after the prediction moment can leak into a feature. Results
depend only on each customer's own events, so the same instance gets the same answer from the
whole table, a partition of customers, or that customer's events alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from cjm_ml.events import REQUIRED_COLUMNS, catalogue

NS_MIN = 60 * 1_000_000_000
NS_HOUR = 60 * NS_MIN
NS_DAY = 24 * NS_HOUR


@dataclass(frozen=True)
class Window:
    """Per-instance ranges ``[lo, hi)`` of positions in the timeline's sorted events."""

    lo: np.ndarray
    hi: np.ndarray


class MissingColumnsError(ValueError):
    """The events table lacks columns the feature code needs."""


class Timeline:
    """The events of many customers, sorted for point-in-time queries.

    Refuses a table without the event model's required columns (``MissingColumnsError``
    names them). Accepts the typed table from ``load_events`` or any frame with the same
    columns; input row order does not matter.
    """

    def __init__(self, events: pd.DataFrame) -> None:
        missing = [
            c
            for c in (*REQUIRED_COLUMNS, "channel", "value", "attributes", "vehicle_id")
            if c not in events.columns
        ]
        if missing:
            raise MissingColumnsError(f"events table is missing column(s): {', '.join(missing)}")
        cat = catalogue()
        self._type_codes = {k: i for i, k in enumerate(cat.event_type_keys)}
        self._channel_codes = {k: i for i, k in enumerate(cat.channels)}
        customer = events["customer_id"]
        if isinstance(customer.dtype, pd.CategoricalDtype):
            cust_codes = customer.cat.codes.to_numpy().astype(np.int64)
            self.customers = pd.Index(customer.cat.categories.astype("string"))
        else:
            codes, uniques = pd.factorize(customer, sort=False)
            cust_codes = codes.astype(np.int64)
            self.customers = pd.Index(pd.Series(uniques).astype("string"))
        ts = to_ns(events["ts"])
        etype = _codes(events["event_type"], list(self._type_codes))
        if (etype < 0).any():
            bad = events["event_type"].astype("string")[etype < 0].iloc[0]
            raise ValueError(f"unknown event type {bad!r}; validate the events first")
        self._n_types = len(self._type_codes)
        self._clock = _Clock(ts, n_customers=len(self.customers) + 1, n_types=self._n_types)
        key = (cust_codes * self._clock.span + self._clock.tick(ts)) * self._n_types + etype
        order = np.argsort(key, kind="stable")
        key = key[order]
        # Same customer, time and type: order by channel, value, then id, so input order
        # never decides which of two simultaneous events is "first".
        tie = np.flatnonzero(key[1:] == key[:-1])
        if len(tie):
            members = np.unique(np.concatenate([tie, tie + 1]))
            rows = order[members]
            sub = events.iloc[rows]
            sub_order = np.lexsort(
                (
                    sub["event_id"].astype("string").to_numpy(dtype=str),
                    np.nan_to_num(sub["value"].to_numpy(dtype=float), nan=np.inf),
                    _codes(sub["channel"], list(self._channel_codes)),
                    key[members],
                )
            )
            order[members] = rows[sub_order]
        self.order = order
        self.key = key
        self.cust = cust_codes[order]
        self.ts = ts[order]
        self.etype = etype[order]
        self.channel = _codes(events["channel"], list(self._channel_codes))[order]
        self.value = events["value"].to_numpy(dtype=float, na_value=np.nan)[order]
        self._events = events
        self._positions: dict[tuple[str, ...], np.ndarray] = {}

    @classmethod
    def of(cls, events: pd.DataFrame | Timeline) -> Timeline:
        """``events`` itself when already a Timeline, else a Timeline built from the table."""
        return events if isinstance(events, Timeline) else cls(events)

    @cached_property
    def _by_type(self) -> np.ndarray:
        """All positions grouped by event type, ascending within each type."""
        return np.argsort(self.etype, kind="stable")

    @cached_property
    def _type_bounds(self) -> np.ndarray:
        """Where each event type's positions start and end in ``_by_type``."""
        return np.concatenate([[0], np.cumsum(np.bincount(self.etype, minlength=self._n_types))])

    def __len__(self) -> int:
        return len(self.ts)

    # ------------------------------------------------------------------ instance mapping
    def customer_codes(self, customer_ids: pd.Series) -> np.ndarray:
        """Timeline codes of the given customers (-1 for a customer with no events)."""
        return np.asarray(self.customers.get_indexer(customer_ids.astype("string")), dtype=np.int64)

    def position(self, cust: np.ndarray, ts: np.ndarray) -> np.ndarray:
        """Position of the first event of ``cust`` at or after ``ts`` (ns since epoch).

        Everything before that position (and from the customer's first event on) happened
        strictly before ``ts``.
        """
        safe = np.maximum(cust, 0)
        pos = _search(self.key, (safe * self._clock.span + self._clock.tick(ts)) * self._n_types)
        return np.where(cust < 0, 0, pos)

    def customer_start(self, cust: np.ndarray) -> np.ndarray:
        """Position of each customer's first event."""
        pos = _search(self.key, np.maximum(cust, 0) * self._clock.span * self._n_types)
        return np.where(cust < 0, 0, pos)

    def window(self, cust: np.ndarray, start: np.ndarray | None, end: np.ndarray) -> Window:
        """Events of each customer with ``start <= ts < end`` (``start=None``: from the first)."""
        hi = self.position(cust, end)
        lo = self.customer_start(cust) if start is None else self.position(cust, start)
        lo = np.minimum(lo, hi)
        return Window(lo=lo, hi=hi)

    # ------------------------------------------------------------------ masks and queries
    def positions(self, *event_types: str) -> np.ndarray:
        """Sorted positions of events of the given types (cached)."""
        key = tuple(sorted(event_types))
        if key not in self._positions:
            unknown = [t for t in key if t not in self._type_codes]
            if unknown:
                raise KeyError(f"unknown event type(s) {unknown}")
            parts = [self._by_type[self._type_bounds[c] : self._type_bounds[c + 1]]
                     for c in (self._type_codes[t] for t in key)]  # fmt: skip
            self._positions[key] = parts[0] if len(parts) == 1 else np.sort(np.concatenate(parts))
        return self._positions[key]

    @staticmethod
    def count(positions: np.ndarray, window: Window) -> np.ndarray:
        """How many of ``positions`` fall in each window."""
        return _search(positions, window.hi) - _search(positions, window.lo)

    @staticmethod
    def first(positions: np.ndarray, window: Window) -> np.ndarray:
        """The first of ``positions`` in each window, or -1."""
        j = _search(positions, window.lo)
        cand = positions[np.minimum(j, len(positions) - 1)] if len(positions) else window.lo
        found = (j < len(positions)) & (cand < window.hi)
        return np.where(found, cand, -1)

    @staticmethod
    def last(positions: np.ndarray, window: Window) -> np.ndarray:
        """The last of ``positions`` in each window, or -1."""
        j = _search(positions, window.hi) - 1
        cand = positions[np.maximum(j, 0)] if len(positions) else window.lo
        found = (j >= 0) & (cand >= window.lo) & (cand < window.hi)
        return np.where(found, cand, -1)

    def ts_at(self, pos: np.ndarray) -> np.ndarray:
        """Event time (ns) at each position; NaN where ``pos`` is -1."""
        return np.where(pos >= 0, self.ts[np.maximum(pos, 0)].astype(float), np.nan)

    def value_at(self, pos: np.ndarray) -> np.ndarray:
        """Event ``value`` at each position; NaN where ``pos`` is -1."""
        return np.where(pos >= 0, self.value[np.maximum(pos, 0)], np.nan)

    def channel_at(self, pos: np.ndarray) -> np.ndarray:
        """Channel code at each position; -1 where ``pos`` is -1 or the channel is missing."""
        return np.where(pos >= 0, self.channel[np.maximum(pos, 0)], -1)

    @cached_property
    def channel_names(self) -> np.ndarray:
        """Channel names by code, for decoding ``channel_at``."""
        return np.array(list(self._channel_codes), dtype=object)

    def attribute(self, positions: np.ndarray, key: str) -> pd.Series:
        """A string attribute of the events at ``positions`` (missing -> <NA>)."""
        attrs = pa.array(self.column(positions, "attributes").astype("string"), type=pa.string())
        pattern = '"' + key + r'"\s*:\s*"(?P<v>[^"]*)"'
        found = pc.struct_field(pc.extract_regex(attrs, pattern), [0])
        return pd.Series(found, dtype="string")

    def column(self, positions: np.ndarray, name: str) -> pd.Series:
        """Any column of the events at ``positions``, as stored."""
        return self._events[name].iloc[self.order[positions]].reset_index(drop=True)


class _Clock:
    """Event times as small integers, exactly: ``tick(t)`` counts whole units of the coarsest
    resolution (1 s, 1 ms, 1 us, 1 ns) that divides every event time, rounding *up* for query
    times, so ``event < query`` holds exactly when ``tick(event) < tick(query)``. Falls back to
    ranks of the distinct times when the customer x time x type key would overflow int64."""

    def __init__(self, ts: np.ndarray, n_customers: int, n_types: int) -> None:
        self.unit = next(u for u in (10**9, 10**6, 10**3, 1) if len(ts) == 0 or not (ts % u).any())
        self.t0 = int(ts.min()) // self.unit if len(ts) else 0
        self.span = (int(ts.max()) // self.unit - self.t0 + 2) if len(ts) else 2
        self.ranks: np.ndarray | None = None
        if n_customers * self.span * n_types >= 2**62:
            self.ranks = np.unique(ts)
            self.span = len(self.ranks) + 1

    def tick(self, t: np.ndarray) -> np.ndarray:
        """Ticks of ``t`` within ``[0, span)``: the event's own tick, or a query's ceiling."""
        if self.ranks is not None:
            return _search(self.ranks, t)
        up = -(-t // self.unit) - self.t0
        return np.clip(up, 0, self.span - 1)


def _search(a: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``np.searchsorted(a, v)``, with large query batches sorted first (cache friendly)."""
    if len(v) < 50_000:
        return np.searchsorted(a, v)
    order = np.argsort(v, kind="stable")
    out = np.empty(len(v), dtype=np.int64)
    out[order] = np.searchsorted(a, v[order])
    return out


def _codes(values: pd.Series, categories: Iterable[str]) -> np.ndarray:
    """Codes of ``values`` in ``categories`` (-1 for missing or unknown)."""
    cats = list(categories)
    if isinstance(values.dtype, pd.CategoricalDtype) and list(values.cat.categories) == cats:
        return values.cat.codes.to_numpy().astype(np.int64)
    return pd.Categorical(values.astype("string"), categories=cats).codes.astype(np.int64)


def to_ns(ts: pd.Series) -> np.ndarray:
    """Timezone-aware timestamps as int64 nanoseconds since the epoch; refuses naive times."""
    if not isinstance(ts.dtype, pd.DatetimeTZDtype):
        raise ValueError("'ts' must be timezone-aware UTC timestamps; validate the events first")
    return np.asarray(ts.dt.tz_convert("UTC").dt.as_unit("ns").array.asi8, dtype=np.int64)
