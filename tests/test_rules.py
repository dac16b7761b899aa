"""The shared journey rules on three-row fixtures: service bookings through reschedules, the
first reply to a lead, and "worse than the group", with exact values and the failure paths."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cjm_ml.rules import (
    JourneyRules,
    answered_live,
    better_than_group,
    first_response_minutes,
    responded_within_sla,
    service_bookings,
    worse_than_group,
)

NS_MIN = 60 * 1_000_000_000
RULES = JourneyRules()


# ------------------------------------------------------------------------------ bookings
def test_a_reschedule_keeps_the_kind_of_the_booking_it_moves_along_chains() -> None:
    # s-1 is booked as service; s-2 moves s-1, s-3 moves s-2 (listed before it): all service.
    got = service_bookings(
        pd.array(["s-3", "s-1", "s-2"], dtype="string"),
        [ "s-2", None, "s-1"],
        np.array([False, True, False]),
    )  # fmt: skip
    assert got.tolist() == [True, True, True]


def test_a_reschedule_of_a_sales_booking_stays_sales() -> None:
    got = service_bookings(
        pd.Series(["a-1", "a-2", "s-1"], dtype="string"),
        pd.Series([None, "a-1", None], dtype="string"),
        np.array([False, False, True]),
    )
    assert got.tolist() == [False, False, True]


def test_bookings_with_missing_ids_or_no_reschedule_are_as_booked() -> None:
    booked = np.array([True, False, False])
    got = service_bookings([None, "a-1", "a-2"], [None, None, None], booked)
    assert got.tolist() == [True, False, False]
    assert got is not booked  # the caller's array is not changed in place
    moved = service_bookings([None, "a-1", "a-2"], [None, None, "missing"], booked)
    assert moved.tolist() == [True, False, False]  # a null id is no parent


def test_service_bookings_refuses_misaligned_arrays() -> None:
    with pytest.raises(ValueError, match="2 appointment ids, 3 rescheduled_from and 3"):
        service_bookings(["a", "b"], [None, None, None], np.array([False, False, False]))


# ------------------------------------------------------------------------------ first reply
def test_only_an_inbound_call_picked_up_is_answered_live() -> None:
    types = pd.array(["call", "call", "form"], dtype="string")
    assert answered_live(types, np.array([45.0, 0.0, 45.0])).tolist() == [True, False, False]
    assert answered_live(
        np.array(["call", None, "chat"], dtype=object), np.array([1, 1, np.nan])
    ).tolist() == [
        True,
        False,
        False,
    ]
    many = pd.Series(["call", None, "form"] * 40, dtype="string")  # the vectorised path
    assert answered_live(many, np.full(120, 30.0)).tolist() == [True, False, False] * 40


def test_first_response_minutes_count_a_live_call_as_zero() -> None:
    lead = np.array([0, 0, 0], dtype=np.int64)
    reply = np.array([12 * NS_MIN, np.nan, np.nan])
    live = np.array([False, True, False])
    got = first_response_minutes(lead, reply, live)
    np.testing.assert_array_equal(got, [12.0, 0.0, np.nan])
    waited = first_response_minutes(lead, reply, live, np.full(3, 90 * NS_MIN))
    assert waited.tolist() == [12.0, 0.0, 90.0]  # no reply yet: the wait until the cutoff


def test_within_sla_needs_a_reply() -> None:
    got = responded_within_sla(np.array([15.0, 14.0, np.nan]), np.array([True, False, False]), 15)
    assert got.tolist() == [True, False, False]


# ------------------------------------------------------------------------------ worse
def test_response_time_needs_both_the_ratio_and_the_extra_minutes() -> None:
    # group 10 min: 16 min is 1.6x but only 6 min slower; 25 min is both; 20 min is 2x and 10.
    got = worse_than_group([16.0, 25.0, 20.0], 10.0, "minutes", RULES, sample=[30, 30, 30])
    assert got.tolist() == [False, True, True]
    assert not worse_than_group(25.0, 20.0, "minutes", RULES)  # only 1.25x


def test_rates_and_scores_flag_at_exactly_the_margin_on_enough_cases() -> None:
    rates = worse_than_group([0.25, 0.26, 0.25], 0.30, "share", RULES, sample=[30, 30, 29])
    assert rates.tolist() == [True, False, False]  # 5 points on 30 cases; 4; too few cases
    csi = worse_than_group([8.0, 8.1, np.nan], 8.5, "score", RULES, sample=[40, 40, 40])
    assert csi.tolist() == [True, False, False]
    lower_better = worse_than_group(0.35, 0.30, "share", RULES, higher_is_better=False)
    assert bool(lower_better)
    assert not worse_than_group(0.2, np.nan, "share", RULES)


def test_better_than_group_is_the_margin_the_other_way() -> None:
    got = better_than_group([0.35, 0.34, 0.40], 0.30, "share", RULES, sample=[30, 30, 10])
    assert got.tolist() == [True, False, False]


def test_unknown_units_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown KPI unit 'hours'"):
        worse_than_group(1.0, 1.0, "hours", RULES)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="compares shares or scores, not 'minutes'"):
        better_than_group(1.0, 1.0, "minutes", RULES)  # type: ignore[arg-type]


def test_the_group_policy_is_the_readme_s() -> None:
    assert (RULES.response_ratio, RULES.response_extra_minutes) == (1.5, 10)
    assert (RULES.rate_margin, RULES.csi_margin, RULES.min_sample) == (0.05, 0.5, 30)
    with pytest.raises(ValueError, match="response_ratio"):
        JourneyRules(response_ratio=1)
