"""Point-in-time access to the event table, vectorised.

``Timeline`` sorts the events once by customer, time and type, and answers questions for many
instances at once ("how many VDP views did this customer have in the 7 days before the
cutoff?", "when was the first outbound contact at or after the lead?") with binary searches
and prefix sums: no joins of instances against events, no per-customer Python loops.

Every window is half-open in time, ``[start, end)``: an event exactly at a cutoff is *not*
before it, so nothing at or after the prediction moment can leak into a feature. Results
depend only on each customer's own events, so the same instance gets the same answer from the
whole table, a partition of customers, or that customer's events alone.

An event may have been recorded after it happened (``recorded_ts``: a no-show or a closed
repair order written into the CRM later). Its *known-at* time is the later of ``ts`` and
``recorded_ts``. Features see an event only once it is known: a window built with
``known_before`` (the instance's cutoff) counts an event only if ``known-at < known_before``,
while its range is still by ``ts``; labels, built without it, use when things happened.
``Timeline(events, until=now)`` and ``before(now)`` keep the events known before ``now``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache, cached_property
from typing import Any, TypeAlias

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from cjm_ml.events import RECORDED_TS, REQUIRED_COLUMNS, catalogue

NS_MIN = 60 * 1_000_000_000
NS_HOUR = 60 * NS_MIN
NS_DAY = 24 * NS_HOUR

#: A table as its columns: name -> equal-length 1-D array (numpy or pandas extension array),
#: in column order. ``pd.DataFrame(columns)`` is the table; the scoring path skips building it.
Columns: TypeAlias = dict[str, Any]

#: The canonical string dtype ("string": pyarrow-backed, <NA> for missing).
STRING = pd.StringDtype()

_UTC_NS = pd.DatetimeTZDtype("ns", "UTC")

#: Below this many values, small per-value Python work beats a vectorised call's fixed cost.
_SMALL = 100
#: A timeline of at most this many events is a request's: some columns are read whole, once.
_FEW_EVENTS = 1_000
#: JSON whitespace, spelled out: RE2 (pyarrow) and Python's ``re`` read it identically.
_WS = r"[\t\n\f\r ]*"


@dataclass(frozen=True)
class Recorded:
    """The events recorded after they happened: each event's known-at time (ns, the later of
    ``ts`` and ``recorded_ts``) and whether it is later than ``ts`` (``late``), by position."""

    known: np.ndarray
    late: np.ndarray


@dataclass(frozen=True)
class Window:
    """Per-instance ranges ``[lo, hi)`` of positions in the timeline's sorted events.

    With ``known_before`` (ns, one per instance) and the timeline's ``recorded`` events, an
    event in range counts only if it was known before that moment (``Timeline.window`` sets
    both; ``dataclasses.replace`` keeps them when a range is narrowed)."""

    lo: np.ndarray
    hi: np.ndarray
    known_before: np.ndarray | None = None
    recorded: Recorded | None = None


class MissingColumnsError(ValueError):
    """The events table lacks columns the feature code needs."""


#: Attributes of a Timeline that hold one value per sorted event (sliced together by ``before``).
_PER_EVENT = ("key", "order", "cust", "ts", "etype", "channel", "value")


class Timeline:
    """The events of many customers, sorted for point-in-time queries.

    Refuses a table without the event model's required columns (``MissingColumnsError``
    names them). Accepts the typed table from ``load_events`` or any frame with the same
    columns; input row order does not matter. ``recorded_ts`` is optional (absent or null:
    recorded when it happened). With ``until`` (a timezone-aware moment), only the events
    known strictly before it are indexed: the same as passing
    ``events[events["recorded_ts"].fillna(events["ts"]) < until]``, without copying the table.
    """

    def __init__(self, events: pd.DataFrame, until: pd.Timestamp | None = None) -> None:
        _require_columns(events)
        self._type_codes, self._channel_codes = _catalogue_codes()
        known = _known_ns(events)  # None: every event recorded when it happened
        ts, rows = _indexed_times(events["ts"], until, known)  # rows: indexed, None for all
        self._customer_values: Any
        cust_codes, self._customer_values, self._customers_categorical = _customer_codes(
            events["customer_id"], rows
        )
        etype = _event_type_codes(events["event_type"], self._type_codes, rows)
        self._n_types = len(self._type_codes)
        n_customers = len(self._customer_values) + 1
        self._clock = _Clock(ts, n_customers=n_customers, n_types=self._n_types)
        key = (cust_codes * self._clock.span + self._clock.tick(ts)) * self._n_types + etype
        local = np.argsort(key, kind="stable")  # positions in the indexed rows
        key = key[local]
        local = _order_ties(local, key, events, rows, self._channel_codes)
        self.order = local if rows is None else rows[local]
        self.key = key
        self.cust = cust_codes[local]
        self.ts = ts[local]
        self.etype = etype[local]
        self.channel = _codes(events["channel"], self._channel_codes)[self.order]
        self.value = events["value"].to_numpy(dtype=float, na_value=np.nan)[self.order]
        self._known = None if known is None else _late_only(known[self.order], self.ts)
        self._events = events
        self._positions: dict[tuple[str, ...], np.ndarray] = {}
        self._texts: dict[str, tuple[Any, np.ndarray | None] | None] = {}
        self._py_texts: dict[str, list[str | None]] = {}

    @classmethod
    def of(cls, events: pd.DataFrame | Timeline) -> Timeline:
        """``events`` itself when already a Timeline, else a Timeline built from the table."""
        return events if isinstance(events, Timeline) else cls(events)

    def before(self, until: pd.Timestamp) -> Timeline:
        """This timeline with only the events known (recorded) before ``until``
        (timezone-aware), with no re-sorting: every answer is the one
        ``Timeline(events, until=until)`` gives."""
        kept = self.known < timestamp_ns(until)
        if kept.all():
            return self
        sub = Timeline.__new__(Timeline)
        shared = ("_type_codes", "_channel_codes", "_customers_categorical", "_customer_values",
                  "_n_types", "_clock", "_events", "_texts")  # fmt: skip
        for name in shared:
            setattr(sub, name, getattr(self, name))
        for name in _PER_EVENT:
            setattr(sub, name, getattr(self, name)[kept])
        sub._known = None if self._known is None else _late_only(self._known[kept], sub.ts)
        sub._positions = {}
        sub._py_texts = {}
        return sub

    @property
    def known(self) -> np.ndarray:
        """When each event became known (ns, by position): its ``recorded_ts``, or its ``ts``
        when it was recorded as it happened."""
        return self.ts if self._known is None else self._known

    @cached_property
    def recorded(self) -> Recorded | None:
        """The known-at times and the events recorded after they happened; ``None`` when every
        event was recorded as it happened (then windows need no check)."""
        if self._known is None:
            return None
        return Recorded(known=self._known, late=self._known > self.ts)

    @cached_property
    def customers(self) -> pd.Index:
        """The customer ids, as strings, by timeline customer code."""
        if self._customers_categorical:
            return pd.Index(self._customer_values.astype("string"))
        return pd.Index(pd.Series(self._customer_values).astype("string"))

    @cached_property
    def _customer_lookup(self) -> dict[str, int] | None:
        """Customer id -> code for a timeline of a few customers with string ids, else None."""
        values = self._customer_values
        if len(values) > _SMALL or not isinstance(
            values.dtype, pd.StringDtype | np.dtypes.ObjectDType
        ):
            return None
        ids = values.tolist()
        if not all(isinstance(v, str) for v in ids):
            return None
        return {v: i for i, v in enumerate(ids)}

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

    @staticmethod
    def event_type_names() -> tuple[str, ...]:
        """Event type names by code (``etype``): the journey catalogue's order."""
        return tuple(_catalogue_codes()[0])

    def event_type_code(self, event_type: str) -> int:
        """The code of an event type in ``etype``; KeyError for an unknown type."""
        return self._type_codes[event_type]

    # ------------------------------------------------------------------ instance mapping
    def customer_codes(self, customer_ids: pd.Series | Any) -> np.ndarray:
        """Timeline codes of the given customers (-1 for a customer with no events).

        ``customer_ids``: a Series or a 1-D array of ids."""
        lookup = self._customer_lookup
        if (
            lookup is not None
            and len(customer_ids) <= _SMALL
            and isinstance(customer_ids.dtype, pd.StringDtype)
        ):
            return np.array([lookup.get(c, -1) for c in customer_ids.tolist()], dtype=np.int64)
        ids = pd.Series(customer_ids, copy=False).astype("string")
        return np.asarray(self.customers.get_indexer(ids), dtype=np.int64)

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

    def window(
        self,
        cust: np.ndarray,
        start: np.ndarray | None,
        end: np.ndarray,
        known_before: np.ndarray | None = None,
    ) -> Window:
        """Events of each customer with ``start <= ts < end`` (``start=None``: from the first).

        ``known_before`` (ns per instance, a feature's cutoff): of those, only the events
        known (recorded) before it count in ``count``, ``first`` and ``last`` (an ``end``
        after it is taken as it). ``None``: by ``ts`` alone (what happened, as labels see it)."""
        if known_before is not None:
            end = np.minimum(end, known_before)
        hi = self.position(cust, end)
        lo = self.customer_start(cust) if start is None else self.position(cust, start)
        lo = np.minimum(lo, hi)
        if known_before is None or self.recorded is None:
            return Window(lo=lo, hi=hi)
        known = np.broadcast_to(np.asarray(known_before, dtype=np.int64), lo.shape)
        return Window(lo=lo, hi=hi, known_before=known, recorded=self.recorded)

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
        """How many of ``positions`` fall in each window (and were known in time, if the
        window says by when)."""
        n = _search(positions, window.hi) - _search(positions, window.lo)
        late = _LateInWindow.of(positions, window)
        if late is None:
            return n
        return n - np.bincount(late.inst[~late.visible], minlength=len(n))

    @staticmethod
    def total(positions: np.ndarray, weights: np.ndarray, window: Window) -> np.ndarray:
        """Per window, the sum of ``weights`` (aligned with ``positions``) over the positions
        ``count`` counts: prefix sums over those recorded as they happened, plus the late ones
        known in time."""
        late = _LateInWindow.of(positions, window)
        on_time = positions if late is None else late.on_time
        on_weights = weights if late is None else weights[np.isin(positions, on_time)]
        prefix = np.concatenate([[0.0], np.cumsum(on_weights, dtype=float)])
        out = prefix[_search(on_time, window.hi)] - prefix[_search(on_time, window.lo)]
        if late is not None and late.visible.any():
            seen = late.cand[late.visible]
            out += np.bincount(
                late.inst[late.visible],
                weights=weights[np.searchsorted(positions, seen)],
                minlength=len(out),
            )
        return out

    @staticmethod
    def first(positions: np.ndarray, window: Window) -> np.ndarray:
        """The first of ``positions`` in each window (known in time), or -1."""
        late = _LateInWindow.of(positions, window)
        if late is None:
            return _first(positions, window)
        return _earliest(_first(late.on_time, window), late.pick(first=True))

    @staticmethod
    def last(positions: np.ndarray, window: Window) -> np.ndarray:
        """The last of ``positions`` in each window (known in time), or -1."""
        late = _LateInWindow.of(positions, window)
        if late is None:
            return _last(positions, window)
        return np.maximum(_last(late.on_time, window), late.pick(first=False))

    def ts_at(self, pos: np.ndarray) -> np.ndarray:
        """Event time (ns) at each position; NaN where ``pos`` is -1."""
        return np.where(pos >= 0, _take(self.ts, pos).astype(float), np.nan)

    def value_at(self, pos: np.ndarray) -> np.ndarray:
        """Event ``value`` at each position; NaN where ``pos`` is -1."""
        return np.where(pos >= 0, _take(self.value, pos), np.nan)

    def channel_at(self, pos: np.ndarray) -> np.ndarray:
        """Channel code at each position; -1 where ``pos`` is -1 or the channel is missing."""
        return np.where(pos >= 0, _take(self.channel, pos), -1)

    @cached_property
    def channel_names(self) -> np.ndarray:
        """Channel names by code, for decoding ``channel_at``."""
        return np.array(list(self._channel_codes), dtype=object)

    def attribute(self, positions: np.ndarray, key: str) -> pd.Series:
        """A string attribute of the events at ``positions`` (missing -> <NA>)."""
        return pd.Series(self.attribute_array(positions, key), dtype="string")

    def attribute_array(self, positions: np.ndarray, key: str) -> pa.Array:
        """``attribute`` as a pyarrow ``large_string`` array (null where missing)."""
        if len(positions) <= _SMALL:
            pattern = _attribute_regex(key)
            if len(self) <= _FEW_EVENTS:  # a request's events: read them all once, as Python
                every = self._python_texts("attributes")
                texts = [every[p] for p in positions.tolist()]
            else:
                texts = self.text_array(positions, "attributes").to_pylist()
            found = [
                m.group(1) if text is not None and (m := pattern.search(text)) else None
                for text in texts
            ]
            return pa.array(found, type=pa.large_string())
        attrs = pa.array(self.column(positions, "attributes").astype("string"), type=pa.string())
        found = pc.struct_field(pc.extract_regex(attrs, _attribute_regex(key).pattern), [0])
        return _flat(found).cast(pa.large_string())

    def _python_texts(self, name: str) -> list[str | None]:
        """Every event's ``name`` as Python strings, in timeline order (read once, for a
        request's few events)."""
        if name not in self._py_texts:
            whole = self._text_array(np.arange(len(self)), name)
            self._py_texts[name] = whole.to_pylist()
        return self._py_texts[name]

    def column(self, positions: np.ndarray, name: str) -> pd.Series:
        """Any column of the events at ``positions``, as stored."""
        return self._events[name].iloc[self.order[positions]].reset_index(drop=True)

    def text(self, positions: np.ndarray, name: str) -> Any:
        """A column of the events at ``positions`` as a "string" array (missing -> <NA>): the
        values of ``column(positions, name).astype("string")``, without building a Series."""
        return pd.arrays.ArrowStringArray(self.text_array(positions, name))

    def text_array(self, positions: np.ndarray, name: str) -> pa.Array | pa.ChunkedArray:
        """``text`` as a pyarrow string array (null where missing)."""
        if len(self) <= _FEW_EVENTS and len(positions) <= _SMALL:
            every = self._python_texts(name)
            return pa.array([every[p] for p in positions.tolist()], type=pa.large_string())
        return self._text_array(positions, name)

    def _text_array(self, positions: np.ndarray, name: str) -> pa.Array | pa.ChunkedArray:
        if name not in self._texts:
            column = self._events[name]
            if column.dtype == STRING:
                self._texts[name] = (pa.array(column.array), None)
            elif isinstance(column.dtype, pd.CategoricalDtype):
                levels = _string_levels(column.dtype.categories)
                self._texts[name] = (levels, np.asarray(column.array.codes))
            else:
                self._texts[name] = None
        source = self._texts[name]
        if source is None:
            return pa.array(self.column(positions, name).astype("string").array)
        values, codes = source
        rows = self.order[positions]
        if codes is None:
            return values.take(pa.array(rows))
        at = codes[rows]
        return values.take(pa.array(at, mask=at < 0))


