"""Leads: when they arrive, the lead itself (form, call, chat, third-party site), whether it
goes dark, the next step of the leads that do not (a booked appointment, often during the
call or chat itself, or a walk-in), and the CRM closing junk and dark leads."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cjm_ml.simulation import causal
from cjm_ml.simulation.log import json_attrs
from cjm_ml.simulation.state import (
    CALL_LEAD,
    CHAT_LEAD,
    DAY,
    FORM_LEAD,
    HOUR,
    MINUTE,
    THIRD_PARTY_LEAD,
    Appointments,
    GroupState,
    SalesVisits,
)
from cjm_ml.simulation.steps.customers import log_profiles
from cjm_ml.simulation.steps.research import Research, research
from cjm_ml.simulation.steps.response import Response, first_response, follow_up_cadence

#: Event type and channel of each lead kind, by its number.
LEAD_EVENTS = (
    ("lead_form", "web"),
    ("lead_call", "phone"),
    ("lead_chat", "chat"),
    ("lead_third_party", "third_party"),
)


@dataclass(frozen=True)
class Lead:
    """A batch of submitted leads, one element per lead."""

    key: np.ndarray  # event key of the lead (its instance id)
    kind: np.ndarray  # FORM_LEAD, CALL_LEAD, CHAT_LEAD or THIRD_PARTY_LEAD
    source: np.ndarray  # the recorded source (-1: untracked)
    answered_call: np.ndarray  # a call picked up live: its own first response


@dataclass(frozen=True)
class LeadOutcomes:
    """What follows a batch of leads: appointments booked, walk-ins, and customers who went
    dark and come back later with another lead."""

    booked: Appointments
    walk_ins: SalesVisits
    returning: np.ndarray


def lead_time_of_day(
    state: GroupState, day_ts: np.ndarray, cust: np.ndarray, wave: int
) -> np.ndarray:
    """Place each lead on its local day at a realistic hour: mostly daytime, many in the evening."""
    rng = state.rng("lead_hour", wave)
    r = state.customers.home[cust]
    hours = np.arange(24)
    bands = state.assumptions.leads.hour_weights
    weight = np.select([hours < until for until, _ in bands], [w for _, w in bands], 0.0)
    local_day = np.floor((day_ts + state.offset(r)) / DAY)
    hour = rng.choice(24, len(cust), p=weight / weight.sum())
    return local_day * DAY + (hour + rng.random(len(cust))) * HOUR - state.offset(r)


def run_leads(state: GroupState, cust: np.ndarray, t_lead: np.ndarray, wave: int) -> LeadOutcomes:
    """Research, lead, first response, follow-up and outcome for a batch of leads at
    ``t_lead``; records the lead-leakage truth. ``wave`` > 0 marks returning customers."""
    rng = state.rng("leads", wave)
    seen = research(state, rng, cust, t_lead)
    lead = _submit(state, rng, cust, t_lead, seen)
    reply = first_response(state, rng, cust, t_lead, lead.kind, lead.answered_call, seen)
    cutoff_minutes = state.params.lead_leakage.cutoff_after_lead_minutes
    cutoff = t_lead + cutoff_minutes * MINUTE
    terms = causal.lead_leakage_terms(
        source_effect=state.source_leakage[state.customers.source[cust]],
        intent=state.customers.intent[cust],
        minutes_to_first_response=reply.minutes,
        cutoff_minutes=cutoff_minutes,
        sla_minutes=state.params.response_sla_minutes,
        submitted_trade_or_credit=(seen.trade_in | seen.credit).astype(float),
        trade_credit_followed_up=(reply.task_followed & (reply.t_task < cutoff)).astype(float),
        lead_kind_effect=np.select(
            [lead.kind == CALL_LEAD, lead.kind == CHAT_LEAD],
            [state.assumptions.leads.call_log_odds, state.assumptions.leads.chat_log_odds],
            0.0,
        ),
        repeat_lead=float(wave > 0) * np.ones(len(cust)),
    )
    prob = causal.sigmoid(causal.total(terms))
    leaked = rng.random(len(cust)) < prob
    in_contact = _booked_in_contact(state, t_lead, lead, leaked, wave)
    t_next = follow_up_cadence(state, rng, cust, t_lead, cutoff, reply, leaked, in_contact)
    _close_dark_leads(state, cust, t_lead, leaked, wave)
    window = state.params.lead_leakage.window_days * DAY
    state.add_truth(
        "lead_leakage",
        {
            "instance_key": lead.key,
            "customer_idx": cust,
            "rooftop_idx": state.customers.home[cust],
            "event_ts": t_lead,
            "cutoff_ts": cutoff,
            "true_prob": prob,
            "label": np.where(t_lead + window <= state.t_end, leaked.astype(float), np.nan),
        },
        terms,
    )
    return _next_steps(state, rng, cust, seen, lead, reply, leaked, t_next, in_contact)


def _booked_in_contact(
    state: GroupState, t_lead: np.ndarray, lead: Lead, leaked: np.ndarray, wave: int
) -> np.ndarray:
    """When each lead books a sales appointment during its first contact (an answered live
    call, a chat), minutes after the lead; NaN for the others (and the leads going dark)."""
    a = state.assumptions.leads
    rng = state.rng("booked_in_contact", wave)
    n = len(t_lead)
    share = np.select(
        [lead.answered_call, lead.kind == CHAT_LEAD],
        [a.booked_in_call_share, a.booked_in_chat_share],
        0.0,
    )
    booked = ~leaked & (rng.random(n) < share)
    minutes = rng.uniform(*a.booked_in_contact_minutes, n)
    return np.where(booked, t_lead + minutes * MINUTE, np.nan)


def _close_dark_leads(
    state: GroupState, cust: np.ndarray, t_lead: np.ndarray, leaked: np.ndarray, wave: int
) -> None:
    """The CRM closes some dark leads (``lead_closed``): junk ones (bad contact data,
    duplicates) within hours, most others days later as lost to another dealer or no
    contact. Sold leads close at delivery (``steps.deliveries``)."""
    a = state.assumptions.lead_closure
    rng = state.rng("lead_closure", wave)
    n = len(cust)
    junk = leaked & (rng.random(n) < a.junk_share_of_dark)
    closed = junk | (leaked & (rng.random(n) < a.dark_closed_share))
    status = np.where(
        junk,
        np.where(rng.random(n) < a.duplicate_share_of_junk, "duplicate", "bad_lead"),
        np.where(rng.random(n) < a.lost_other_dealer_share, "lost_other_dealer", "no_contact"),
    )
    after = np.where(
        junk,
        rng.uniform(*a.junk_closed_after_hours, n) * HOUR,
        rng.uniform(*a.dark_closed_after_days, n) * DAY,
    )
    state.log.add(
        "lead_closed",
        cust[closed],
        t_lead[closed] + after[closed],
        state.customers.home[cust[closed]],
        channel="crm",
        attrs=json_attrs(status=status[closed]),
    )


def _submit(
    state: GroupState,
    rng: np.random.Generator,
    cust: np.ndarray,
    t_lead: np.ndarray,
    seen: Research,
) -> Lead:
    """Log the leads (their recorded source is noisy: untracked or misattributed), missed
    calls, the customers' contact preferences and the CRM follow-up tasks."""
    a = state.assumptions.leads
    n = len(cust)
    r = state.customers.home[cust]
    src = state.customers.source[cust]
    third_party = np.isin(src, [state.sources.index(s) for s in causal.THIRD_PARTY_SOURCES])
    kind = np.where(third_party, THIRD_PARTY_LEAD, rng.choice(3, n, p=a.kind_shares))
    lead_src = np.where(
        rng.random(n) < a.misattributed_share, rng.integers(0, len(state.sources), n), src
    )
    lead_src = np.where(rng.random(n) < a.untracked_share, -1, lead_src)
    is_open = state.next_open(t_lead, r) == t_lead
    answered_call = (kind == CALL_LEAD) & is_open & (rng.random(n) < state.p["call_answer_rate"][r])
    keys = _log_leads(state, rng, cust, t_lead, seen, kind, lead_src, answered_call)
    missed = (kind == CALL_LEAD) & ~answered_call
    state.log.add(
        "missed_call",
        cust[missed],
        t_lead[missed] + a.missed_call_delay_seconds,
        r[missed],
        channel="phone",
        value=rng.integers(*a.missed_call_ring_seconds, missed.sum()).astype(float),
    )
    log_profiles(state, cust, t_lead)
    state.log.add(
        "crm_task_created",
        cust,
        t_lead + a.crm_task_delay_seconds,
        r,
        channel="crm",
        attrs=json_attrs(task=np.full(n, "lead_follow_up")),
    )
    return Lead(key=keys, kind=kind, source=lead_src, answered_call=answered_call)


