"""Every wording of a value, written once: the driver sentences and the journey map both read
durations, counts, rates, scores, marketing sources and tasks the same way.

Vectorised functions (``format_minutes``, ``format_values``, ...) take arrays and return object
arrays of strings for the sentences; scalar ones (``format_duration``, ``format_percent``,
``format_kpi``, ...) return one string for a page and read an unknown value as ``NOT_KNOWN``.
A duration reads "under a minute", "12 min", "3 h 10 min", "2 days".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import numpy as np

#: How a page shows a value nobody knows.
NOT_KNOWN = "–"
#: The minus sign of a difference on a page (a real minus, not a hyphen).
MINUS = "−"

#: Marketing sources: key -> (label on a page, words inside a sentence: "came from ...").
_SOURCES: dict[str, tuple[str, str]] = {
    "google_paid_search": ("Google paid search", "Google paid search"),
    "oem_website": ("OEM website", "the OEM website"),
    "dealer_website_organic": ("Dealer website (organic)", "the dealer website (organic)"),
    "facebook_ads": ("Facebook ads", "Facebook ads"),
    "autotrader": ("Autotrader", "Autotrader"),
    "cars_com": ("Cars.com", "Cars.com"),
    "email_campaign": ("Email campaign", "an email campaign"),
    "referral": ("Referral", "a referral"),
}
#: A lead's marketing source when none was recorded (``rules.UNKNOWN_SOURCE``).
_NO_SOURCE = "unknown"
#: Marketing source -> its label on a page (tables, charts).
SOURCE_LABELS: dict[str, str] = {
    **{key: label for key, (label, _) in _SOURCES.items()},
    _NO_SOURCE: "Source not recorded",
}
#: (marketing source, its words inside a sentence): the levels of the ``marketing_source``
#: feature's wording ("came from a referral").
SOURCE_PHRASES: tuple[tuple[str, str], ...] = tuple(
    (key, phrase) for key, (_, phrase) in _SOURCES.items()
)
#: Prediction task -> what it predicts, as a manager names it.
TASK_LABELS: dict[str, str] = {
    "lead_leakage": "Leads going dark",
    "no_show": "Appointment no-shows",
    "service_defection": "Buyers not back for first service",
}


class ValueWording(Protocol):
    """What ``format_values`` reads of a feature's wording (``registry.Wording``)."""

    @property
    def norm(self) -> str | None: ...

    @property
    def noun(self) -> tuple[str, str]: ...

    @property
    def levels(self) -> tuple[tuple[str, str], ...]: ...


class WordedFeature(Protocol):
    """What ``format_values`` reads of a feature (``registry.FeatureSpec``)."""

    @property
    def name(self) -> str: ...

    @property
    def unit(self) -> str: ...

    @property
    def wording(self) -> ValueWording | None: ...


# --------------------------------------------------------------------------------------------
# Arrays of values, for sentences


def _ints(v: np.ndarray) -> np.ndarray:
    return np.rint(v).astype(np.int64).astype(str).astype(object)


def _plural(n: np.ndarray, noun: tuple[str, str]) -> np.ndarray:
    return np.where(np.rint(n) == 1, noun[0], noun[1]).astype(object)


def format_minutes(values: np.ndarray) -> np.ndarray:
    """Durations in minutes as a reader says them: "under a minute", "12 min", "1 h",
    "3 h 10 min" (under two days), "2 days". Known values only; an object array."""
    m = np.rint(np.asarray(values, dtype=float)).astype(np.int64)
    h, rest = np.divmod(m, 60)
    hm = _ints(h) + " h" + np.where(rest == 0, "", " " + _ints(rest) + " min").astype(object)
    days = _ints(m / 1440) + " days"
    return np.where(
        m < 1, "under a minute", np.where(m < 60, _ints(m) + " min", np.where(m < 2880, hm, days))
    ).astype(object)


