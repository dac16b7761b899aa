"""Hand-written journeys for exact-value tests: tiny event tables built from readable rows."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from cjm_ml.events import validate_events

DAY0 = pd.Timestamp("2025-06-02T00:00:00Z")  # a Monday


def at(day: float, hhmm: str = "00:00") -> str:
    """ISO time on ``day`` days after DAY0 at local ``hh:mm`` (UTC)."""
    h, m = (int(x) for x in hhmm.split(":"))
    return (DAY0 + pd.Timedelta(days=day, hours=h, minutes=m)).isoformat()


def events(rows: list[dict[str, Any]], rooftop: str = "rt-01") -> pd.DataFrame:
    """A typed canonical event table from short rows (missing fields get defaults)."""
    full = []
    for i, r in enumerate(rows):
        attrs = r.get("attributes")
        full.append(
            {
                "event_id": r.get("event_id", f"e-{i:04d}"),
                "dealer_group_id": "dg-01",
                "rooftop_id": r.get("rooftop_id", rooftop),
                "customer_id": r.get("customer_id", "c-1"),
                "ts": r["ts"],
                "event_type": r["event_type"],
                "channel": r.get("channel", ""),
                "source": r.get("source", ""),
                "vehicle_id": r.get("vehicle_id", ""),
                "value": "" if r.get("value") is None else str(r["value"]),
                "attributes": json.dumps(attrs) if attrs else "",
            }
        )
    typed, violations = validate_events(pd.DataFrame(full).astype(str), "journey")
    assert violations == [], violations
    return typed
