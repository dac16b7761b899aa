"""The shipped mappings of the simulator's raw exports: each export, ingested through its
mapping, yields the canonical events it carries, per rooftop and event type."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from cjm_ml.ingest.mapping import shipped_mapping
from cjm_ml.ingest.pipeline import ingest
from cjm_ml.simulation import SimulationConfig, simulate
from cjm_ml.simulation.exports import write_raw_exports

SALT = "test-salt-0123456789"
COUNT = ["rooftop_id", "event_type"]
#: A credit application made online is a web analytics hit, one made in the store a CRM
#: activity.
ONLINE, IN_STORE = {"credit_application": "web"}, {"credit_application": "in_person"}
#: The event types of web_events.csv.
WEB_PAGES = [
    "credit_application",
    "inventory_search",
    "online_scheduling",
    "payment_calculator",
    "trade_in_tool",
    "vdp_view",
]
#: The event types of crm_activities.csv.
CRM_ACTIVITIES = [
    "appraisal",
    "credit_application",
    "crm_task_completed",
    "crm_task_created",
    "csi_survey",
    "delivery_education",
    "desking",
    "email_opened",
    "email_sent",
    "fi_session",
    "maintenance_reminder",
    "missed_call",
    "outbound_call",
    "recall_notice",
    "service_reminder",
    "showroom_visit",
    "sms_replied",
    "sms_sent",
    "test_drive",
    "vehicle_hold_placed",
    "vehicle_status_changed",
]


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, Path]:
    group = simulate(SimulationConfig(rooftops=6, customers=300, seed=5))
    raw = write_raw_exports(group, tmp_path_factory.mktemp("raw") / "raw")["rooftops"].parent
    return group.events, raw


def _counts(
    events: pd.DataFrame, types: list[str], elsewhere: dict[str, str] | None = None
) -> dict[tuple[str, str], int]:
    """Events per (rooftop, event type) of the given types, leaving out those of an event
    type on the channel ``elsewhere`` names for it (another export carries them)."""
    chosen = events[events["event_type"].astype(str).isin(types)]
    for event_type, channel in (elsewhere or {}).items():
        other = chosen["event_type"].astype(str).eq(event_type)
        chosen = chosen[~(other & chosen["channel"].astype(str).eq(channel))]
    counts = chosen.groupby(COUNT, observed=True).size()
    return {(str(r), str(t)): int(n) for (r, t), n in counts.items()}


@pytest.mark.parametrize(
    ("mapping", "export", "types", "elsewhere"),
    [
        ("dms_deals", "dms_deals.csv", ["vehicle_delivery"], {}),
        ("crm_leads", "crm_leads.csv", ["lead_call", "lead_chat", "lead_closed"], {}),
        ("adf_leads", "adf", ["lead_form", "lead_third_party"], {}),
        ("crm_activities", "crm_activities.csv", CRM_ACTIVITIES, ONLINE),
        ("web_events", "web_events.csv", WEB_PAGES, IN_STORE),
        ("customers", "customers.csv", ["contact_preferences_set"], {}),
    ],
)
def test_a_shipped_mapping_yields_the_canonical_events_of_its_export(
    simulated: tuple[pd.DataFrame, Path],
    tmp_path: Path,
    mapping: str,
    export: str,
    types: list[str],
    elsewhere: dict[str, str],
) -> None:
    canonical, raw = simulated
    report = ingest(shipped_mapping(mapping), [raw / export], data_dir=tmp_path, salt=SALT)
    assert report.refused_rows == 0
    events = pd.read_parquet(tmp_path / "events")
    assert sorted(events["event_type"].astype(str).unique()) == sorted(types)
    want = _counts(canonical, types, elsewhere)
    assert sum(want.values()) > 0
    assert _counts(events, types) == want