def format_days(values: np.ndarray) -> np.ndarray:
    """Durations in days: "under an hour", "7 h", "1 day", "9 days". An object array."""
    v = np.asarray(values, dtype=float)
    hours = np.rint(v * 24)
    return np.where(
        v < 1 / 24,
        "under an hour",
        np.where(
            hours < 24,
            _ints(hours) + " h",
            np.where(v < 1.5, "1 day", _ints(v) + " days"),
        ),
    ).astype(object)


def format_km(values: np.ndarray) -> np.ndarray:
    """Distances: "under 1 km", "48 km". An object array."""
    v = np.asarray(values, dtype=float)
    return np.where(v < 1, "under 1 km", _ints(v) + " km").astype(object)


def format_days_until(values: np.ndarray) -> np.ndarray:
    """Days from now to a date: "in 9 days", "today", "40 days ago". An object array."""
    v = np.asarray(values, dtype=float)
    days = np.rint(np.abs(v))
    text = _ints(days) + np.where(days == 1, " day", " days").astype(object)
    return np.where(days == 0, "today", np.where(v > 0, "in " + text, text + " ago")).astype(object)


def format_years(values: np.ndarray) -> np.ndarray:
    """Years to one decimal: "under a year" (below 0.1), "1 year", "6.5 years". An object
    array."""
    v = np.round(np.asarray(values, dtype=float), 1)
    text = np.char.mod("%g", v).astype(object)
    return np.where(
        np.abs(v) < 0.1, "under a year", text + np.where(v == 1, " year", " years").astype(object)
    ).astype(object)


def format_numbers(values: np.ndarray) -> np.ndarray:
    """Plain numbers as a reader says them: thousands separated, at most one decimal below
    100 ("3.5", "12,480"). An object array."""
    v = np.asarray(values, dtype=float)
    return np.array(
        [f"{x:,.0f}" if abs(x) >= 100 else f"{round(x, 1):g}" for x in v.tolist()], dtype=object
    )


def format_scores(values: np.ndarray) -> np.ndarray:
    """Scores to one decimal, without a trailing zero: "7", "8.5". An object array."""
    return np.char.mod("%g", np.round(np.asarray(values, dtype=float), 1)).astype(object)


def format_counts(values: np.ndarray, noun: tuple[str, str]) -> np.ndarray:
    """Counts with their noun (singular, plural): "1 text", "3 texts". An object array."""
    v = np.asarray(values, dtype=float)
    return np.asarray(_ints(v) + " " + _plural(v, noun), dtype=object)


def format_categories(values: np.ndarray, levels: Mapping[str, str]) -> np.ndarray:
    """Category values in words: ``levels[value]``, else the value with underscores as
    spaces. An object array."""
    uniques, inverse = np.unique(np.asarray(values, dtype=object).astype(str), return_inverse=True)
    words = np.array([levels.get(u, u.replace("_", " ")) for u in uniques], dtype=object)
    return words[inverse.reshape(-1)]


def _wording(spec: WordedFeature) -> ValueWording:
    if spec.wording is None:
        raise ValueError(f"feature {spec.name!r} has no wording to read its values with")
    return spec.wording


def format_values(spec: WordedFeature, values: np.ndarray) -> np.ndarray:
    """Known values of a feature in dealer terms ("3 h 10 min", "9 days", "2 texts", "48 km",
    "text"), vectorised; an object array of strings. Refuses a feature without a wording or
    with an unknown unit (``ValueError``)."""
    w = _wording(spec)
    if spec.unit == "category":
        return format_categories(np.asarray(values, dtype=object), dict(w.levels))
    v = np.asarray(values, dtype=float)
    if spec.unit == "minutes":
        return format_minutes(v)
    if spec.unit == "days":
        return format_days(v)
    if spec.unit == "km":
        return format_km(v)
    if spec.unit == "count":
        return format_counts(v, w.noun)
    if spec.unit == "flag":
        return np.where(v > 0.5, "yes", "no").astype(object)
    if spec.unit == "score":
        return format_scores(v)
    if spec.unit == "days_until":
        return format_days_until(v)
    if spec.unit == "years":
        return format_years(v)
    if spec.unit == "number":
        return format_numbers(v)
    raise ValueError(f"feature {spec.name!r}: no wording for unit {spec.unit!r}")