def _log_leads(
    state: GroupState,
    rng: np.random.Generator,
    cust: np.ndarray,
    t_lead: np.ndarray,
    seen: Research,
    kind: np.ndarray,
    lead_src: np.ndarray,
    answered_call: np.ndarray,
) -> np.ndarray:
    """Log each lead by its kind (forms and third-party leads name the vehicle and its price,
    answered calls their length, chats their messages); returns the leads' event keys."""
    a = state.assumptions.leads
    n = len(cust)
    r = state.customers.home[cust]
    keys = np.empty(n, dtype=np.int64)
    for k, (etype, channel) in enumerate(LEAD_EVENTS):
        m = kind == k
        # Both draws happen for every kind, so the random stream stays as it always was.
        call_seconds = np.where(answered_call[m], rng.integers(*a.call_seconds, m.sum()), 0)
        chat_messages = rng.integers(*a.chat_messages, m.sum())
        value = {
            FORM_LEAD: seen.price[m],
            CALL_LEAD: call_seconds.astype(float),
            CHAT_LEAD: chat_messages.astype(float),
            THIRD_PARTY_LEAD: seen.price[m],
        }[k]
        keys[m] = state.log.add(
            etype,
            cust[m],
            t_lead[m],
            r[m],
            channel=channel,
            source=lead_src[m],
            vehicle=seen.vehicle[m] if k in (FORM_LEAD, THIRD_PARTY_LEAD) else np.full(m.sum(), -1),
            value=value,
        )
    return keys