def _take(values: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """``values`` at ``pos``, any value where ``pos`` is -1 (the caller masks those); zeros
    for a timeline without events (every ``pos`` is -1 then)."""
    if not len(values):
        return np.zeros(len(pos), dtype=values.dtype)
    return values[np.maximum(pos, 0)]


def _first(positions: np.ndarray, window: Window) -> np.ndarray:
    """The first of ``positions`` in each range ``[lo, hi)``, or -1 (by range alone)."""
    j = _search(positions, window.lo)
    cand = positions[np.minimum(j, len(positions) - 1)] if len(positions) else window.lo
    found = (j < len(positions)) & (cand < window.hi)
    return np.where(found, cand, -1)


def _last(positions: np.ndarray, window: Window) -> np.ndarray:
    """The last of ``positions`` in each range ``[lo, hi)``, or -1 (by range alone)."""
    j = _search(positions, window.hi) - 1
    cand = positions[np.maximum(j, 0)] if len(positions) else window.lo
    found = (j >= 0) & (cand >= window.lo) & (cand < window.hi)
    return np.where(found, cand, -1)


def _earliest(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per instance, the smaller of two positions where both are found (-1: not found)."""
    return np.where(a < 0, b, np.where(b < 0, a, np.minimum(a, b)))


@dataclass(frozen=True)
class _LateInWindow:
    """``positions`` split for a window that checks when events became known: those recorded
    as they happened (``on_time``, counted by range alone), and each (instance, late position)
    pair in range, flattened: ``inst``, ``cand`` (ascending per instance) and whether it was
    known before the instance's moment (``visible``). Late events are few, so the pairs are."""

    on_time: np.ndarray
    inst: np.ndarray
    cand: np.ndarray
    visible: np.ndarray
    n: int

    @classmethod
    def of(cls, positions: np.ndarray, window: Window) -> _LateInWindow | None:
        """The split, or ``None`` when the window needs no check or no position is late."""
        rec, known_before = window.recorded, window.known_before
        if rec is None or known_before is None or not len(positions):
            return None
        is_late = rec.late[positions]
        if not is_late.any():
            return None
        late = positions[is_late]
        a = _search(late, window.lo)
        n = np.maximum(_search(late, window.hi) - a, 0)
        inst = np.repeat(np.arange(len(n)), n)
        cand = late[np.repeat(a - (np.cumsum(n) - n), n) + np.arange(int(n.sum()))]
        visible = rec.known[cand] < known_before[inst]
        return cls(positions[~is_late], inst, cand, visible, len(n))

    def pick(self, first: bool) -> np.ndarray:
        """Per instance, the first (or last) visible late position in range, or -1."""
        inst, cand = self.inst[self.visible], self.cand[self.visible]
        out = np.full(self.n, -1, dtype=np.int64)
        if len(inst):
            edge = inst[1:] != inst[:-1]
            at = np.flatnonzero(np.r_[True, edge] if first else np.r_[edge, True])
            out[inst[at]] = cand[at]
        return out


#: The columns a Timeline reads: the event model's required ones and these optional ones.
_READ_COLUMNS = (*REQUIRED_COLUMNS, "channel", "value", "attributes", "vehicle_id")


def _require_columns(events: pd.DataFrame) -> None:
    """Refuse (``MissingColumnsError``, naming them) a table without the columns read."""
    missing = [c for c in _READ_COLUMNS if c not in events.columns]
    if missing:
        raise MissingColumnsError(f"events table is missing column(s): {', '.join(missing)}")


def _known_ns(events: pd.DataFrame) -> np.ndarray | None:
    """Each row's known-at time (ns): the later of ``ts`` and ``recorded_ts`` (absent or null:
    ``ts``); ``None`` when no row was recorded after it happened. Refuses a ``recorded_ts``
    that is not timezone-aware."""
    if RECORDED_TS not in events.columns:
        return None
    recorded = events[RECORDED_TS]
    if not isinstance(recorded.dtype, pd.DatetimeTZDtype):
        if recorded.isna().all():
            return None
        raise ValueError(
            "'recorded_ts' must be timezone-aware UTC timestamps; validate the events first"
        )
    ns = to_ns(recorded)  # NaT is the smallest int64: the maximum below takes ts there
    if not (ns > np.iinfo(np.int64).min).any():
        return None
    return np.maximum(to_ns(events["ts"]), ns)


def _late_only(known: np.ndarray, ts: np.ndarray) -> np.ndarray | None:
    """``known`` (by position), or ``None`` when it equals ``ts`` everywhere."""
    return known if (known != ts).any() else None


def _indexed_times(
    ts: pd.Series, until: pd.Timestamp | None, known: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """The times (ns) of the events to index, those known strictly before ``until``, and their
    rows (``None`` when every row is indexed); refuses a naive ``until``."""
    ns = to_ns(ts)
    if until is not None:
        kept = (ns if known is None else known) < timestamp_ns(until)
        if not kept.all():
            rows = np.flatnonzero(kept)
            return ns[rows], rows
    return ns, None


def _customer_codes(customer: pd.Series, rows: np.ndarray | None) -> tuple[np.ndarray, Any, bool]:
    """The indexed rows' customer codes, the customer ids by code, and whether those are a
    categorical's levels (the column's own codes are used then)."""
    if isinstance(customer.dtype, pd.CategoricalDtype):
        codes = _subset(np.asarray(customer.array.codes, dtype=np.int64), rows)
        return codes, customer.cat.categories, True
    codes, values = _factorize(_subset(customer.array, rows))
    return codes, values, False


def _event_type_codes(
    event_type: pd.Series, type_codes: dict[str, int], rows: np.ndarray | None
) -> np.ndarray:
    """The indexed rows' event type codes; refuses (``ValueError``, naming it) a type the
    catalogue does not know."""
    codes = _subset(_codes(event_type, type_codes), rows)
    if (codes < 0).any():
        first = int(np.flatnonzero(codes < 0)[0])
        row = first if rows is None else int(rows[first])
        bad = event_type.astype("string").iloc[row]
        raise ValueError(f"unknown event type {bad!r}; validate the events first")
    return codes


def _order_ties(
    local: np.ndarray,
    key: np.ndarray,
    events: pd.DataFrame,
    rows: np.ndarray | None,
    channel_codes: dict[str, int],
) -> np.ndarray:
    """``local`` (indexed positions sorted by ``key``) with events of the same customer, time
    and type ordered by channel, value, then id, so input order never decides which of two
    simultaneous events is "first". Reorders ``local`` in place and returns it."""
    tie = np.flatnonzero(key[1:] == key[:-1])
    if not len(tie):
        return local
    members = np.unique(np.concatenate([tie, tie + 1]))
    rows_of = local[members] if rows is None else rows[local[members]]
    sub = events.iloc[rows_of]
    sub_order = np.lexsort(
        (
            sub["event_id"].astype("string").to_numpy(dtype=str),
            np.nan_to_num(sub["value"].to_numpy(dtype=float), nan=np.inf),
            _codes(sub["channel"], channel_codes),
            key[members],
        )
    )
    local[members] = local[members][sub_order]
    return local


@cache
def _attribute_regex(key: str) -> re.Pattern[str]:
    """``"key": "value"`` in a JSON object, with the value as group 1. The same pattern runs in
    pyarrow (RE2) for many events and in Python's ``re`` for a few; both read it alike."""
    return re.compile('"' + key + '"' + _WS + ":" + _WS + '"(?P<v>[^"]*)"')


def _factorize(values: Any) -> tuple[np.ndarray, Any]:
    """``pd.factorize(values, sort=False)`` as int64 codes and uniques; for a few strings, with
    a dict (the same codes, in order of first appearance, -1 for missing)."""
    if len(values) <= _SMALL and values.dtype == STRING:
        seen: dict[str, int] = {}
        codes = [-1 if v is pd.NA else seen.setdefault(v, len(seen)) for v in values.tolist()]
        uniques = pd.arrays.ArrowStringArray(pa.array(list(seen), type=pa.large_string()))
        return np.array(codes, dtype=np.int64), uniques
    codes, uniques = pd.factorize(values, sort=False)
    return codes.astype(np.int64), uniques


def _string_levels(categories: pd.Index) -> pa.Array:
    """A categorical's levels as pyarrow strings, as ``astype("string")`` gives them."""
    if isinstance(categories.dtype, pd.StringDtype) or (
        categories.dtype == object and all(isinstance(c, str) for c in categories)
    ):
        return pa.array(categories.to_numpy(dtype=object), type=pa.large_string())
    return pa.array(categories.astype("string").array)


def _flat(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """A pyarrow array in one piece."""
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


def _subset(values: Any, rows: np.ndarray | None) -> Any:
    """``values[rows]``, or ``values`` itself when ``rows`` is None (every row)."""
    return values if rows is None else values[rows]


@cache
def _catalogue_codes() -> tuple[dict[str, int], dict[str, int]]:
    """Event type and channel codes: their positions in the journey catalogue."""
    cat = catalogue()
    return (
        {k: i for i, k in enumerate(cat.event_type_keys)},
        {k: i for i, k in enumerate(cat.channels)},
    )


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
        np.maximum(up, 0, out=up)
        return np.minimum(up, self.span - 1, out=up)


def _search(a: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``np.searchsorted(a, v)``, with large query batches sorted first (cache friendly)."""
    if len(v) < 50_000:
        return np.searchsorted(a, v)
    order = np.argsort(v, kind="stable")
    out = np.empty(len(v), dtype=np.int64)
    out[order] = np.searchsorted(a, v[order])
    return out


def _codes(values: pd.Series, categories: dict[str, int]) -> np.ndarray:
    """Codes of ``values`` in ``categories`` (-1 for missing or unknown)."""
    dtype = values.dtype
    if isinstance(dtype, pd.CategoricalDtype) and _same_levels(dtype.categories, categories):
        return np.asarray(values.array.codes, dtype=np.int64)
    index = pd.Index(list(categories))
    return np.asarray(index.get_indexer(values.astype("string")), dtype=np.int64)


def _same_levels(levels: pd.Index, categories: dict[str, int]) -> bool:
    """Whether a categorical's levels are exactly ``categories``, in order."""
    if len(levels) != len(categories):
        return False
    types, channels = _catalogue_codes()
    known = _catalogue_levels()
    if categories is types or categories is channels:  # the usual case: compare Index to Index
        return bool(levels.equals(known[0] if categories is types else known[1]))
    return levels.tolist() == list(categories)


@cache
def _catalogue_levels() -> tuple[pd.Index, pd.Index]:
    """The catalogue's event types and channels as Index objects (for fast comparisons)."""
    types, channels = _catalogue_codes()
    return pd.Index(list(types)), pd.Index(list(channels))


def timestamp_ns(moment: pd.Timestamp) -> int:
    """A timezone-aware moment as nanoseconds since the epoch; refuses a naive one."""
    ts = pd.Timestamp(moment)
    if ts.tz is None:
        raise ValueError(f"{moment} has no timezone; give moments in UTC")
    return int(ts.value)


def to_ns(ts: pd.Series | pd.Index | Any) -> np.ndarray:
    """Timezone-aware timestamps (a Series, an Index or a datetime array) as int64 nanoseconds
    since the epoch; refuses naive times."""
    if not isinstance(ts.dtype, pd.DatetimeTZDtype):
        raise ValueError("'ts' must be timezone-aware UTC timestamps; validate the events first")
    values = ts.array if isinstance(ts, pd.Series | pd.Index) else ts
    if values.unit != "ns":
        values = values.as_unit("ns")
    return np.asarray(values.asi8, dtype=np.int64)


def to_timestamps(ns: np.ndarray) -> Any:
    """int64 nanoseconds since the epoch as a ``datetime64[ns, UTC]`` array."""
    return pd.array(np.asarray(ns, dtype=np.int64).view("M8[ns]"), dtype=_UTC_NS)