def format_standard(spec: WordedFeature, norm: float) -> str:
    """A feature's group norm in dealer terms: a share as a percentage, the response standard
    in minutes, a median in the feature's unit. Refuses a feature without a wording."""
    w = _wording(spec)
    arr = np.array([norm], dtype=float)
    if w.norm == "share":
        return f"{round(norm * 100)}%"
    if w.norm == "sla":
        return str(format_minutes(arr)[0])
    if spec.unit == "count":
        return str(np.char.mod("%g", np.round(arr, 1))[0])
    return str(format_values(spec, arr)[0])


# --------------------------------------------------------------------------------------------
# One value, for a page


def _known(value: float | None) -> bool:
    return value is not None and bool(np.isfinite(value))


def format_duration(minutes: float | None) -> str:
    """A duration in minutes as the sentences say it ("3 h 10 min"); ``NOT_KNOWN`` if unknown."""
    if minutes is None or not _known(minutes):
        return NOT_KNOWN
    return str(format_minutes(np.array([minutes]))[0])


def format_hours(hours: float | None) -> str:
    """A duration in hours, read as ``format_duration`` reads minutes."""
    return NOT_KNOWN if hours is None or not _known(hours) else format_duration(hours * 60)


def format_count(n: float) -> str:
    """A whole number with thousands separators: "5,400"."""
    return f"{int(n):,}"


def format_percent(share: float | None, decimals: int = 0) -> str:
    """A share as a percentage ("12%", "12.0%" with one decimal); ``NOT_KNOWN`` if unknown."""
    if share is None or not _known(share):
        return NOT_KNOWN
    return f"{share:.{decimals}%}"


def format_points(share: float) -> str:
    """A share of risk added, in percentage points with a sign: "+12.0 pts"."""
    return f"{share * 100:+.1f} pts".replace("-", MINUS)


def format_kpi(value: float | None, unit: str) -> str:
    """A KPI value as a page shows it: a duration (``minutes``), a percentage to one decimal
    (``share``) or a score of 10 (``score``); ``NOT_KNOWN`` if unknown. Refuses an unknown
    unit (``ValueError``)."""
    if unit not in ("minutes", "share", "score"):
        raise ValueError(f"unknown KPI unit {unit!r}; expected minutes, share or score")
    if value is None or not _known(value):
        return NOT_KNOWN
    if unit == "minutes":
        return format_duration(value)
    if unit == "share":
        return format_percent(value, 1)
    return f"{value:.1f}"


def format_deviation(difference: float, unit: str) -> str:
    """How far a figure is from the group standard, in the KPI's unit: "+50 min vs group",
    "−26.5 pts vs group", "−0.6 vs group". Refuses an unknown unit (``ValueError``)."""
    if unit == "minutes":
        sign = "+" if difference >= 0 else MINUS
        return f"{sign}{format_duration(abs(difference))} vs group"
    if unit == "share":
        return f"{difference * 100:+.1f} pts vs group".replace("-", MINUS)
    if unit == "score":
        return f"{difference:+.1f} vs group".replace("-", MINUS)
    raise ValueError(f"unknown KPI unit {unit!r}; expected minutes, share or score")


def source_label(source: str) -> str:
    """A marketing source in plain words (known sources by name, others tidied up)."""
    if source in SOURCE_LABELS:
        return SOURCE_LABELS[source]
    return str(source).replace("_", " ").strip().capitalize() or SOURCE_LABELS[_NO_SOURCE]


def task_label(task: str) -> str:
    """What a prediction task predicts, as a manager names it (an unknown task: its name)."""
    return TASK_LABELS.get(task, task)
