"""One simulation run's state: the rooftops as arrays, the customers, the event log, the truth,
and the batches the journey steps hand to each other."""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field, fields
from typing import Any, Self

import numpy as np
import pandas as pd

from cjm_ml.events import catalogue
from cjm_ml.params import TASKS, Task, TaskParams
from cjm_ml.simulation import causal
from cjm_ml.simulation.assumptions import Assumptions
from cjm_ml.simulation.log import EventLog
from cjm_ml.simulation.rooftops import Rooftop, RooftopProcess

DAY = 86_400.0
HOUR = 3_600.0
MINUTE = 60.0
PREFERRED_CHANNELS = ("sms", "email", "phone")
#: Kinds of lead, by number.
FORM_LEAD, CALL_LEAD, CHAT_LEAD, THIRD_PARTY_LEAD = 0, 1, 2, 3


@dataclass
class Customers:
    """The group's customers, one array element each (index = customer number)."""

    home: np.ndarray  # home rooftop
    source: np.ndarray  # marketing source (index into causal.SOURCES)
    intent: np.ndarray  # hidden purchase intent, standard deviations
    reliability: np.ndarray  # hidden reliability, standard deviations
    loyalty: np.ndarray  # hidden loyalty, standard deviations
    distance: np.ndarray  # km from home to the home rooftop
    distance_known: np.ndarray
    pref: np.ndarray  # preferred channel (index into PREFERRED_CHANNELS)
    pref_known: np.ndarray
    service_only: np.ndarray  # starts as a service-only owner
    arrival: np.ndarray  # time of the (next) lead or first service booking
    prior_no_shows: np.ndarray
    had_trade: np.ndarray  # valued a trade-in online before the last lead
    had_credit: np.ndarray  # applied for credit online before the last lead
    profile_logged: np.ndarray  # contact preferences already recorded


@dataclass
class Appointments:
    """A batch of booked appointments waiting for their outcome."""

    cust: np.ndarray
    rooftop: np.ndarray
    t_book: np.ndarray
    is_service: np.ndarray
    vehicle: np.ndarray
    source: np.ndarray
    rescheduled_from: np.ndarray  # appointment number, -1 when a fresh booking
    will_defect: np.ndarray
    walk_in_deadline: np.ndarray  # service: latest time of a fallback walk-in repair order
    # Optional per-booking settings; left empty, they are filled with "draw it" markers.
    lead_hours: np.ndarray = field(default_factory=lambda: np.empty(0))  # NaN: drawn
    channel: np.ndarray = field(default_factory=lambda: np.empty(0))  # -1: drawn
    attempt: np.ndarray = field(default_factory=lambda: np.empty(0))  # 1 for a re-booked no-show

    def __post_init__(self) -> None:
        n = len(self.cust)
        if len(self.lead_hours) != n:
            self.lead_hours = np.full(n, np.nan)
        if len(self.channel) != n:
            self.channel = np.full(n, -1)
        if len(self.attempt) != n:
            self.attempt = np.zeros(n, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.cust)


def merge_appointments(batches: list[Appointments], t_end: float) -> Appointments | None:
    """The batches as one, without bookings after the end of the history; None if none left."""
    if not batches:
        return None
    merged = {
        f.name: np.concatenate([getattr(b, f.name) for b in batches]) for f in fields(Appointments)
    }
    keep = merged["t_book"] <= t_end
    if not keep.any():
        return None
    return Appointments(**{k: v[keep] for k, v in merged.items()})


@dataclass(frozen=True)
class SalesVisits:
    """Customers coming to the showroom, or buyers waiting for delivery: who, when, which
    vehicle (-1: not chosen yet) and the lead's recorded source."""

    cust: np.ndarray
    ts: np.ndarray
    vehicle: np.ndarray
    source: np.ndarray

    @classmethod
    def concat(cls, batches: list[SalesVisits]) -> Self:
        """The batches as one, in order."""
        return cls(
            **{f.name: np.concatenate([getattr(b, f.name) for b in batches]) for f in fields(cls)}
        )


@dataclass(frozen=True)
class ServiceVisits:
    """Owners coming in for a repair order: who, where, when, with which vehicle."""

    cust: np.ndarray
    rooftop: np.ndarray
    ts: np.ndarray
    vehicle: np.ndarray

    @classmethod
    def concat(cls, batches: list[ServiceVisits]) -> Self:
        """The batches as one, in order."""
        return cls(
            **{f.name: np.concatenate([getattr(b, f.name) for b in batches]) for f in fields(cls)}
        )

    def until(self, t_end: float) -> Self:
        """The visits up to ``t_end``."""
        keep = self.ts <= t_end
        return type(self)(**{f.name: getattr(self, f.name)[keep] for f in fields(self)})


