"""The BDC's response to a lead: the first reply, the customer's answer, the follow-up task on a
trade-in or credit submission, and the follow-up cadence until the next step."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cjm_ml.simulation import causal
from cjm_ml.simulation.log import json_attrs
from cjm_ml.simulation.state import CALL_LEAD, CHAT_LEAD, DAY, MINUTE, GroupState
from cjm_ml.simulation.steps.research import Research

CALL, TEXT, EMAIL = 0, 1, 2
#: Event type and channel of each kind of outreach, by its number.
OUTREACH = (
    (CALL, "outbound_call", "phone"),
    (TEXT, "sms_sent", "sms"),
    (EMAIL, "email_sent", "email"),
)


@dataclass(frozen=True)
class Response:
    """The BDC's first response to a batch of leads, one element per lead."""

    t_resp: np.ndarray  # time of the first reply (of the answered call for live calls)
    minutes: np.ndarray  # minutes from lead to first reply; inf when never answered
    never: np.ndarray  # never answered
    done: np.ndarray  # the follow-up task was completed (answered, live or not)
    task_followed: np.ndarray  # a trade-in or credit follow-up task was created
    t_task: np.ndarray  # when that task was (or would have been) created


def first_response(
    state: GroupState,
    rng: np.random.Generator,
    cust: np.ndarray,
    t_lead: np.ndarray,
    kind: np.ndarray,
    answered_call: np.ndarray,
    seen: Research,
) -> Response:
    """The first reply, within the rooftop's reply-time distribution during open hours (an
    answered call is its own reply), the customer's answer, and the trade-in/credit task."""
    a = state.assumptions.first_response
    n = len(cust)
    r = state.customers.home[cust]
    never = ~answered_call & (rng.random(n) < state.p["no_response_rate"][r])
    delay = rng.lognormal(
        np.log(state.p["response_median_minutes"][r]), state.p["response_spread"][r]
    )
    t_resp = np.where(answered_call, t_lead, state.next_open(t_lead, r) + delay * MINUTE)
    minutes = np.where(never, np.inf, (t_resp - t_lead) / MINUTE)
    shares = a.reply_shares
    resp_kind = np.select(
        [kind == CALL_LEAD, kind == CHAT_LEAD],
        [np.zeros(n, int), rng.choice([CALL, TEXT], n, p=a.chat_reply_shares)],
        rng.choice([CALL, TEXT, EMAIL], n, p=[shares.call, shares.text, shares.email]),
    )
    responded = ~never & ~answered_call
    _log_replies(state, rng, cust, t_resp, responded, resp_kind, done=~never)
    followed = (
        (seen.trade_in | seen.credit)
        & ~never
        & (rng.random(n) < state.p["trade_credit_follow_up_rate"][r])
    )
    t_task = t_resp + rng.uniform(*a.trade_credit_task_delay_minutes, n) * MINUTE
    task = np.where(seen.trade_in, "trade_in_follow_up", "credit_follow_up")
    state.log.add(
        "crm_task_created",
        cust[followed],
        t_task[followed],
        r[followed],
        channel="crm",
        attrs=json_attrs(task=task[followed]),
    )
    return Response(
        t_resp=t_resp,
        minutes=minutes,
        never=never,
        done=~never,
        task_followed=followed,
        t_task=t_task,
    )


def _log_replies(
    state: GroupState,
    rng: np.random.Generator,
    cust: np.ndarray,
    t_resp: np.ndarray,
    responded: np.ndarray,
    resp_kind: np.ndarray,
    *,
    done: np.ndarray,
) -> None:
    """The BDC's replies (a call picked up or not), the completed CRM task, and the customer's
    answers to texts and emails (more likely with higher purchase intent)."""
    a = state.assumptions.first_response
    n = len(cust)
    r = state.customers.home[cust]
    intent = state.customers.intent[cust]
    picked_up = rng.random(n) < causal.sigmoid(a.picked_up.log_odds(intent))
    for k, etype, channel in OUTREACH:
        m = responded & (resp_kind == k)
        value = (
            np.where(picked_up[m], rng.integers(*a.call_seconds, m.sum()), 0.0)
            if k == CALL
            else None
        )
        state.log.add(etype, cust[m], t_resp[m], r[m], channel=channel, value=value)
    state.log.add(
        "crm_task_completed",
        cust[done],
        t_resp[done] + a.task_completed_delay_seconds,
        r[done],
        channel="crm",
        attrs=json_attrs(task=np.full(done.sum(), "lead_follow_up")),
    )
    reply_ts = t_resp + rng.exponential(a.customer_reply_minutes_mean, n) * MINUTE
    replied = (
        responded
        & (resp_kind > CALL)
        & (rng.random(n) < causal.sigmoid(a.customer_reply.log_odds(intent)))
    )
    for k, etype, channel in ((TEXT, "sms_replied", "sms"), (EMAIL, "email_opened", "email")):
        m = replied & (resp_kind == k)
        state.log.add(etype, cust[m], reply_ts[m], r[m], channel=channel)


def follow_up_cadence(
    state: GroupState,
    rng: np.random.Generator,
    cust: np.ndarray,
    t_lead: np.ndarray,
    cutoff: np.ndarray,
    reply: Response,
    leaked: np.ndarray,
    booked_at: np.ndarray,
) -> np.ndarray:
    """Follow-up attempts after the first reply (unanswered when the lead is going dark);
    returns the time of each lead's next step (an appointment booked or a walk-in):
    ``booked_at`` where the lead booked during its first contact (not NaN), with no
    follow-up attempts then."""
    a = state.assumptions.follow_up
    n = len(cust)
    r = state.customers.home[cust]
    start = np.maximum(reply.t_resp, cutoff)
    gap = rng.exponential(a.next_step_gap_days_mean, n) * DAY
    window_end = t_lead + state.params.lead_leakage.window_days * DAY
    t_next = np.clip(
        start + gap,
        cutoff + a.next_step_after_cutoff_minutes * MINUTE,
        window_end - a.next_step_before_window_end_days * DAY,
    )
    t_next = np.where(np.isnan(booked_at), t_next, booked_at)
    attempts = np.where(reply.done, rng.poisson(state.p["follow_up_attempts"][r]), 0)
    idx = np.repeat(np.arange(n), attempts)
    t_att = start[idx] + rng.uniform(*a.attempt_days, len(idx)) * DAY
    keep = leaked[idx] | (t_att < t_next[idx])
    idx, t_att = idx[keep], t_att[keep]
    shares = a.attempt_shares
    att_kind = rng.choice(3, len(idx), p=[shares.call, shares.text, shares.email])
    for k, etype, channel in OUTREACH:
        m = att_kind == k
        value = None
        if k == CALL:
            answered = ~leaked[idx[m]] & (rng.random(m.sum()) < a.attempt_call_answered_share)
            value = np.where(answered, rng.integers(*a.attempt_call_seconds, m.sum()), 0.0)
        state.log.add(etype, cust[idx[m]], t_att[m], r[idx[m]], channel=channel, value=value)
    return np.asarray(t_next, dtype=float)
