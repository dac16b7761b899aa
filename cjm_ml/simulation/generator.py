"""A vectorised simulator of a dealer group's customer journeys, with recorded ground truth.

Every step works on arrays of journeys at once (leads, appointments, deliveries, visits); the
only Python loops are over steps and over "waves" of follow-on appointments. Each step draws
from its own random stream, so the same seed gives the same group, and a what-if run that
changes one rooftop's process keeps the rest of the randomness aligned.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from tqdm.auto import tqdm

from cjm_ml.events import catalogue, event_dtypes, sort_events
from cjm_ml.params import TASKS, Task, TaskParams
from cjm_ml.simulation import causal
from cjm_ml.simulation.rooftops import (
    PlantedDeviation,
    Rooftop,
    RooftopProcess,
    default_rooftops,
    fix_rooftop,
)

DAY = 86_400.0
HOUR = 3_600.0
MINUTE = 60.0
PREFERRED_CHANNELS = ("sms", "email", "phone")


class SimulationConfig(BaseModel):
    """What to simulate. ``fixes`` resets named process settings of a rooftop to the group
    standard, for what-if runs (everything else, seed included, stays the same)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    rooftops: int = Field(6, ge=2, le=50)
    customers: int = Field(30_000, ge=10)
    seed: int = 7
    start: datetime = datetime(2024, 11, 1, tzinfo=UTC)
    days: int = Field(730, ge=60, description="Length of the simulated history.")
    dealer_group_id: str = "dg-01"
    service_only_share: float = Field(0.15, ge=0, le=1)
    params: TaskParams = TaskParams()
    fixes: tuple[tuple[str, tuple[str, ...]], ...] = ()


@dataclass
class SimulatedGroup:
    """The simulator's output: canonical events, truth per task, and the rooftops' processes."""

    events: pd.DataFrame
    truth: dict[Task, pd.DataFrame]
    rooftops: list[Rooftop]
    planted: list[PlantedDeviation]
    config: SimulationConfig


@dataclass
class _Appointments:
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


@dataclass
class _Log:
    """Accumulates events as arrays of codes; rendered to the canonical table once at the end."""

    etype_codes: dict[str, int]
    channel_codes: dict[str, int]
    parts: list[dict[str, np.ndarray]] = field(default_factory=list)
    next_key: int = 0

    def add(
        self,
        etype: str,
        cust: np.ndarray,
        ts: np.ndarray,
        rooftop: np.ndarray,
        *,
        channel: str | np.ndarray | None = None,
        source: np.ndarray | None = None,
        vehicle: np.ndarray | None = None,
        value: np.ndarray | None = None,
        attrs: np.ndarray | None = None,
    ) -> np.ndarray:
        """Append ``len(cust)`` events of one type; returns their keys (for event ids)."""
        n = len(cust)
        keys = np.arange(self.next_key, self.next_key + n, dtype=np.int64)
        self.next_key += n
        if n == 0:
            return keys
        if channel is None:
            ch = np.full(n, -1, dtype=np.int16)
        elif isinstance(channel, str):
            ch = np.full(n, self.channel_codes[channel], dtype=np.int16)
        else:
            ch = np.asarray(channel, dtype=np.int16)
        self.parts.append(
            {
                "key": keys,
                "cust": np.asarray(cust, dtype=np.int64),
                "ts": np.floor(np.asarray(ts, dtype=float)),
                "rooftop": np.asarray(rooftop, dtype=np.int16),
                "etype": np.full(n, self.etype_codes[etype], dtype=np.int16),
                "channel": ch,
                "source": np.full(n, -1, dtype=np.int16)
                if source is None
                else source.astype(np.int16),
                "vehicle": np.full(n, -1, dtype=np.int64)
                if vehicle is None
                else vehicle.astype(np.int64),
                "value": np.full(n, np.nan) if value is None else np.asarray(value, dtype=float),
                "attrs": np.full(n, None, dtype=object) if attrs is None else attrs,
            }
        )
        return keys


def _json_attrs(**fields: Any) -> np.ndarray:
    """Render small JSON objects from equal-length arrays of strings, vectorised."""
    out: pd.Series | None = None
    for name, values in fields.items():
        piece = f'"{name}": "' + pd.Series(values, dtype="string") + '"'
        out = piece if out is None else out + ", " + piece
    assert out is not None
    return ("{" + out + "}").to_numpy(dtype=object)


def _ids(prefix: str, numbers: np.ndarray, width: int) -> pd.Series:
    """Zero-padded string ids such as ``c-000042``, vectorised."""
    return prefix + pd.Series(numbers, dtype="int64").astype("string").str.zfill(width)