class GroupState:
    """One run's state: settings, rooftops as arrays, customers, the event log and the truth."""

    def __init__(
        self,
        *,
        seed: int,
        params: TaskParams,
        assumptions: Assumptions,
        rooftops: list[Rooftop],
        t_start: float,
        t_end: float,
    ) -> None:
        self.seed = seed
        self.params = params
        self.assumptions = assumptions
        self.rooftops = rooftops
        self.t_start = t_start
        self.t_end = t_end
        cat = catalogue()
        self.log = EventLog(
            etype_codes={k: i for i, k in enumerate(cat.event_type_keys)},
            channel_codes={k: i for i, k in enumerate(cat.channels)},
        )
        self.ch = self.log.channel_codes
        self.sources = list(causal.SOURCES)
        effects = np.array(list(causal.SOURCES.values()))
        self.source_leakage, self.source_no_show, self.source_buy = effects[:, 1:].T
        self.p: dict[str, np.ndarray] = {
            name: np.array([getattr(r.process, name) for r in rooftops])
            for name in RooftopProcess.model_fields
        }
        self.truth_rows: dict[Task, list[pd.DataFrame]] = {t: [] for t in TASKS}
        self.sold: list[SalesVisits] = []
        self.appt_counter = 0
        self.ro_counter = 0
        self.engagement_calls = 0
        self.vehicle_counter = 0
        self.customers: Customers

    def rng(self, step: str, wave: int = 0) -> np.random.Generator:
        """An independent random stream per step (and wave), derived from the seed."""
        return np.random.default_rng([self.seed, zlib.crc32(step.encode()), wave])

    def new_vehicles(self, n: int) -> np.ndarray:
        """Numbers for ``n`` vehicles not seen before."""
        ids = np.arange(self.vehicle_counter, self.vehicle_counter + n)
        self.vehicle_counter += n
        return ids

    def new_appointments(self, n: int) -> np.ndarray:
        """Numbers for ``n`` new appointments."""
        ids = np.arange(self.appt_counter, self.appt_counter + n)
        self.appt_counter += n
        return ids

    def new_repair_orders(self, n: int) -> np.ndarray:
        """Numbers for ``n`` new repair orders."""
        ids = np.arange(self.ro_counter, self.ro_counter + n)
        self.ro_counter += n
        return ids

    def offset(self, rooftop: np.ndarray) -> np.ndarray:
        """Each rooftop's offset from UTC, in seconds."""
        return np.asarray(self.p["utc_offset_hours"][rooftop] * HOUR, dtype=float)

    def next_open(self, ts: np.ndarray, rooftop: np.ndarray) -> np.ndarray:
        """The first moment at or after ``ts`` when the rooftop is open (Sunday closed)."""
        hours = self.assumptions.opening_hours
        local = ts + self.offset(rooftop)
        day = np.floor(local / DAY)
        hour = (local - day * DAY) / HOUR
        dow = (day.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
        close = np.where(dow == 5, hours.saturday_closes_hour, hours.weekday_closes_hour)
        open_now = (dow != 6) & (hour >= hours.opens_hour) & (hour < close)
        before_open_today = (dow != 6) & (hour < hours.opens_hour)
        next_day = day + 1 + ((dow + 1) % 7 == 6)  # skip Sunday
        nxt = np.where(before_open_today, day, next_day) * DAY + hours.opens_hour * HOUR
        return np.asarray(np.where(open_now, local, nxt) - self.offset(rooftop), dtype=float)

    def slot(self, ts: np.ndarray, rooftop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A half-hour appointment slot on the local day of ``ts`` (Sunday moves to Monday)."""
        hours = self.assumptions.opening_hours
        local = ts + self.offset(rooftop)
        day = np.floor(local / DAY)
        dow = (day.astype(np.int64) + 3) % 7
        day = day + (dow == 6)
        first, last = int(hours.first_slot_hour * 2), int(hours.last_slot_hour * 2)
        half_hours = rng.integers(first, last + 1, len(ts))
        return np.asarray(day * DAY + half_hours * 1800.0 - self.offset(rooftop), dtype=float)

    def add_truth(self, task: Task, frame: dict[str, Any], terms: dict[str, np.ndarray]) -> None:
        """Record truth rows of ``task``: the instances in ``frame``, with the causal terms as
        ``friction_*`` (process frictions) and ``term_*`` (traits and context) columns."""
        frictions = set(causal.FRICTIONS[task])
        cols = dict(frame)
        for name, val in terms.items():
            key = name.replace(" (hidden)", "_hidden")
            cols[("friction_" if name in frictions else "term_") + key] = val
        self.truth_rows[task].append(pd.DataFrame(cols))