def _next_steps(
    state: GroupState,
    rng: np.random.Generator,
    cust: np.ndarray,
    seen: Research,
    lead: Lead,
    reply: Response,
    leaked: np.ndarray,
    t_next: np.ndarray,
    in_contact: np.ndarray,
) -> LeadOutcomes:
    """Leads that did not go dark book an appointment (by phone, or online from a chat, when
    booked during the first contact: ``in_contact`` not NaN) or walk in (all other unanswered
    ones walk in); some customers of dark leads come back later."""
    a = state.assumptions.leads
    n = len(cust)
    r = state.customers.home[cust]
    kept = ~leaked
    booked_now = ~np.isnan(in_contact)
    walk_in = kept & ~booked_now & (reply.never | (rng.random(n) < a.walk_in_share))
    book = kept & ~walk_in
    vehicle = np.where(rng.random(n) < a.specific_vehicle_share, seen.vehicle, -1)[book]
    walk_ts = state.next_open(t_next[walk_in], r[walk_in])
    returning = cust[leaked & (rng.random(n) < a.dark_lead_returns_share)]
    n_book = int(book.sum())
    booked = Appointments(
        cust=cust[book],
        rooftop=r[book],
        t_book=t_next[book],
        is_service=np.zeros(n_book),
        vehicle=vehicle,
        source=lead.source[book],
        rescheduled_from=np.full(n_book, -1),
        will_defect=np.zeros(n_book),
        walk_in_deadline=np.full(n_book, np.inf),
        channel=np.where(
            booked_now, np.where(lead.kind == CALL_LEAD, state.ch["phone"], state.ch["web"]), -1
        )[book],
    )
    walk_ins = SalesVisits(
        cust=cust[walk_in], ts=walk_ts, vehicle=seen.vehicle[walk_in], source=lead.source[walk_in]
    )
    return LeadOutcomes(booked=booked, walk_ins=walk_ins, returning=returning)