class _Simulator:
    """Holds one run's state: customers, rooftops as arrays, the event log and the truth."""

    def __init__(self, config: SimulationConfig, rooftops: list[Rooftop]) -> None:
        self.cfg = config
        self.params = config.params
        self.rooftops = rooftops
        self.t_start = config.start.timestamp()
        self.t_end = self.t_start + config.days * DAY
        cat = catalogue()
        self.log = _Log(
            etype_codes={k: i for i, k in enumerate(cat.event_type_keys)},
            channel_codes={k: i for i, k in enumerate(cat.channels)},
        )
        self.ch = self.log.channel_codes
        self.sources = list(causal.SOURCES)
        fields = RooftopProcess.model_fields
        self.p: dict[str, np.ndarray] = {
            name: np.array([getattr(r.process, name) for r in rooftops]) for name in fields
        }
        self.truth_rows: dict[Task, list[pd.DataFrame]] = {t: [] for t in TASKS}
        self.deliveries: list[dict[str, np.ndarray]] = []
        self.appt_counter = 0
        self.ro_counter = 0
        self.engagement_calls = 0
        self.vehicle_counter = 0

    # ---------------------------------------------------------------------------- utilities
    def rng(self, step: str, wave: int = 0) -> np.random.Generator:
        """An independent random stream per step (and wave), derived from the seed."""
        return np.random.default_rng([self.cfg.seed, zlib.crc32(step.encode()), wave])

    def new_vehicles(self, n: int) -> np.ndarray:
        ids = np.arange(self.vehicle_counter, self.vehicle_counter + n)
        self.vehicle_counter += n
        return ids

    def new_appointments(self, n: int) -> np.ndarray:
        ids = np.arange(self.appt_counter, self.appt_counter + n)
        self.appt_counter += n
        return ids

    def offset(self, rooftop: np.ndarray) -> np.ndarray:
        return self.p["utc_offset_hours"][rooftop] * HOUR

    def next_open(self, ts: np.ndarray, rooftop: np.ndarray) -> np.ndarray:
        """The first moment at or after ``ts`` when the rooftop is open (Mon-Fri 9-20, Sat 9-18)."""
        local = ts + self.offset(rooftop)
        day = np.floor(local / DAY)
        hour = (local - day * DAY) / HOUR
        dow = (day.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
        close = np.where(dow == 5, 18.0, 20.0)
        open_now = (dow != 6) & (hour >= 9) & (hour < close)
        before_open_today = (dow != 6) & (hour < 9)
        next_day = day + 1 + ((dow + 1) % 7 == 6)  # skip Sunday
        nxt = np.where(before_open_today, day, next_day) * DAY + 9 * HOUR
        return np.where(open_now, local, nxt) - self.offset(rooftop)

    def slot(self, ts: np.ndarray, rooftop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """An appointment slot on the local day of ``ts`` (Sunday moves to Monday), 9:00-17:30."""
        local = ts + self.offset(rooftop)
        day = np.floor(local / DAY)
        dow = (day.astype(np.int64) + 3) % 7
        day = day + (dow == 6)
        half_hours = rng.integers(18, 36, len(ts))  # 9:00 .. 17:30
        return day * DAY + half_hours * 1800.0 - self.offset(rooftop)

    def add_truth(self, task: Task, frame: dict[str, Any], terms: dict[str, np.ndarray]) -> None:
        frictions = set(causal.FRICTIONS[task])
        cols = dict(frame)
        for name, val in terms.items():
            key = name.replace(" (hidden)", "_hidden")
            cols[("friction_" if name in frictions else "term_") + key] = val
        self.truth_rows[task].append(pd.DataFrame(cols))

    # ---------------------------------------------------------------------------- customers
    def make_customers(self) -> None:
        n = self.cfg.customers
        rng = self.rng("customers")
        weights = np.array([r.size_weight for r in self.rooftops])
        self.home = rng.choice(len(self.rooftops), n, p=weights / weights.sum())
        shares = np.array([v[0] for v in causal.SOURCES.values()])
        self.source = rng.choice(len(self.sources), n, p=shares / shares.sum())
        self.src_leak = np.array([v[1] for v in causal.SOURCES.values()])
        self.src_noshow = np.array([v[2] for v in causal.SOURCES.values()])
        self.src_buy = np.array([v[3] for v in causal.SOURCES.values()])
        self.intent = rng.normal(0, 1, n)
        self.reliability = rng.normal(0, 1, n)
        self.loyalty = rng.normal(0, 1, n)
        self.distance = np.clip(rng.lognormal(np.log(14), 0.75, n), 0.5, 250)
        self.distance_known = rng.random(n) > 0.12
        self.pref = rng.choice(3, n, p=[0.5, 0.25, 0.25])
        self.pref_known = rng.random(n) > 0.08
        self.service_only = rng.random(n) < self.cfg.service_only_share
        # Arrivals spread over the history, leaving room for journeys to unfold.
        self.arrival = self.t_start + rng.uniform(0, self.cfg.days - 20, n) * DAY
        self.prior_no_shows = np.zeros(n, dtype=np.int64)
        self.had_trade = np.zeros(n, dtype=bool)
        self.had_credit = np.zeros(n, dtype=bool)
        self.profile_logged = np.zeros(n, dtype=bool)

    def log_profiles(self, cust: np.ndarray, ts: np.ndarray) -> None:
        """Record contact preferences the first time a customer becomes known."""
        new = ~self.profile_logged[cust]
        cust, ts = cust[new], ts[new]
        self.profile_logged[cust] = True
        ch = np.array([self.ch[c] for c in PREFERRED_CHANNELS])[self.pref[cust]]
        ch = np.where(self.pref_known[cust], ch, -1)
        dist = np.where(self.distance_known[cust], np.round(self.distance[cust], 1), np.nan)
        self.log.add(
            "contact_preferences_set", cust, ts + 30, self.home[cust], channel=ch, value=dist
        )

    # ---------------------------------------------------------------------------- leads
    def run_leads(self, cust: np.ndarray, t_lead: np.ndarray, wave: int) -> dict[str, np.ndarray]:
        """Research, lead, first response and outcome for a batch of leads.

        Returns the customers who come back later (for another lead) and the next steps:
        appointments booked and walk-in visits.
        """
        rng = self.rng("leads", wave)
        n = len(cust)
        r = self.home[cust]
        intent = self.intent[cust]
        src = self.source[cust]
        log = self.log
        cutoff_min = self.params.lead_leakage.cutoff_after_lead_minutes
        window = self.params.lead_leakage.window_days * DAY

        # Research: VDP views, inventory searches, calculator, trade-in tool, online credit app.
        vid = self.new_vehicles(n)
        price = np.round(rng.lognormal(np.log(36_000), 0.3, n), -2)
        research_src = np.where(rng.random(n) < 0.9, src, -1)
        n_vdp = 1 + rng.poisson(2.5 * np.exp(0.35 * intent))
        idx = np.repeat(np.arange(n), n_vdp)
        last = np.r_[np.cumsum(n_vdp) - 1]
        vdp_vehicle = np.where(
            np.isin(np.arange(len(idx)), last), vid[idx], self.new_vehicles(len(idx))
        )
        vdp_ts = t_lead[idx] - rng.uniform(0.02, 14, len(idx)) * DAY
        vdp_price = np.round(price[idx] * rng.uniform(0.85, 1.15, len(idx)), -2)
        log.add(
            "vdp_view",
            cust[idx],
            vdp_ts,
            r[idx],
            channel="web",
            source=research_src[idx],
            vehicle=vdp_vehicle,
            value=vdp_price,
        )
        n_search = 1 + rng.poisson(1.2, n)
        idx = np.repeat(np.arange(n), n_search)
        log.add(
            "inventory_search",
            cust[idx],
            t_lead[idx] - rng.uniform(0.03, 15, len(idx)) * DAY,
            r[idx],
            channel="web",
            source=research_src[idx],
            value=rng.integers(5, 400, len(idx)).astype(float),
        )
        calc = rng.random(n) < causal.sigmoid(-0.6 + 0.6 * intent)
        log.add(
            "payment_calculator",
            cust[calc],
            t_lead[calc] - rng.uniform(0.01, 3, calc.sum()) * DAY,
            r[calc],
            channel="web",
            source=research_src[calc],
            value=np.round(price[calc] / 60 * rng.uniform(0.9, 1.2, calc.sum())),
        )
        trade = rng.random(n) < causal.sigmoid(-0.9 + 0.3 * intent)
        log.add(
            "trade_in_tool",
            cust[trade],
            t_lead[trade] - rng.uniform(0.005, 2, trade.sum()) * DAY,
            r[trade],
            channel="web",
            source=research_src[trade],
            value=np.round(rng.lognormal(np.log(14_000), 0.5, trade.sum()), -2),
        )
        credit = rng.random(n) < causal.sigmoid(-2.0 + 0.5 * intent)
        log.add(
            "credit_application",
            cust[credit],
            t_lead[credit] - rng.uniform(0.001, 0.1, credit.sum()) * DAY,
            r[credit],
            channel="web",
            source=research_src[credit],
        )
        self.had_trade[cust] = trade
        self.had_credit[cust] = credit

        # The lead itself; its recorded source is noisy (untracked or misattributed).
        third_party = np.isin(src, [self.sources.index(s) for s in causal.THIRD_PARTY_SOURCES])
        kind = np.where(
            third_party, 3, rng.choice(3, n, p=[0.5, 0.3, 0.2])
        )  # form, call, chat, 3rd
        lead_src = np.where(rng.random(n) < 0.05, rng.integers(0, len(self.sources), n), src)
        lead_src = np.where(rng.random(n) < 0.06, -1, lead_src)
        is_open = self.next_open(t_lead, r) == t_lead
        answered_call = (kind == 1) & is_open & (rng.random(n) < self.p["call_answer_rate"][r])
        lead_keys = np.empty(n, dtype=np.int64)
        for k, (etype, channel) in enumerate(
            [
                ("lead_form", "web"),
                ("lead_call", "phone"),
                ("lead_chat", "chat"),
                ("lead_third_party", "third_party"),
            ]
        ):
            m = kind == k
            value = {
                0: price[m],
                1: np.where(answered_call[m], rng.integers(60, 900, m.sum()), 0).astype(float),
                2: rng.integers(2, 25, m.sum()).astype(float),
                3: price[m],
            }[k]
            lead_keys[m] = log.add(
                etype,
                cust[m],
                t_lead[m],
                r[m],
                channel=channel,
                source=lead_src[m],
                vehicle=vid[m] if k in (0, 3) else np.full(m.sum(), -1),
                value=value,
            )
        missed = (kind == 1) & ~answered_call
        log.add(
            "missed_call",
            cust[missed],
            t_lead[missed] + 20,
            r[missed],
            channel="phone",
            value=rng.integers(10, 40, missed.sum()).astype(float),
        )
        self.log_profiles(cust, t_lead)
        log.add(
            "crm_task_created",
            cust,
            t_lead + 45,
            r,
            channel="crm",
            attrs=_json_attrs(task=np.full(n, "lead_follow_up")),
        )

        # First response by the BDC (an answered call is its own response).
        never = ~answered_call & (rng.random(n) < self.p["no_response_rate"][r])
        delay = rng.lognormal(
            np.log(self.p["response_median_minutes"][r]), self.p["response_spread"][r]
        )
        t_resp = np.where(answered_call, t_lead, self.next_open(t_lead, r) + delay * MINUTE)
        minutes = np.where(never, np.inf, (t_resp - t_lead) / MINUTE)
        resp_kind = np.select(
            [kind == 1, kind == 2],
            [np.zeros(n, int), rng.choice([0, 1], n, p=[0.4, 0.6])],
            rng.choice([0, 1, 2], n, p=[0.5, 0.2, 0.3]),
        )  # 0 call, 1 text, 2 email
        responded = ~never & ~answered_call
        picked_up = rng.random(n) < causal.sigmoid(-0.3 + 0.5 * intent)
        for k, etype, channel in (
            (0, "outbound_call", "phone"),
            (1, "sms_sent", "sms"),
            (2, "email_sent", "email"),
        ):
            m = responded & (resp_kind == k)
            value = np.where(picked_up[m], rng.integers(60, 600, m.sum()), 0.0) if k == 0 else None
            log.add(etype, cust[m], t_resp[m], r[m], channel=channel, value=value)
        done = ~never
        log.add(
            "crm_task_completed",
            cust[done],
            t_resp[done] + 60,
            r[done],
            channel="crm",
            attrs=_json_attrs(task=np.full(done.sum(), "lead_follow_up")),
        )
        reply_ts = t_resp + rng.exponential(25, n) * MINUTE
        replied = (
            responded & (resp_kind > 0) & (rng.random(n) < causal.sigmoid(-0.5 + 0.8 * intent))
        )
        for k, etype, channel in ((1, "sms_replied", "sms"), (2, "email_opened", "email")):
            m = replied & (resp_kind == k)
            log.add(etype, cust[m], reply_ts[m], r[m], channel=channel)

        # Follow-up on a trade-in or credit submission: a task created with the first reply.
        submitted = trade | credit
        followed = submitted & done & (rng.random(n) < self.p["trade_credit_follow_up_rate"][r])
        t_task = t_resp + rng.uniform(1, 10, n) * MINUTE
        task = np.where(trade, "trade_in_follow_up", "credit_follow_up")
        log.add(
            "crm_task_created",
            cust[followed],
            t_task[followed],
            r[followed],
            channel="crm",
            attrs=_json_attrs(task=task[followed]),
        )
        cutoff = t_lead + cutoff_min * MINUTE

        # Outcome, from what was known at the cutoff.
        terms = causal.lead_leakage_terms(
            source_effect=self.src_leak[src],
            intent=intent,
            minutes_to_first_response=minutes,
            cutoff_minutes=cutoff_min,
            sla_minutes=self.params.response_sla_minutes,
            submitted_trade_or_credit=submitted.astype(float),
            trade_credit_followed_up=(followed & (t_task < cutoff)).astype(float),
            lead_kind_effect=np.select([kind == 1, kind == 2], [-0.3, 0.2], 0.0),
            repeat_lead=float(wave > 0) * np.ones(n),
        )
        prob = causal.sigmoid(causal.total(terms))
        leaked = rng.random(n) < prob

        # Follow-up cadence after the first reply: unanswered when the lead is going dark.
        start = np.maximum(t_resp, cutoff)
        gap = rng.exponential(1.6, n) * DAY
        t_next = np.clip(start + gap, cutoff + 10 * MINUTE, t_lead + window - 2 * DAY)
        attempts = np.where(done, rng.poisson(self.p["follow_up_attempts"][r]), 0)
        idx = np.repeat(np.arange(n), attempts)
        t_att = start[idx] + rng.uniform(0.2, 8, len(idx)) * DAY
        keep = leaked[idx] | (t_att < t_next[idx])
        idx, t_att = idx[keep], t_att[keep]
        att_kind = rng.choice(3, len(idx), p=[0.45, 0.35, 0.2])
        for k, etype, channel in (
            (0, "outbound_call", "phone"),
            (1, "sms_sent", "sms"),
            (2, "email_sent", "email"),
        ):
            m = att_kind == k
            value = (
                np.where(
                    ~leaked[idx[m]] & (rng.random(m.sum()) < 0.5),
                    rng.integers(60, 400, m.sum()),
                    0.0,
                )
                if k == 0
                else None
            )
            log.add(etype, cust[idx[m]], t_att[m], r[idx[m]], channel=channel, value=value)

        label_known = t_lead + window <= self.t_end
        self.add_truth(
            "lead_leakage",
            {
                "instance_key": lead_keys,
                "customer_idx": cust,
                "rooftop_idx": r,
                "event_ts": t_lead,
                "cutoff_ts": cutoff,
                "true_prob": prob,
                "label": np.where(label_known, leaked.astype(float), np.nan),
            },
            terms,
        )
        # Next steps for leads that did not go dark: a booked appointment or a walk-in.
        kept = ~leaked
        walk_in = kept & (never | (rng.random(n) < 0.15))
        book = kept & ~walk_in
        return {
            "book_cust": cust[book],
            "book_ts": t_next[book],
            "book_vehicle": np.where(rng.random(n) < 0.8, vid, -1)[book],
            "book_source": lead_src[book],
            "walk_cust": cust[walk_in],
            "walk_ts": self.next_open(t_next[walk_in], r[walk_in]),
            "walk_vehicle": vid[walk_in],
            "walk_source": lead_src[walk_in],
            "return_cust": cust[leaked & (rng.random(n) < 0.25)],
        }

    # ---------------------------------------------------------------------------- appointments
    def run_appointments(self, batch: _Appointments, wave: int) -> dict[str, Any]:
        """Book, confirm and resolve a batch of appointments (sales and service).

        Returns follow-on batches (reschedules, rebooked no-shows) and the customers who came:
        sales visitors for the showroom and service visitors for a repair order.
        """
        rng = self.rng("appointments", wave)
        n = len(batch)
        cust, r = batch.cust, batch.rooftop
        svc = batch.is_service.astype(bool)
        log = self.log
        ids = self.new_appointments(n)
        u = rng.random(n)
        drawn = np.select(
            [u < 0.3, u < 0.8],
            [rng.uniform(3, 30, n), rng.uniform(48, 168, n)],
            rng.uniform(192, 384, n),
        )
        lead_h = np.where(np.isnan(batch.lead_hours), drawn, batch.lead_hours)
        sched = self.slot(batch.t_book + lead_h * HOUR, r, rng)
        sched = np.where(sched < batch.t_book + 2 * HOUR, sched + DAY, sched)
        lead_hours = (sched - batch.t_book) / HOUR
        cutoff = np.maximum(
            batch.t_book, sched - self.params.no_show.cutoff_before_start_hours * HOUR
        )
        applicable = cutoff > batch.t_book  # booked early enough for a confirmation to matter
        appt_id = _ids("a-", ids, 7).to_numpy(dtype=object)

        # The booking event itself.
        chan = np.where(
            batch.channel >= 0,
            batch.channel,
            rng.choice([self.ch["phone"], self.ch["web"], self.ch["sms"]], n, p=[0.6, 0.3, 0.1]),
        )
        sched_iso = pd.Series(pd.to_datetime(sched.astype("int64"), unit="s", utc=True))
        sched_iso = sched_iso.dt.strftime("%Y-%m-%dT%H:%M:%SZ").to_numpy(dtype=object)
        resched = batch.rescheduled_from >= 0
        fresh = ~resched
        for m, etype in (
            (fresh & ~svc, "appointment_set"),
            (fresh & svc, "service_appointment_set"),
        ):
            log.add(
                etype,
                cust[m],
                batch.t_book[m],
                r[m],
                channel=chan[m],
                source=batch.source[m],
                vehicle=batch.vehicle[m],
                value=np.round(lead_hours[m], 2),
                attrs=_json_attrs(appointment_id=appt_id[m], scheduled_ts=sched_iso[m]),
            )
        old_id = _ids("a-", np.maximum(batch.rescheduled_from, 0), 7).to_numpy(dtype=object)
        log.add(
            "appointment_rescheduled",
            cust[resched],
            batch.t_book[resched],
            r[resched],
            channel="phone",
            vehicle=batch.vehicle[resched],
            value=np.round(lead_hours[resched], 2),
            attrs=_json_attrs(
                appointment_id=appt_id[resched],
                scheduled_ts=sched_iso[resched],
                rescheduled_from=old_id[resched],
            ),
        )

        # Confirmation, by the rooftop's policy (far-ahead bookings get it more often).
        far = lead_hours >= 72
        conf_channel = self.p["confirmation_channel"][r]
        rate = np.where(
            far, self.p["confirmation_rate_far"][r], self.p["confirmation_rate_near"][r]
        )
        rate = np.where(conf_channel == "none", 0.0, rate)
        sent = rng.random(n) < rate
        t_conf = batch.t_book + rng.uniform(1, 40, n) * MINUTE
        for channel in ("sms", "email"):
            m = sent & (conf_channel == channel)
            log.add(
                "appointment_confirmation_sent",
                cust[m],
                t_conf[m],
                r[m],
                channel=channel,
                attrs=_json_attrs(appointment_id=appt_id[m]),
            )
        conf_code = np.where(sent & (t_conf < cutoff), np.where(conf_channel == "sms", 2, 1), 0)
        confirm_reply = (
            sent
            & (conf_channel == "sms")
            & (rng.random(n) < causal.sigmoid(0.2 + 0.6 * self.reliability[cust]))
        )
        log.add(
            "sms_replied",
            cust[confirm_reply],
            t_conf[confirm_reply] + rng.exponential(40, confirm_reply.sum()) * MINUTE,
            r[confirm_reply],
            channel="sms",
        )

        # Vehicle hold for a specific vehicle, and the risk it is sold before the visit.
        specific = ~svc & (batch.vehicle >= 0)
        hold = specific & (rng.random(n) < self.p["vehicle_hold_rate"][r])
        t_hold = batch.t_book + rng.uniform(5, 60, n) * MINUTE
        log.add(
            "vehicle_hold_placed",
            cust[hold],
            t_hold[hold],
            r[hold],
            channel="dms",
            vehicle=batch.vehicle[hold],
        )
        hold_known = hold & (t_hold < cutoff)
        sold_p = np.where(hold, 0.01, 0.05 * np.minimum(lead_hours / 24, 10) / 3)
        sold = specific & applicable & (rng.random(n) < sold_p)
        t_sold = batch.t_book + rng.uniform(0.1, 0.95, n) * (cutoff - batch.t_book)
        log.add(
            "vehicle_status_changed",
            cust[sold],
            t_sold[sold],
            r[sold],
            channel="dms",
            vehicle=batch.vehicle[sold],
        )

        terms = causal.no_show_terms(
            is_service=svc.astype(float),
            source_effect=self.src_noshow[self.source[cust]],
            reliability=self.reliability[cust],
            intent=self.intent[cust],
            lead_days=lead_hours / 24,
            confirmation_applicable=applicable.astype(float),
            confirmation=conf_code.astype(float),
            specific_vehicle=(specific & applicable).astype(float),
            vehicle_on_hold=hold_known.astype(float),
            vehicle_sold=sold.astype(float),
            prior_no_shows=self.prior_no_shows[cust].astype(float),
            distance_km=self.distance[cust],
            rescheduled=resched.astype(float),
            will_defect=batch.will_defect.astype(float),
        )
        prob = causal.sigmoid(causal.total(terms))
        no_show = rng.random(n) < prob
        v = rng.random(n)
        defect = batch.will_defect.astype(bool)
        cancel = ~no_show & ((v < 0.08) | defect)
        reschedule = ~no_show & ~cancel & fresh & (v < 0.15)
        showed = ~no_show & ~cancel & ~reschedule
        outcome = np.select(
            [no_show, cancel, reschedule], ["no_show", "cancelled", "rescheduled"], "showed"
        )
        t_change = cutoff + rng.uniform(0.05, 0.95, n) * (sched - cutoff)
        log.add(
            "appointment_no_show",
            cust[no_show],
            sched[no_show] + 30 * MINUTE,
            r[no_show],
            attrs=_json_attrs(appointment_id=appt_id[no_show]),
        )
        log.add(
            "appointment_cancelled",
            cust[cancel],
            t_change[cancel],
            r[cancel],
            channel="phone",
            attrs=_json_attrs(appointment_id=appt_id[cancel]),
        )
        t_arrive = sched + rng.uniform(-10, 15, n) * MINUTE
        log.add(
            "appointment_showed",
            cust[showed],
            t_arrive[showed],
            r[showed],
            channel="in_person",
            attrs=_json_attrs(appointment_id=appt_id[showed]),
        )
        outcome_ts = np.where(showed, t_arrive, np.where(no_show, sched + 30 * MINUTE, t_change))
        self.add_truth(
            "no_show",
            {
                "instance_key": ids,
                "customer_idx": cust,
                "rooftop_idx": r,
                "appointment_kind": np.where(svc, "service", "sales"),
                "booked_ts": batch.t_book,
                "scheduled_ts": sched,
                "cutoff_ts": cutoff,
                "true_prob": prob,
                "outcome": outcome,
                "label": np.where(outcome_ts <= self.t_end, no_show.astype(float), np.nan),
            },
            terms,
        )
        np.add.at(self.prior_no_shows, cust[no_show], 1)

        follow: list[_Appointments] = []
        # Reschedules become new bookings of their own.
        m = reschedule
        follow.append(
            _Appointments(
                cust=cust[m],
                rooftop=r[m],
                t_book=t_change[m],
                is_service=batch.is_service[m],
                vehicle=batch.vehicle[m],
                source=batch.source[m],
                rescheduled_from=ids[m],
                will_defect=batch.will_defect[m],
                walk_in_deadline=batch.walk_in_deadline[m],
                lead_hours=rng.uniform(24, 168, m.sum()),
                attempt=batch.attempt[m],
            )
        )
        # The BDC re-books some sales no-shows (once).
        m = no_show & ~svc & (batch.attempt == 0) & (rng.random(n) < 0.3)
        follow.append(
            _Appointments(
                cust=cust[m],
                rooftop=r[m],
                t_book=sched[m] + rng.uniform(1, 5, m.sum()) * DAY,
                is_service=batch.is_service[m],
                vehicle=batch.vehicle[m],
                source=batch.source[m],
                rescheduled_from=np.full(m.sum(), -1),
                will_defect=batch.will_defect[m],
                walk_in_deadline=batch.walk_in_deadline[m],
                attempt=np.ones(m.sum(), np.int64),
            )
        )
        # A returning service customer who missed or cancelled the visit comes in without one.
        m = (no_show | cancel) & svc & ~defect
        walk_ts = np.minimum(sched + rng.uniform(7, 40, n) * DAY, batch.walk_in_deadline)
        return {
            "follow": follow,
            "sales_visit": {
                "cust": cust[showed & ~svc],
                "ts": t_arrive[showed & ~svc],
                "vehicle": batch.vehicle[showed & ~svc],
                "source": batch.source[showed & ~svc],
            },
            "service_visit": {
                "cust": np.r_[cust[showed & svc], cust[m]],
                "rooftop": np.r_[r[showed & svc], r[m]],
                "ts": np.r_[t_arrive[showed & svc], self.next_open(walk_ts[m], r[m])],
                "vehicle": np.r_[batch.vehicle[showed & svc], batch.vehicle[m]],
            },
            "sales_no_show_cust": cust[no_show & ~svc],
        }

    # ---------------------------------------------------------------------------- showroom
    def run_showroom(
        self, cust: np.ndarray, ts: np.ndarray, vehicle: np.ndarray, source: np.ndarray, wave: int
    ) -> np.ndarray:
        """Showroom visits: test drive, appraisal, credit, desking, and the buying decision.
        Returns a boolean mask of the visitors who bought."""
        rng = self.rng("showroom", wave)
        n = len(cust)
        r = self.home[cust]
        log = self.log
        log.add(
            "showroom_visit",
            cust,
            ts,
            r,
            channel="in_person",
            source=source,
            value=np.round(rng.uniform(30, 180, n)),
        )
        vehicle = np.where(vehicle >= 0, vehicle, self.new_vehicles(n))
        drive = rng.random(n) < 0.7
        log.add(
            "test_drive",
            cust[drive],
            ts[drive] + 25 * MINUTE,
            r[drive],
            channel="in_person",
            vehicle=vehicle[drive],
        )
        appraise = (self.had_trade[cust] & (rng.random(n) < 0.85)) | (rng.random(n) < 0.15)
        log.add(
            "appraisal",
            cust[appraise],
            ts[appraise] + 50 * MINUTE,
            r[appraise],
            channel="in_person",
            value=np.round(rng.lognormal(np.log(13_000), 0.5, appraise.sum()), -2),
        )
        credit = ~self.had_credit[cust] & (rng.random(n) < 0.45)
        log.add(
            "credit_application",
            cust[credit],
            ts[credit] + 60 * MINUTE,
            r[credit],
            channel="in_person",
        )
        desk = rng.random(n) < 0.85
        log.add(
            "desking",
            cust[desk],
            ts[desk] + 75 * MINUTE,
            r[desk],
            channel="dms",
            vehicle=vehicle[desk],
            value=np.round(rng.lognormal(np.log(36_000), 0.3, desk.sum()), -2),
        )
        src_effect = self.src_buy[self.source[cust]]
        buy = desk & (
            rng.random(n) < causal.sigmoid(0.3 + 0.8 * self.intent[cust] + 0.3 * drive + src_effect)
        )
        log.add(
            "fi_session",
            cust[buy],
            ts[buy] + 110 * MINUTE,
            r[buy],
            channel="in_person",
            value=rng.integers(0, 4, buy.sum()).astype(float),
        )
        t_deliv = ts + rng.choice([0.1, 1, 2, 3], n, p=[0.5, 0.25, 0.15, 0.1]) * DAY
        self.deliveries.append(
            {
                "cust": cust[buy],
                "ts": t_deliv[buy] + 3 * HOUR,
                "vehicle": vehicle[buy],
                "source": source[buy],
            }
        )
        return buy

    # ---------------------------------------------------------------------------- deliveries
    def run_deliveries(self) -> list[_Appointments]:
        """Delivery, onboarding to service, and the defection outcome; returns the service
        bookings that follow (first service at delivery, or booked later by returning buyers)."""
        rng = self.rng("deliveries")
        d = {k: np.concatenate([x[k] for x in self.deliveries]) for k in self.deliveries[0]}
        cust, ts, vehicle = d["cust"], d["ts"], d["vehicle"]
        n = len(cust)
        r = self.home[cust]
        log = self.log
        used = rng.random(n) < 0.4
        keys = log.add(
            "vehicle_delivery",
            cust,
            ts,
            r,
            channel="in_person",
            source=d["source"],
            vehicle=vehicle,
            value=np.round(rng.lognormal(np.log(36_000), 0.3, n), -2),
            attrs=_json_attrs(condition=np.where(used, "used", "new")),
        )
        educ = rng.random(n) < self.p["delivery_education_rate"][r]
        log.add(
            "delivery_education",
            cust[educ],
            ts[educ] + 30 * MINUTE,
            r[educ],
            channel="in_person",
            value=rng.integers(15, 60, educ.sum()).astype(float),
        )
        booked = rng.random(n) < self.p["first_service_booked_rate"][r]
        # Sales CSI survey within the first days.
        # Loyal buyers answer the survey more often and score higher.
        loyalty = self.loyalty[cust]
        answered = rng.random(n) < causal.sigmoid(-0.2 + 0.6 * loyalty)
        t_csi = ts + rng.uniform(1, 5, n) * DAY
        score = np.clip(
            np.round(8.4 + 1.1 * rng.normal(0, 1, n) + 0.6 * educ + 0.7 * loyalty), 0, 10
        )
        log.add(
            "csi_survey",
            cust[answered],
            t_csi[answered],
            r[answered],
            channel="email",
            value=score[answered],
            attrs=_json_attrs(survey=np.full(answered.sum(), "sales")),
        )
        # Open recalls on used vehicles, and whether the rooftop tells the owner.
        recall = used & (rng.random(n) < 0.12)
        notified = recall & (rng.random(n) < self.p["recall_outreach_rate"][r])
        log.add(
            "recall_notice",
            cust[notified],
            ts[notified] + rng.uniform(1, 5, notified.sum()) * DAY,
            r[notified],
            channel="mail",
            vehicle=vehicle[notified],
        )
        # Welcome-to-service message: on the preferred channel, or not.
        matched = rng.random(n) < self.p["reminder_channel_match_rate"][r]
        pref_code = np.array([self.ch["sms"], self.ch["email"], self.ch["phone"]])[self.pref[cust]]
        other = np.array([self.ch["mail"], self.ch["mail"], self.ch["email"]])[self.pref[cust]]
        rem_channel = np.where(matched, pref_code, other)
        t_welcome = ts + rng.uniform(2, 6, n) * DAY
        log.add("service_reminder", cust, t_welcome, r, channel=rem_channel, vehicle=vehicle)
        # Loyal owners engage with it (a reply or an open shows only on text and email).
        self.log_engagement(cust, t_welcome, r, rem_channel, -0.5 + 1.1 * loyalty + 0.6 * matched)
        # Owners without a first service booked try the online scheduler the welcome message
        # points to; where it is hard to use, many give up (an abandoned session before the
        # prediction moment), and an owner who gave up carries the whole friction.
        gave_up = self.early_online_attempts(cust, t_welcome, r, vehicle, ~booked)
        felt_friction = np.where(gave_up, 1.0, self.p["online_booking_friction"][r])

        terms = causal.service_defection_terms(
            loyalty=self.loyalty[cust],
            distance_km=self.distance[cust],
            used_vehicle=used.astype(float),
            first_service_booked=booked.astype(float),
            delivery_education=educ.astype(float),
            reminder_channel_matched=matched.astype(float),
            open_recall=recall.astype(float),
            recall_notified=notified.astype(float),
            rooftop_online_friction=felt_friction,
            low_sales_csi=(answered & (score <= 6)).astype(float),
        )
        prob = causal.sigmoid(causal.total(terms))
        defect = rng.random(n) < prob
        window = self.params.service_defection.window_days * DAY
        cutoff = ts + self.params.service_defection.cutoff_after_delivery_days * DAY
        self.add_truth(
            "service_defection",
            {
                "instance_key": keys,
                "customer_idx": cust,
                "rooftop_idx": r,
                "event_ts": ts,
                "cutoff_ts": cutoff,
                "true_prob": prob,
                "label": np.where(ts + window <= self.t_end, defect.astype(float), np.nan),
            },
            terms,
        )
        # Maintenance reminders go out on the same channel choice.
        t_rem = ts + rng.uniform(120, 160, n) * DAY
        log.add("maintenance_reminder", cust, t_rem, r, channel=rem_channel, vehicle=vehicle)
        # Owners who have already decided to go elsewhere stop engaging.
        self.log_engagement(cust, t_rem, r, rem_channel, -0.4 + 0.9 * loyalty - 1.2 * defect)
        deadline = ts + window - 2 * DAY
        # Service bookings: first service at delivery; otherwise returning buyers book later,
        # and a few defectors come back after the window.
        late = ~booked & ((~defect) | (rng.random(n) < 0.15))
        t_late = np.where(
            defect,
            ts + rng.uniform(window / DAY + 15, 420, n) * DAY,
            ts + rng.uniform(60, 180, n) * DAY,
        )
        svc_rooftop = np.where(rng.random(n) < 0.08, rng.integers(0, len(self.rooftops), n), r)
        first = _Appointments(
            cust=cust[booked],
            rooftop=r[booked],
            t_book=ts[booked] + 40 * MINUTE,
            is_service=np.ones(booked.sum()),
            vehicle=vehicle[booked],
            source=np.full(booked.sum(), -1),
            rescheduled_from=np.full(booked.sum(), -1),
            will_defect=defect[booked].astype(float),
            walk_in_deadline=deadline[booked],
            lead_hours=rng.uniform(130, 170, booked.sum()) * 24,
            channel=np.full(booked.sum(), self.ch["in_person"]),
        )
        later = self.online_booking(
            cust[late],
            t_late[late],
            svc_rooftop[late],
            vehicle[late],
            np.where(defect[late], np.inf, deadline[late]),
            rng,
        )
        return [first, later]

    def early_online_attempts(
        self,
        cust: np.ndarray,
        welcome: np.ndarray,
        rooftop: np.ndarray,
        vehicle: np.ndarray,
        unbooked: np.ndarray,
    ) -> np.ndarray:
        """Seven in ten owners with no first service booked open the online scheduler within
        a day of the welcome message (before the defection cutoff); each gives up with the
        rooftop's abandon rate. Logs the abandoned sessions (value 0); returns who gave up.
        Owners who get through book later, when the service is due."""
        rng = self.rng("early_online_booking")
        n = len(cust)
        tries = unbooked & (rng.random(n) < 0.7)
        gave_up = tries & (rng.random(n) < self.p["online_booking_friction"][rooftop])
        t = welcome + rng.uniform(1, 20, n) * HOUR
        self.log.add(
            "online_scheduling",
            cust[gave_up],
            t[gave_up],
            rooftop[gave_up],
            channel="web",
            vehicle=vehicle[gave_up],
            value=np.zeros(int(gave_up.sum())),
        )
        return np.asarray(gave_up, dtype=bool)

    def log_engagement(
        self,
        cust: np.ndarray,
        sent: np.ndarray,
        rooftop: np.ndarray,
        channel: np.ndarray,
        log_odds: np.ndarray,
    ) -> None:
        """A reply to a text or an open of an email, hours after the message was ``sent``
        on ``channel``, with probability ``sigmoid(log_odds)``; other channels are not tracked."""
        rng = self.rng("engagement", self.engagement_calls)
        self.engagement_calls += 1
        engaged = rng.random(len(cust)) < causal.sigmoid(log_odds)
        t = sent + rng.exponential(6, len(cust)) * HOUR
        for reply, via in (("sms_replied", "sms"), ("email_opened", "email")):
            m = engaged & (channel == self.ch[via])
            self.log.add(reply, cust[m], t[m], rooftop[m], channel=via)

    def online_booking(
        self,
        cust: np.ndarray,
        ts: np.ndarray,
        rooftop: np.ndarray,
        vehicle: np.ndarray,
        deadline: np.ndarray,
        rng: np.random.Generator,
    ) -> _Appointments:
        """Service bookings made by the owner: online (with the rooftop's abandon rate) or by
        phone. Abandoned online attempts are logged; the booking follows."""
        n = len(cust)
        online = rng.random(n) < 0.45
        friction = self.p["online_booking_friction"][rooftop]
        abandons = np.where(online, rng.geometric(1 - np.minimum(friction, 0.95)) - 1, 0)
        idx = np.repeat(np.arange(n), abandons)
        self.log.add(
            "online_scheduling",
            cust[idx],
            ts[idx] - rng.uniform(0.5, 48, len(idx)) * HOUR,
            rooftop[idx],
            channel="web",
            value=np.zeros(len(idx)),
        )
        self.log.add(
            "online_scheduling",
            cust[online],
            ts[online] - 2 * MINUTE,
            rooftop[online],
            channel="web",
            value=np.ones(online.sum()),
        )
        return _Appointments(
            cust=cust,
            rooftop=rooftop,
            t_book=ts,
            is_service=np.ones(n),
            vehicle=vehicle,
            source=np.full(n, -1),
            rescheduled_from=np.full(n, -1),
            will_defect=np.zeros(n),
            walk_in_deadline=deadline,
            lead_hours=rng.uniform(30, 240, n),
            channel=np.where(online, self.ch["web"], self.ch["phone"]),
        )

    # ---------------------------------------------------------------------------- service
    def run_service_visits(self, visit: dict[str, np.ndarray], wave: int) -> _Appointments:
        """Repair orders with inspection, approval, close and survey; returns the next
        maintenance bookings of owners who keep coming back."""
        rng = self.rng("service", wave)
        cust, r, ts, vehicle = visit["cust"], visit["rooftop"], visit["ts"], visit["vehicle"]
        n = len(cust)
        log = self.log
        ro = _ids("ro-", np.arange(self.ro_counter, self.ro_counter + n), 7).to_numpy(dtype=object)
        self.ro_counter += n
        log.add(
            "repair_order_opened",
            cust,
            ts + 5 * MINUTE,
            r,
            channel="in_person",
            vehicle=vehicle,
            attrs=_json_attrs(ro_id=ro),
        )
        transparent = rng.random(n) < self.p["mpi_transparency_rate"][r]
        t_mpi = ts + rng.uniform(40, 120, n) * MINUTE
        log.add(
            "mpi_sent",
            cust[transparent],
            t_mpi[transparent],
            r[transparent],
            channel="sms",
            vehicle=vehicle[transparent],
            value=np.round(rng.lognormal(np.log(400), 0.7, transparent.sum())),
            attrs=_json_attrs(ro_id=ro[transparent]),
        )
        approved = transparent & (rng.random(n) < 0.55)
        log.add(
            "mpi_approved",
            cust[approved],
            t_mpi[approved] + 20 * MINUTE,
            r[approved],
            channel="sms",
            value=np.round(rng.lognormal(np.log(250), 0.6, approved.sum())),
            attrs=_json_attrs(ro_id=ro[approved]),
        )
        t_close = ts + rng.uniform(1.5, 6, n) * HOUR
        log.add(
            "repair_order_closed",
            cust,
            t_close,
            r,
            channel="dms",
            vehicle=vehicle,
            value=np.round(rng.lognormal(np.log(180), 0.8, n)),
            attrs=_json_attrs(ro_id=ro),
        )
        answered = rng.random(n) < 0.35
        score = np.clip(np.round(7.2 + 1.4 * transparent + 1.3 * rng.normal(0, 1, n)), 0, 10)
        log.add(
            "csi_survey",
            cust[answered],
            t_close[answered] + rng.uniform(1, 3, answered.sum()) * DAY,
            r[answered],
            channel="email",
            value=score[answered],
            attrs=_json_attrs(survey=np.full(answered.sum(), "service")),
        )
        # Loyal owners come back for maintenance.
        again = rng.random(n) < causal.sigmoid(0.4 + 0.8 * self.loyalty[cust] + 0.3 * transparent)
        t_again = ts + rng.uniform(140, 220, n) * DAY
        return self.online_booking(
            cust[again], t_again[again], r[again], vehicle[again], np.full(again.sum(), np.inf), rng
        )

    def service_only_customers(self) -> _Appointments:
        """Owners who bought elsewhere or long ago and start their journey with service."""
        rng = self.rng("service_only")
        cust = np.flatnonzero(self.service_only)
        ts = self.arrival[cust]
        self.log_profiles(cust, ts - HOUR)
        vehicle = self.new_vehicles(len(cust))
        return self.online_booking(
            cust, ts, self.home[cust], vehicle, np.full(len(cust), np.inf), rng
        )

    # ---------------------------------------------------------------------------- orchestration
    def drain(
        self, pending: list[_Appointments], wave0: int
    ) -> tuple[list[dict[str, np.ndarray]], list[dict[str, np.ndarray]]]:
        """Resolve appointment batches until no follow-on booking falls inside the history."""
        sales_visits, service_visits = [], []
        wave = wave0
        while pending:
            batch = _merge([b for b in pending if len(b)], self.t_end)
            pending = []
            if batch is None:
                break
            out = self.run_appointments(batch, wave)
            pending.extend(out["follow"])
            sales_visits.append(out["sales_visit"])
            service_visits.append(out["service_visit"])
            wave += 1
        return sales_visits, service_visits

    def run(self, progress: bool) -> None:
        steps = ["customers", "first leads", "returning leads", "deliveries", "service", "done"]
        bar = tqdm(total=len(steps) - 1, desc="simulating", unit="step", disable=not progress)
        self.make_customers()
        bar.update()
        shoppers = np.flatnonzero(~self.service_only)
        lead_cust, lead_ts = shoppers, self.arrival[shoppers]
        for wave in range(2):
            bar.set_postfix_str(steps[1 + wave])
            out = self.run_leads(lead_cust, self.lead_time_of_day(lead_ts, lead_cust, wave), wave)
            rng = self.rng("bookings", wave)
            n_book = len(out["book_cust"])
            booked = _Appointments(
                cust=out["book_cust"],
                rooftop=self.home[out["book_cust"]],
                t_book=out["book_ts"],
                is_service=np.zeros(n_book),
                vehicle=out["book_vehicle"],
                source=out["book_source"],
                rescheduled_from=np.full(n_book, -1),
                will_defect=np.zeros(n_book),
                walk_in_deadline=np.full(n_book, np.inf),
            )
            sales_visits, _ = self.drain([booked], wave0=100 * wave)
            visits = {
                k: np.concatenate([v[k] for v in sales_visits] + [out[f"walk_{k}"]])
                for k in ("cust", "ts", "vehicle", "source")
            }
            buy = self.run_showroom(
                visits["cust"], visits["ts"], visits["vehicle"], visits["source"], wave
            )
            # Who comes back with a new lead: some dark leads, and some visitors who did not buy.
            non_buyers = visits["cust"][~buy]
            non_buyers = non_buyers[rng.random(len(non_buyers)) < 0.15]
            back = np.unique(np.r_[out["return_cust"], non_buyers])
            back = back[~np.isin(back, self.deliveries[-1]["cust"])]
            lead_cust = back
            lead_ts = self.arrival[back] + rng.uniform(90, 330, len(back)) * DAY
            self.arrival[back] = lead_ts
            bar.update()
        bar.set_postfix_str("deliveries")
        pending = self.run_deliveries()
        pending.append(self.service_only_customers())
        bar.update()
        bar.set_postfix_str("service")
        wave = 1000
        while pending:
            _, service_visits = self.drain(pending, wave0=wave)
            wave += 100
            if not service_visits:
                break
            visits = {
                k: np.concatenate([v[k] for v in service_visits])
                for k in ("cust", "rooftop", "ts", "vehicle")
            }
            visits = {k: v[visits["ts"] <= self.t_end] for k, v in visits.items()}
            if not len(visits["cust"]):
                break
            pending = [self.run_service_visits(visits, wave)]
        bar.update()
        bar.close()

    def lead_time_of_day(self, day_ts: np.ndarray, cust: np.ndarray, wave: int) -> np.ndarray:
        """Place each lead at a realistic local hour: mostly daytime, many in the evening."""
        rng = self.rng("lead_hour", wave)
        r = self.home[cust]
        hours = np.arange(24)
        weight = np.select(
            [hours < 7, hours < 9, hours < 18, hours < 22], [0.3, 1.0, 3.0, 2.2], 0.8
        )
        local_day = np.floor((day_ts + self.offset(r)) / DAY)
        hour = rng.choice(24, len(cust), p=weight / weight.sum())
        return local_day * DAY + (hour + rng.random(len(cust))) * HOUR - self.offset(r)

    # ---------------------------------------------------------------------------- output
    def events_frame(self) -> pd.DataFrame:
        parts = self.log.parts
        cols = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        keep = (cols["ts"] <= self.t_end) & (cols["ts"] >= self.t_start - 30 * DAY)
        cols = {k: v[keep] for k, v in cols.items()}
        cat = catalogue()
        dtypes = event_dtypes()
        rooftop_ids = [r.rooftop_id for r in self.rooftops]
        vehicle = pd.Series(cols["vehicle"])
        frame = pd.DataFrame(
            {
                "event_id": _ids("e-", cols["key"], 9).astype("string"),
                "dealer_group_id": pd.Categorical.from_codes(
                    np.zeros(len(cols["key"]), dtype=np.int8), categories=[self.cfg.dealer_group_id]
                ),
                "rooftop_id": pd.Categorical.from_codes(cols["rooftop"], categories=rooftop_ids),
                "customer_id": _ids("c-", cols["cust"], 6).astype("string"),
                "ts": pd.to_datetime(cols["ts"].astype("int64"), unit="s", utc=True).astype(
                    dtypes["ts"]
                ),
                "event_type": pd.Categorical.from_codes(cols["etype"], dtype=dtypes["event_type"]),
                "channel": pd.Categorical.from_codes(
                    cols["channel"], categories=list(cat.channels)
                ),
                "source": pd.Categorical.from_codes(cols["source"], categories=self.sources),
                "vehicle_id": _ids("v-", vehicle.clip(lower=0), 7)
                .where(vehicle >= 0)
                .astype("string"),
                "value": cols["value"],
                "attributes": pd.array(cols["attrs"], dtype="string"),
            }
        )
        return sort_events(frame)

    def truth_frames(self) -> dict[Task, pd.DataFrame]:
        rooftop_ids = np.array([r.rooftop_id for r in self.rooftops])
        out: dict[Task, pd.DataFrame] = {}
        for task, frames in self.truth_rows.items():
            df = pd.concat(frames, ignore_index=True)
            df = df[df["cutoff_ts"] <= self.t_end].copy()
            prefix, width = ("a-", 7) if task == "no_show" else ("e-", 9)
            df.insert(
                0, "instance_id", _ids(prefix, df.pop("instance_key").to_numpy(), width).array
            )
            df.insert(1, "customer_id", _ids("c-", df.pop("customer_idx").to_numpy(), 6).array)
            df.insert(2, "rooftop_id", rooftop_ids[df.pop("rooftop_idx").to_numpy()])
            for c in [c for c in df.columns if c.endswith("_ts")]:
                df[c] = pd.to_datetime(
                    np.floor(df[c].to_numpy()).astype("int64"), unit="s", utc=True
                )
            df["label"] = df["label"].astype("Int8")
            friction_cols = [c for c in df.columns if c.startswith("friction_")]
            applied = df[friction_cols].to_numpy() > 0
            names = np.array([c.removeprefix("friction_") for c in friction_cols])
            df["planted_frictions"] = [",".join(names[row]) for row in applied]
            out[task] = df.sort_values("instance_id", ignore_index=True)
        return out


def _merge(batches: list[_Appointments], t_end: float) -> _Appointments | None:
    """Concatenate batches, dropping bookings after the end of the history."""
    if not batches:
        return None
    merged = {
        name: np.concatenate([getattr(b, name) for b in batches])
        for name in _Appointments.__dataclass_fields__
    }
    keep = merged["t_book"] <= t_end
    if not keep.any():
        return None
    return _Appointments(**{k: v[keep] for k, v in merged.items()})


def simulate(config: SimulationConfig, progress: bool = False) -> SimulatedGroup:
    """Simulate a dealer group: its events in the canonical model and the truth per task.

    Deterministic for ``config.seed``. ``config.fixes`` resets named settings of a rooftop to
    the group standard (what-if runs keep every other random draw the same).
    """
    rooftops, planted = default_rooftops(config.rooftops, config.seed)
    for rooftop_id, settings in config.fixes:
        rooftops = fix_rooftop(rooftops, rooftop_id, list(settings))
        planted = [p for p in planted if not (p.rooftop_id == rooftop_id and p.setting in settings)]
    sim = _Simulator(config, rooftops)
    sim.run(progress)
    return SimulatedGroup(
        events=sim.events_frame(),
        truth=sim.truth_frames(),
        rooftops=rooftops,
        planted=planted,
        config=config,
    )
