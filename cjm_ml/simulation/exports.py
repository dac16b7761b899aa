"""The simulated journeys written as the files real dealer systems export, with their mess.

``write_raw_exports(group, out_dir)`` writes one folder (replaced whole, never half-written):

- ``adf/``: web-form leads, one ADF 1.0 document per file (``<lead id>.xml``), and the
  third-party leads in one file holding many ``<adf>`` documents (``third_party_leads.xml``).
- ``crm_leads.csv``, ``crm_activities.csv``: the CRM's leads (phone-ups and chats it took
  itself, and the web-form and third-party leads that also arrived as ADF), each with its
  status and when the CRM closed it, and its activity log (calls, texts, emails, tasks,
  showroom steps, holds, reminders, surveys).
- ``scheduler_appointments.csv``: every sales and service appointment once, with its outcome.
- ``dms_deals.csv``, ``dms_repair_orders.csv``: deliveries, and repair orders with inspections.
- ``web_events.csv``: web analytics hits by visitor id.
- ``customers.csv``, ``vehicles.csv``: customer and vehicle profiles.
- ``rooftops.csv``: each rooftop's name, DMS store code, website and IANA time zone.
- ``truth_identity.parquet``: each raw id and the simulator's ``customer_id`` (and canonical id).

The mess: times are naive local times of the rooftop (formats differ by system); each system
has its own ids (CRM lead ids, DMS customer numbers, web visitor ids, its own appointment, deal
and repair-order numbers); names, emails and phones are spelled differently from row to row;
contact details are fake (``example.com`` emails, ``555-01xx`` phones); a few rows are written
twice; rows are shuffled. The README's "Raw exports" section documents every column.

What the exports do not carry, that the canonical events do: event ids; the dealer group id
(``rooftops.csv`` names it); the customer id (only through identity resolution); the UTC offset
(naive times in the hour repeated when daylight saving time ends are ambiguous); the channel
of events whose record type implies it; the order of events within the same second; and web
hits of visitors never linked to a lead or a signed-in visit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from cjm_ml.io import atomic_dir
from cjm_ml.simulation.assumptions import Exports, Vehicles, load_assumptions
from cjm_ml.simulation.generator import SimulatedGroup

log = logging.getLogger(__name__)

#: Time formats by system (naive local times of the rooftop).
ISO_TIME = "%Y-%m-%d %H:%M:%S"
US_TIME = "%m/%d/%Y %H:%M:%S"
ADF_TIME = "%Y-%m-%dT%H:%M:%S"

#: Leads by export: web-form and third-party leads arrive as ADF, the rest live in the CRM.
ADF_LEADS = {"lead_form": "Website form", "lead_third_party": "Third-party listing"}
CRM_LEADS = {"lead_call": "Phone Up", "lead_chat": "Chat"}
#: Lead types of the ADF leads in the CRM's lead list (their events come from the ADF).
CRM_ADF_LEAD_TYPES = {"lead_form": "Internet", "lead_third_party": "Third Party"}
#: The CRM closing a lead (``lead_closed``): its status and lost reason by canonical status.
LEAD_CLOSURES = {
    "sold": ("Sold", None),
    "lost_other_dealer": ("Lost", "Bought elsewhere"),
    "no_contact": ("Lost", "No response"),
    "bad_lead": ("Bad", None),
    "duplicate": ("Duplicate", None),
}
#: Web analytics page types (a credit application only when made on the web).
WEB_PAGES = {
    "inventory_search": "search_results",
    "vdp_view": "vehicle_detail",
    "payment_calculator": "payment_calculator",
    "trade_in_tool": "trade_in_value",
    "online_scheduling": "service_scheduler",
    "credit_application": "credit_application",
}
#: CRM activity types (a credit application only when made in the store), and who logs them.
CRM_ACTIVITIES = {
    "outbound_call": ("Outbound Call", "bdc"),
    "missed_call": ("Missed Call", "bdc"),
    "sms_sent": ("Text Sent", "bdc"),
    "sms_replied": ("Text Received", "bdc"),
    "email_sent": ("Email Sent", "bdc"),
    "email_opened": ("Email Opened", "bdc"),
    "crm_task_created": ("Task Created", "bdc"),
    "crm_task_completed": ("Task Completed", "bdc"),
    "vehicle_hold_placed": ("Vehicle Hold", "sales"),
    "vehicle_status_changed": ("Vehicle Sold Notice", "sales"),
    "showroom_visit": ("Showroom Visit", "sales"),
    "test_drive": ("Test Drive", "sales"),
    "appraisal": ("Appraisal", "sales"),
    "credit_application": ("Credit Application", "fi"),
    "desking": ("Desking", "sales"),
    "fi_session": ("F&I Menu", "fi"),
    "delivery_education": ("Delivery Education", "sales"),
    "service_reminder": ("Service Reminder", "service"),
    "maintenance_reminder": ("Maintenance Reminder", "service"),
    "recall_notice": ("Recall Notice", "service"),
    "csi_survey": ("CSI Survey", "service"),
}
#: Canonical channels in the CRM's and the scheduler's words.
CRM_CHANNELS = {
    "sms": "Text",
    "email": "Email",
    "mail": "Letter",
    "phone": "Phone",
    "web": "Online",
    "in_person": "In Store",
}
BOOKINGS = ("appointment_set", "service_appointment_set", "appointment_rescheduled")
OUTCOMES = {
    "appointment_showed": "shown",
    "appointment_no_show": "no-show",
    "appointment_cancelled": "cancelled",
}
RO_STEPS = ("repair_order_opened", "repair_order_closed", "mpi_sent", "mpi_approved")
#: The deal's vehicle and buyer profile: ``dms_deals.csv`` column -> delivery event attribute.
DEAL_PROFILE = {
    "model_line": "model_line",
    "model_year": "model_year",
    "odometer": "mileage",
    "warranty_end": "warranty_end",
    "buyer_age_band": "age_band",
}
#: The vehicle profile ``vehicles.csv`` carries (delivery event attributes of the same names).
VEHICLE_PROFILE = ("model_line", "model_year", "mileage", "warranty_end")
NUMERIC_PROFILE = ("model_year", "mileage")

FIRST_NAMES = np.array(
    [
        "James",
        "Mary",
        "Robert",
        "Patricia",
        "John",
        "Jennifer",
        "Michael",
        "Linda",
        "David",
        "Elizabeth",
        "William",
        "Barbara",
        "Richard",
        "Susan",
        "Joseph",
        "Jessica",
        "Thomas",
        "Sarah",
        "Carlos",
        "Karen",
        "Daniel",
        "Lisa",
        "Matthew",
        "Nancy",
        "Anthony",
        "Betty",
        "Mark",
        "Sandra",
        "Donald",
        "Ashley",
        "Steven",
        "Emily",
        "Andrew",
        "Maria",
        "Joshua",
        "Michelle",
        "Kevin",
        "Amanda",
    ]
)
LAST_NAMES = np.array(
    [
        "Smith",
        "Johnson",
        "Williams",
        "Brown",
        "Jones",
        "Garcia",
        "Miller",
        "Davis",
        "Rodriguez",
        "Martinez",
        "Hernandez",
        "Lopez",
        "Gonzalez",
        "Wilson",
        "Anderson",
        "Thomas",
        "Taylor",
        "Moore",
        "Jackson",
        "Martin",
        "Lee",
        "Perez",
        "Thompson",
        "White",
        "Harris",
        "Sanchez",
        "Clark",
        "Ramirez",
        "Lewis",
        "Robinson",
        "Walker",
        "Young",
        "Allen",
        "King",
        "Wright",
        "Scott",
        "Torres",
        "Nguyen",
    ]
)
EMAIL_DOMAINS = np.array(["example.com", "example.net", "example.org"])


@dataclass(frozen=True)
class RawExports:
    """The exports as written: CSV tables by file stem, ADF documents by file name (relative
    to ``adf/``), and the identity truth."""

    tables: dict[str, pd.DataFrame]
    adf_files: dict[str, str]
    truth_identity: pd.DataFrame


@dataclass
class _Group:
    """The events with the columns every export needs, the people, rooftops and settings."""

    events: pd.DataFrame  # canonical events + cust, rt, local, lead_id, number, vin
    people: pd.DataFrame  # by customer number (index): names, contacts, ids
    rooftops: pd.DataFrame  # by rooftop code (index): id, name, store, website, time_zone
    settings: Exports
    vehicles: Vehicles
    seed: int

    def rng(self, purpose: int) -> np.random.Generator:
        """A random stream of its own per purpose, so each export is stable on its own."""
        return np.random.default_rng([self.seed, 14_000, purpose])

    def of(self, event_types: list[str] | tuple[str, ...]) -> pd.DataFrame:
        """The events of the given types, in canonical order."""
        return self.events[self.events["event_type"].isin(event_types)]


def raw_exports(group: SimulatedGroup, settings: Exports | None = None) -> RawExports:
    """The group's journeys as raw exports (nothing written). Deterministic for the group's
    seed; ``settings`` replaces the ``[exports]`` assumptions. Refuses a rooftop whose UTC
    offset has no time zone in the settings (``KeyError`` naming the offset)."""
    g = _prepare(group, settings or load_assumptions().exports)
    tables: dict[str, pd.DataFrame] = {
        "crm_leads": _crm_leads(g),
        "crm_activities": _crm_activities(g),
        "scheduler_appointments": _scheduler(g),
        "dms_deals": _dms_deals(g),
        "dms_repair_orders": _dms_repair_orders(g),
        "web_events": _web_events(g),
        "customers": _customers(g),
        "vehicles": _vehicles(g),
    }
    adf = _adf_leads(g)
    truth = _truth_identity({**tables, "adf": adf})
    hidden = ["_customer_id", "_canonical_id"]
    messy = {
        name: _mess(table.drop(columns=hidden), g.rng(100 + i), g.settings)
        for i, (name, table) in enumerate(tables.items())
    }
    rooftops = g.rooftops.drop(columns="offset").reset_index(drop=True)
    return RawExports(
        tables={**messy, "rooftops": rooftops},
        adf_files=_adf_files(g, adf),
        truth_identity=truth,
    )


def write_raw_exports(
    group: SimulatedGroup, out_dir: Path, settings: Exports | None = None
) -> dict[str, Path]:
    """Write the raw exports into ``out_dir``, replacing it whole (a reader never sees half a
    folder). Returns the paths written by name (``adf`` is the ADF folder)."""
    exports = raw_exports(group, settings)
    names = [*exports.tables, "truth_identity", "adf"]
    with atomic_dir(out_dir) as tmp:
        for name, table in exports.tables.items():
            pa_csv.write_csv(pa.Table.from_pandas(table, preserve_index=False), tmp / f"{name}.csv")
        pq.write_table(
            pa.Table.from_pandas(exports.truth_identity, preserve_index=False),
            tmp / "truth_identity.parquet",
        )
        (tmp / "adf").mkdir()
        for file_name, text in exports.adf_files.items():
            (tmp / "adf" / file_name).write_text(text, encoding="utf-8")
    log.info(
        "wrote raw exports of %d customers (%d ADF files) to %s",
        len(exports.tables["customers"]),
        len(exports.adf_files),
        out_dir,
    )
    suffix = {"truth_identity": ".parquet", "adf": ""}
    return {n: out_dir / f"{n}{suffix.get(n, '.csv')}" for n in names}


# --- the shared columns ---------------------------------------------------------------------


def _prepare(group: SimulatedGroup, settings: Exports) -> _Group:
    """The events with customer and rooftop codes, local times, lead ids, DMS customer numbers
    and VINs; the people and the rooftops."""
    ev = group.events
    cust = ev["customer_id"].str.slice(2).astype("int64").to_numpy()
    rooftops = _rooftop_table(group, settings)
    g = _Group(
        events=pd.DataFrame(),
        people=pd.DataFrame(),
        rooftops=rooftops,
        settings=settings,
        vehicles=(group.config.assumptions or load_assumptions()).vehicles,
        seed=group.config.seed,
    )
    g.people = _people(g, int(cust.max()) + 1 if len(cust) else 0)
    rt = ev["rooftop_id"].cat.codes.to_numpy()
    g.events = ev.assign(
        cust=cust,
        rt=rt,
        local=_local_times(ev["ts"], rt, rooftops["time_zone"].to_numpy()),
        # When the event was entered into its system, where later (the "entered" columns).
        entered=_local_times(ev["recorded_ts"], rt, rooftops["time_zone"].to_numpy()),
        number=g.people["customer_number"].to_numpy()[cust],
        vin=_vins(ev["vehicle_id"]),
        lead_id=_lead_ids(ev, cust, g.rng(1)),
    )
    return g


def _rooftop_table(group: SimulatedGroup, settings: Exports) -> pd.DataFrame:
    """One row per rooftop: its id, name, DMS store code, website and IANA time zone."""
    offsets = [r.process.utc_offset_hours for r in group.rooftops]
    unknown = sorted({o for o in offsets if o not in settings.time_zones})
    if unknown:
        raise KeyError(f"no time zone for UTC offset(s) {unknown} in the [exports] settings")
    names = pd.Series([r.name for r in group.rooftops], dtype="string")
    return pd.DataFrame(
        {
            "rooftop_id": [r.rooftop_id for r in group.rooftops],
            "name": names,
            "dms_store": [f"{i + 1:02d}" for i in range(len(offsets))],
            "website": names.str.lower().str.replace(" ", "", regex=False) + ".example.com",
            "time_zone": [settings.time_zones[o] for o in offsets],
            "dealer_group_id": group.config.dealer_group_id,
            "offset": offsets,
        }
    )


def _people(g: _Group, n: int) -> pd.DataFrame:
    """Fake people, one per customer: names, a unique email and ``555-01xx`` phone, a postal
    code, and their ids in each system (DMS customer number, web visitor id)."""
    rng = g.rng(2)
    first = pd.Series(FIRST_NAMES[rng.integers(0, len(FIRST_NAMES), n)], dtype="string")
    last = pd.Series(LAST_NAMES[rng.integers(0, len(LAST_NAMES), n)], dtype="string")
    tag = pd.Series(rng.permutation(n) + 10, dtype="int64").astype("string")
    domain = EMAIL_DOMAINS[rng.integers(0, len(EMAIL_DOMAINS), n)]
    # Unique up to 80,000 customers: 800 area codes times the 100 fictional 555-01xx lines.
    slot = rng.permutation(n)
    area = pd.Series(200 + (slot // 100) % 800, dtype="int64").astype("string")
    line = pd.Series(slot % 100, dtype="int64").astype("string").str.zfill(2)
    return pd.DataFrame(
        {
            "first_name": first,
            "last_name": last,
            "email": first.str.lower() + "." + last.str.lower() + tag + "@" + domain,
            "phone": area + "55501" + line,
            "postal_code": pd.Series(rng.integers(10_000, 99_999, n)).astype("string"),
            "customer_number": _numbers(rng.permutation(n), 100_000),
            "visitor_id": pd.Series(
                np.char.mod("%012x", rng.integers(0, 2**47, n)), dtype="string"
            ),
        }
    )


def _numbers(order: np.ndarray, base: int, prefix: str = "") -> pd.Series:
    """Ids a system would number: ``prefix`` and ``base + order``, as strings."""
    return prefix + pd.Series(base + np.asarray(order), dtype="int64").astype("string")


def _local_times(ts: pd.Series, rt: np.ndarray, zones: np.ndarray) -> np.ndarray:
    """Naive local times (``datetime64[s]``) of UTC times, by each row's rooftop zone."""
    out = np.empty(len(ts), dtype="datetime64[s]")
    index = pd.DatetimeIndex(ts)
    for code, zone in enumerate(zones):
        at = rt == code
        out[at] = index[at].tz_convert(str(zone)).tz_localize(None).to_numpy("datetime64[s]")
    return out


def _format(local: np.ndarray | pd.Series, fmt: str) -> pd.Series:
    """Naive times as text in ``fmt`` (missing times stay missing)."""
    arr = pa.array(np.asarray(local, dtype="datetime64[s]"), type=pa.timestamp("s"))
    return pd.Series(pc.strftime(arr, format=fmt).to_pandas(), dtype="string")


def _vins(vehicle_id: pd.Series) -> pd.Series:
    """A clearly fake 17-character VIN per canonical vehicle id (``ZZZFAKE`` + 10 digits)."""
    return ("ZZZFAKE" + vehicle_id.str.slice(2).str.zfill(10)).astype("string")


def _lead_ids(ev: pd.DataFrame, cust: np.ndarray, rng: np.random.Generator) -> pd.Series:
    """Each event's CRM lead id: the customer's latest lead at or before it (missing when the
    customer had none yet). Lead ids are numbered in the CRM's own order."""
    is_lead = ev["event_type"].isin([*ADF_LEADS, *CRM_LEADS]).to_numpy()
    n_leads = int(is_lead.sum())
    leads = pd.DataFrame(
        {
            "ts": ev["ts"].to_numpy()[is_lead],
            "cust": cust[is_lead],
            "lead_id": _numbers(rng.permutation(n_leads), 1_000_000, "L").to_numpy(),
        }
    ).sort_values("ts", kind="stable")
    left = pd.DataFrame({"ts": ev["ts"].to_numpy(), "cust": cust, "row": np.arange(len(ev))})
    joined = pd.merge_asof(
        left.sort_values("ts", kind="stable"), leads, on="ts", by="cust", direction="backward"
    )
    out = np.empty(len(ev), dtype=object)
    out[joined["row"].to_numpy()] = joined["lead_id"].to_numpy()
    return pd.Series(out, index=ev.index, dtype="string")


def _attr(attributes: pd.Series, key: str) -> pd.Series:
    """One string attribute of the events' JSON attributes (missing where absent)."""
    return attributes.str.extract(f'"{key}": "([^"]*)"')[0].astype("string")


# --- the mess -------------------------------------------------------------------------------


def _spelled(g: _Group, cust: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    """The customers' contact details as one row each of an export writes them: names in
    another case or as an initial, emails in another case, phones in one of four formats."""
    a = g.settings
    p = g.people.iloc[cust].reset_index(drop=True)
    n = len(cust)
    case = rng.choice(3, n, p=np.asarray(a.name_case_shares) / sum(a.name_case_shares))
    first = p["first_name"].where(
        rng.random(n) >= a.first_initial_share, p["first_name"].str[0] + "."
    )
    names = {}
    for col, name in (("first_name", first), ("last_name", p["last_name"])):
        names[col] = name.where(case != 1, name.str.upper()).where(case != 2, name.str.lower())
    email = p["email"].where(rng.random(n) >= a.email_case_share, _capitalised(p["email"]))
    return pd.DataFrame({**names, "email": email, "phone": _phone_formats(p["phone"], rng, a)})


def _capitalised(email: pd.Series) -> pd.Series:
    """``Mary.Smith42@Example.com`` from ``mary.smith42@example.com``."""
    local, _, domain = email.str.partition("@").T.to_numpy()
    return pd.Series(local, dtype="string").str.title() + "@" + pd.Series(domain).str.title()


def _phone_formats(digits: pd.Series, rng: np.random.Generator, a: Exports) -> pd.Series:
    """Ten-digit phones written as (NPA) NXX-XXXX, NPA-NXX-XXXX, +1 NPA NXX XXXX or digits."""
    npa, nxx, line = digits.str.slice(0, 3), digits.str.slice(3, 6), digits.str.slice(6)
    shares = np.asarray(a.phone_format_shares) / sum(a.phone_format_shares)
    style = rng.choice(4, len(digits), p=shares)
    formats = [
        "(" + npa + ") " + nxx + "-" + line,
        npa + "-" + nxx + "-" + line,
        "+1 " + npa + " " + nxx + " " + line,
        digits,
    ]
    out = formats[3].copy()
    for k in range(3):
        out = out.where(style != k, formats[k])
    return out


def _mess(frame: pd.DataFrame, rng: np.random.Generator, a: Exports) -> pd.DataFrame:
    """A few rows written twice, exactly, and every row out of order."""
    twice = frame[rng.random(len(frame)) < a.duplicate_row_share]
    out = pd.concat([frame, twice], ignore_index=True)
    return out.iloc[rng.permutation(len(out))].reset_index(drop=True)


def _where(values: pd.Series, keep: np.ndarray) -> pd.Series:
    """``values`` where ``keep``, missing elsewhere."""
    return values.where(keep).astype("string")


# --- leads ----------------------------------------------------------------------------------

#: Leads with no progress this close to the end of the history are still being worked.
WORKING_DAYS = 30


def _lead_status(g: _Group, leads: pd.DataFrame) -> pd.DataFrame:
    """Each lead's CRM status, lost reason and closing time: a closed lead's from its first
    ``lead_closed`` (Sold; Lost, bought elsewhere or no response; Bad; Duplicate), an open
    one's (Active, Appointment Set, Working, Inactive) from what followed it."""
    ev = g.events

    def followed_by(types: list[str]) -> np.ndarray:
        return leads["lead_id"].isin(ev.loc[ev["event_type"].isin(types), "lead_id"]).to_numpy()

    recent = (leads["ts"] > ev["ts"].max() - pd.Timedelta(days=WORKING_DAYS)).to_numpy()
    progress = np.select(
        [
            followed_by(["showroom_visit", "appointment_showed"]),
            followed_by(["appointment_set"]),
            recent,
        ],
        ["Active", "Appointment Set", "Working"],
        "Inactive",
    )
    closures = g.of(("lead_closed",)).drop_duplicates("lead_id")  # the first, by lead
    closure = closures.set_index("lead_id").reindex(leads["lead_id"].to_numpy())
    canonical = _attr(closure["attributes"].astype("string"), "status").to_numpy(dtype=object)
    closed = ~pd.isna(canonical)
    words = {k: v[0] for k, v in LEAD_CLOSURES.items()}
    reasons = {k: v[1] for k, v in LEAD_CLOSURES.items() if v[1] is not None}
    status = pd.Series(canonical, dtype="string").map(words)
    return pd.DataFrame(
        {
            "status": status.where(closed, pd.Series(progress, dtype="string")),
            "lost_reason": pd.Series(canonical, dtype="string").map(reasons).astype("string"),
            "closed_at": _format(closure["local"].to_numpy(dtype="datetime64[s]"), US_TIME),
            "status_entered_at": _format(
                closure["entered"].to_numpy(dtype="datetime64[s]"), US_TIME
            ),
        }
    )


def _visitor_ids(g: _Group, cust: np.ndarray) -> pd.Series:
    """The customers' web visitor ids, for those with web analytics hits (missing otherwise)."""
    on_web = np.zeros(len(g.people), dtype=bool)
    on_web[g.events.loc[_web_rows(g.events), "cust"].to_numpy()] = True
    return _where(g.people["visitor_id"].iloc[cust].reset_index(drop=True), on_web[cust])


def _crm_leads(g: _Group) -> pd.DataFrame:
    """``crm_leads.csv``: every lead, one row each (phone-ups and chats with their duration or
    messages; web-form and third-party leads, which also arrived as ADF), with status,
    closing time and contact."""
    leads = g.of((*CRM_LEADS, *CRM_ADF_LEAD_TYPES)).reset_index(drop=True)
    rng = g.rng(3)
    cust = leads["cust"].to_numpy()
    contact = _spelled(g, cust, rng)
    is_call = (leads["event_type"] == "lead_call").to_numpy()
    a = g.settings
    value = leads["value"]
    return pd.DataFrame(
        {
            "lead_id": leads["lead_id"],
            "created_at": _format(leads["local"], US_TIME),
            "rooftop": g.rooftops["name"].to_numpy()[leads["rt"]],
            "lead_type": leads["event_type"]
            .astype("string")
            .map({**CRM_LEADS, **CRM_ADF_LEAD_TYPES}),
            "source": leads["source"].astype("string"),
            **_lead_status(g, leads),
            "first_name": contact["first_name"],
            "last_name": contact["last_name"],
            "email": _where(
                contact["email"], ~is_call | (rng.random(len(cust)) < a.call_lead_email_share)
            ),
            "phone": _where(
                contact["phone"], is_call | (rng.random(len(cust)) < a.chat_lead_phone_share)
            ),
            "visitor_id": _visitor_ids(g, cust),
            "call_duration_s": value.where(is_call),
            "chat_messages": value.where((leads["event_type"] == "lead_chat").to_numpy()),
            "_customer_id": leads["customer_id"],
            "_canonical_id": leads["event_id"],
        }
    )


def _adf_leads(g: _Group) -> pd.DataFrame:
    """The ADF leads' fields, one row per web-form or third-party lead."""
    leads = g.of(tuple(ADF_LEADS)).reset_index(drop=True)
    cust = leads["cust"].to_numpy()
    contact = _spelled(g, cust, g.rng(4))
    return pd.DataFrame(
        {
            "lead_id": leads["lead_id"],
            "kind": leads["event_type"].astype("string"),
            "requestdate": _format(leads["local"], ADF_TIME),
            "vin": leads["vin"],
            "price": _text(leads["value"]),
            **{c: _xml_escaped(contact[c]) for c in contact.columns},
            "vendorname": _xml_escaped(pd.Series(g.rooftops["name"].to_numpy()[leads["rt"]])),
            "provider": _xml_escaped(leads["source"].astype("string")),
            "service": leads["event_type"].astype("string").map(ADF_LEADS),
            "visitor_id": _visitor_ids(g, cust),
            "_customer_id": leads["customer_id"],
            "_canonical_id": leads["event_id"],
        }
    )


def _text(values: pd.Series) -> pd.Series:
    """Numbers as text, whole numbers without a decimal point (missing stays missing)."""
    arr = pa.array(values.to_numpy(dtype=float), from_pandas=True)
    return pd.Series(pc.cast(arr, pa.string()).to_pandas(), dtype="string")


def _xml_escaped(text: pd.Series) -> pd.Series:
    """Text safe inside an XML element."""
    s = text.astype("string")
    for raw, entity in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;")):
        s = s.str.replace(raw, entity, regex=False)
    return s


def _adf_documents(leads: pd.DataFrame) -> pd.Series:
    """One ADF 1.0 document per lead, from its prepared fields (optional elements left out
    where the value is missing)."""

    def opt(value: pd.Series, before: str, after: str) -> pd.Series:
        return (before + value + after).fillna("")

    contact = (
        '    <contact primarycontact="1">\n'
        + opt(leads["first_name"], '     <name part="first">', "</name>\n")
        + opt(leads["last_name"], '     <name part="last">', "</name>\n")
        + opt(leads["email"], "     <email>", "</email>\n")
        + opt(leads["phone"], '     <phone type="voice">', "</phone>\n")
        + "    </contact>\n"
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<?adf version="1.0"?>\n<adf>\n'
        + ' <prospect status="new">\n'
        + '  <id sequence="1" source="dealer-crm">'
        + leads["lead_id"]
        + "</id>\n"
        + opt(leads["visitor_id"], '  <id sequence="2" source="web-visitor">', "</id>\n")
        + "  <requestdate>"
        + leads["requestdate"]
        + "</requestdate>\n"
        + '  <vehicle interest="buy">\n'
        + opt(leads["vin"], "   <vin>", "</vin>\n")
        + opt(leads["price"], '   <price type="quote" currency="USD">', "</price>\n")
        + "  </vehicle>\n"
        + "  <customer>\n"
        + contact
        + "  </customer>\n"
        + "  <vendor>\n   <vendorname>"
        + leads["vendorname"]
        + "</vendorname>\n  </vendor>\n"
        + "  <provider>\n"
        + opt(leads["provider"], '   <name part="full">', "</name>\n")
        + "   <service>"
        + leads["service"]
        + "</service>\n  </provider>\n </prospect>\n</adf>\n"
    )


def _adf_files(g: _Group, leads: pd.DataFrame) -> dict[str, str]:
    """Web-form leads one per file (``<lead id>.xml``); third-party leads in one file of many
    documents (``third_party_leads.xml``), a few sent twice, out of order."""
    docs = _adf_documents(leads)
    form = (leads["kind"] == "lead_form").to_numpy()
    files = dict(zip(leads["lead_id"][form] + ".xml", docs[form], strict=True))
    batch = _mess(docs[~form].to_frame("doc"), g.rng(5), g.settings)["doc"]
    files["third_party_leads.xml"] = "".join(batch.tolist())
    return files


# --- CRM activities and the scheduler ---------------------------------------------------------

#: What a CRM activity's result says, by event type ("Done" otherwise).
RESULTS = {
    "missed_call": "Missed",
    "sms_sent": "Sent",
    "sms_replied": "Received",
    "email_sent": "Sent",
    "email_opened": "Opened",
    "crm_task_created": "Open",
    "crm_task_completed": "Completed",
}


def _web_rows(ev: pd.DataFrame) -> np.ndarray:
    """Which events are web analytics hits (a credit application only when made online)."""
    credit = (ev["event_type"] == "credit_application").to_numpy()
    return ev["event_type"].isin(WEB_PAGES).to_numpy() & (
        ~credit | (ev["channel"] == "web").to_numpy()
    )


def _crm_activities(g: _Group) -> pd.DataFrame:
    """``crm_activities.csv``: one row per CRM activity, tied to the customer's latest lead
    (or, for a customer without one, to the DMS customer number)."""
    ev = g.events
    rows = ev[ev["event_type"].isin(CRM_ACTIVITIES).to_numpy() & ~_web_rows(ev)]
    rows = rows.reset_index(drop=True)
    rng = g.rng(6)
    etype = rows["event_type"].astype("string")
    kind = etype.map({k: v[0] for k, v in CRM_ACTIVITIES.items()})
    role = etype.map({k: v[1] for k, v in CRM_ACTIVITIES.items()})
    staff = pd.Series(rng.integers(1, g.settings.users_per_rooftop + 1, len(rows))).astype("string")
    result = etype.map(RESULTS).fillna("Done")
    called = (etype == "outbound_call").to_numpy()
    result = result.where(~called, pd.Series(np.where(rows["value"] > 0, "Connected", "No Answer")))
    no_lead = rows["lead_id"].isna().to_numpy()
    return pd.DataFrame(
        {
            "activity_id": _numbers(rng.permutation(len(rows)), 10_000_000, "A"),
            "lead_id": rows["lead_id"],
            "customer_number": _where(rows["number"], no_lead),
            "rooftop": g.rooftops["name"].to_numpy()[rows["rt"]],
            "activity_type": kind,
            "activity_time": _format(rows["local"], US_TIME),
            "user": g.rooftops["dms_store"].to_numpy()[rows["rt"]] + "-" + role + staff,
            "result": result,
            "subject": _attr(rows["attributes"], "task").fillna(
                _attr(rows["attributes"], "survey")
            ),
            "channel": rows["channel"].astype("string").map(CRM_CHANNELS),
            "value": rows["value"],
            "vin": rows["vin"],
            "source": rows["source"].astype("string"),
            "_customer_id": rows["customer_id"],
            "_canonical_id": rows["event_id"],
        }
    )


def _bookings(g: _Group) -> pd.DataFrame:
    """Every booking (set or rescheduled) with its appointment id, scheduled start, the id it
    was rescheduled from, and its department (a reschedule keeps its booking's)."""
    b = g.of(BOOKINGS).reset_index(drop=True)
    aid = _attr(b["attributes"], "appointment_id")
    before = _attr(b["attributes"], "rescheduled_from")
    etype = b["event_type"].astype("string")
    dept = pd.Series(
        np.select(
            [etype == "appointment_set", etype == "service_appointment_set"],
            ["sales", "service"],
            "",
        ),
        dtype="string",
    ).replace("", pd.NA)
    while dept.isna().any():  # a reschedule of a reschedule: one hop per pass
        known = pd.Series(dept.to_numpy(), index=aid.to_numpy()).dropna()
        filled = dept.fillna(before.map(known))
        if filled.isna().sum() == dept.isna().sum():
            filled = filled.fillna("sales")  # rescheduled from a booking outside the history
        dept = filled
    return b.assign(
        aid=aid,
        before=before,
        dept=dept,
        scheduled=pd.to_datetime(_attr(b["attributes"], "scheduled_ts"), utc=True),
    )


def _by_appointment(g: _Group, event_type: str) -> pd.DataFrame:
    """An appointment event's local time and channel, by appointment id."""
    rows = g.of([event_type])
    return pd.DataFrame(
        {
            "at": _format(rows["local"], ISO_TIME).to_numpy(),
            "entered": _format(rows["entered"], ISO_TIME).to_numpy(),
            "channel": rows["channel"].astype("string").map(CRM_CHANNELS).to_numpy(),
        },
        index=_attr(rows["attributes"], "appointment_id").to_numpy(),
    )


def _scheduler(g: _Group) -> pd.DataFrame:
    """``scheduler_appointments.csv``: every appointment once, with its outcome (shown,
    no-show, cancelled, rescheduled, or still scheduled) and its confirmation."""
    b = _bookings(g)
    rng = g.rng(7)
    raw = pd.Series(
        _numbers(rng.permutation(len(b)), 5_000_000).to_numpy(), index=b["aid"].to_numpy()
    )
    created = _format(b["local"], ISO_TIME)
    status = pd.Series(pd.NA, index=b.index, dtype="string")
    status_at = pd.Series(pd.NA, index=b.index, dtype="string")
    entered = pd.Series(pd.NA, index=b.index, dtype="string")
    for event_type, word in OUTCOMES.items():
        outcome = _by_appointment(g, event_type)
        at = b["aid"].map(outcome["at"])
        status, status_at = status.mask(at.notna(), word), status_at.fillna(at)
        entered = entered.fillna(b["aid"].map(outcome["entered"]).where(at.notna()))
    moved = pd.Series(created.to_numpy(), index=b["before"].to_numpy()).dropna()
    moved = moved[moved.index.notna()]
    at = b["aid"].map(moved[~moved.index.duplicated()])
    status, status_at = (
        status.mask(at.notna(), "rescheduled").fillna("scheduled"),
        status_at.fillna(at),
    )
    confirmed = _by_appointment(g, "appointment_confirmation_sent")
    sales = (b["dept"] == "sales").to_numpy() & b["lead_id"].notna().to_numpy()
    contact = _spelled(g, b["cust"].to_numpy(), rng)
    return pd.DataFrame(
        {
            "appointment_id": b["aid"].map(raw),
            "rooftop": g.rooftops["name"].to_numpy()[b["rt"]],
            "department": b["dept"],
            "lead_id": _where(b["lead_id"], sales),
            "customer_number": _where(b["number"], ~sales),
            "first_name": contact["first_name"],
            "last_name": contact["last_name"],
            "phone": contact["phone"],
            "vin": b["vin"],
            "source": b["source"].astype("string"),
            "booked_via": b["channel"].astype("string").map(CRM_CHANNELS),
            "created_at": created,
            "scheduled_start": _format(
                _local_times(
                    b["scheduled"], b["rt"].to_numpy(), g.rooftops["time_zone"].to_numpy()
                ),
                ISO_TIME,
            ),
            "status": status,
            "status_at": status_at,
            "status_entered_at": entered,
            "confirmation_sent": pd.Series(
                np.where(b["aid"].isin(confirmed.index), "Y", "N"), dtype="string"
            ),
            "confirmation_channel": b["aid"].map(confirmed["channel"]),
            "confirmation_sent_at": b["aid"].map(confirmed["at"]),
            "rescheduled_from": b["before"].map(raw),
            "_customer_id": b["customer_id"],
            "_canonical_id": b["aid"],
        }
    )


# --- DMS, web analytics and profiles ----------------------------------------------------------


def _dms_deals(g: _Group) -> pd.DataFrame:
    """``dms_deals.csv``: one deal per delivery, by DMS customer number and VIN."""
    d = g.of(["vehicle_delivery"]).reset_index(drop=True)
    condition = _attr(d["attributes"], "condition")
    return pd.DataFrame(
        {
            "deal_number": _numbers(g.rng(8).permutation(len(d)), 200_000),
            "store": g.rooftops["dms_store"].to_numpy()[d["rt"]],
            "customer_number": d["number"],
            "vin": d["vin"],
            "delivered_at": _format(d["local"], ISO_TIME),
            "sale_price": d["value"],
            "new_used": condition.map({"new": "N", "used": "U"}),
            "deal_source": d["source"].astype("string"),
            **{c: _profile(_attr(d["attributes"], a), a) for c, a in DEAL_PROFILE.items()},
            "_customer_id": d["customer_id"],
            "_canonical_id": d["event_id"],
        }
    )


def _profile(text: pd.Series, key: str) -> pd.Series:
    """A profile attribute's text as an export writes it: whole numbers (model year, mileage)
    as numbers, the rest as text."""
    return text.astype("Int64") if key in NUMERIC_PROFILE else text


def _dms_repair_orders(g: _Group) -> pd.DataFrame:
    """``dms_repair_orders.csv``: one row per repair order: opened, closed with its
    customer-pay amount, and its multi-point inspection sent and approved."""
    steps = {}
    for event_type in RO_STEPS:
        rows = g.of([event_type])
        steps[event_type] = rows.set_index(_attr(rows["attributes"], "ro_id").to_numpy())
    ids = pd.Index(sorted(set().union(*(s.index for s in steps.values()))))
    first = steps["repair_order_opened"].reindex(ids)
    for later in RO_STEPS[1:]:
        first = first.combine_first(steps[later].reindex(ids)[first.columns])
    at = {t: _format(s["local"], ISO_TIME).set_axis(s.index).reindex(ids) for t, s in steps.items()}
    closed = steps["repair_order_closed"]
    posted = _format(closed["entered"], ISO_TIME).set_axis(closed.index).reindex(ids)
    value = {t: s["value"].reindex(ids) for t, s in steps.items()}
    return pd.DataFrame(
        {
            "ro_number": _numbers(g.rng(9).permutation(len(ids)), 600_000).to_numpy(),
            "store": g.rooftops["dms_store"].to_numpy()[first["rt"].astype(int)],
            "customer_number": first["number"].to_numpy(),
            "vin": first["vin"].to_numpy(),
            "opened_at": at["repair_order_opened"].to_numpy(),
            "closed_at": at["repair_order_closed"].to_numpy(),
            "posted_at": posted.to_numpy(),
            "customer_pay": value["repair_order_closed"].to_numpy(),
            "mpi_sent_at": at["mpi_sent"].to_numpy(),
            "mpi_recommended": value["mpi_sent"].to_numpy(),
            "mpi_approved_at": at["mpi_approved"].to_numpy(),
            "mpi_approved_amount": value["mpi_approved"].to_numpy(),
            "_customer_id": first["customer_id"].to_numpy(),
            "_canonical_id": ids.to_numpy(),
        }
    ).astype(
        {
            c: "string"
            for c in (
                "customer_number",
                "vin",
                "opened_at",
                "closed_at",
                "posted_at",
                "mpi_sent_at",
                "mpi_approved_at",
            )
        }
    )


def _web_events(g: _Group) -> pd.DataFrame:
    """``web_events.csv``: one row per web analytics hit, by visitor id; a signed-in visit to
    the service scheduler also carries the DMS customer number."""
    hits = g.events[_web_rows(g.events)].reset_index(drop=True)
    page = hits["event_type"].astype("string").map(WEB_PAGES)
    return pd.DataFrame(
        {
            "visitor_id": g.people["visitor_id"].to_numpy()[hits["cust"]],
            "hit_time": _format(hits["local"], ADF_TIME),
            "site": g.rooftops["website"].to_numpy()[hits["rt"]],
            "page_type": page,
            "value": hits["value"],
            "vin": hits["vin"],
            "utm_source": hits["source"].astype("string"),
            "customer_number": _where(hits["number"], (page == "service_scheduler").to_numpy()),
            "_customer_id": hits["customer_id"],
            "_canonical_id": hits["event_id"],
        }
    )


def _customers(g: _Group) -> pd.DataFrame:
    """``customers.csv``: one profile per customer: DMS customer number, contact details and
    postal code, and the contact preferences recorded at the first contact (store, time,
    preferred channel, distance to the store)."""
    ev = g.events
    cust = np.unique(ev["cust"].to_numpy())
    prefs = (
        g.of(["contact_preferences_set"]).drop_duplicates("cust").set_index("cust").reindex(cust)
    )
    contact = _spelled(g, cust, g.rng(10))
    people = g.people.iloc[cust].reset_index(drop=True)
    rt = prefs["rt"].to_numpy()
    known = ~np.isnan(rt.astype(float))
    store = np.where(known, g.rooftops["name"].to_numpy()[np.where(known, rt, 0).astype(int)], None)
    return pd.DataFrame(
        {
            "customer_number": people["customer_number"],
            **contact,
            "postal_code": people["postal_code"],
            "store": pd.Series(store, dtype="string"),
            "created_at": _format(prefs["local"].to_numpy(), ISO_TIME),
            "preferred_contact": prefs["channel"].astype("string").map(CRM_CHANNELS).to_numpy(),
            "distance_km": prefs["value"].to_numpy(),
            "_customer_id": ev.drop_duplicates("cust")
            .set_index("cust")["customer_id"]
            .reindex(cust)
            .to_numpy(),
            "_canonical_id": pd.NA,
        }
    )


def _vehicles(g: _Group) -> pd.DataFrame:
    """``vehicles.csv``: one profile per vehicle: VIN, model line, model year, mileage and
    warranty end. A delivered vehicle's as its (first) delivery recorded it; a vehicle never
    delivered (inventory viewed, serviced) gets one drawn from the ``[vehicles]`` settings,
    its model year counted back from its first event."""
    a = g.vehicles
    rng = g.rng(11)
    ev = g.events.dropna(subset=["vehicle_id"])
    first = ev.sort_values("ts", kind="stable").drop_duplicates("vehicle_id")
    first = first.sort_values("vehicle_id", ignore_index=True)
    n = len(first)
    delivered = g.of(["vehicle_delivery"]).drop_duplicates("vehicle_id")
    recorded = pd.DataFrame(
        {k: _attr(delivered["attributes"], k).to_numpy() for k in VEHICLE_PROFILE},
        index=delivered["vehicle_id"].to_numpy(),
    ).reindex(first["vehicle_id"].to_numpy())
    used = rng.random(n) < a.inventory_used_share
    age = np.where(used, rng.integers(*a.used_age_years, n), 0)
    model_year = first["ts"].dt.year.to_numpy() - age
    miles = np.where(used, age * rng.uniform(*a.miles_per_year, n), rng.uniform(*a.new_miles, n))
    drawn = pd.DataFrame(
        {
            "model_line": np.asarray(a.model_lines)[rng.integers(0, len(a.model_lines), n)],
            "model_year": pd.Series(model_year).astype("string").to_numpy(),
            "mileage": pd.Series(np.round(miles).astype(np.int64)).astype("string").to_numpy(),
            "warranty_end": (
                pd.Series(model_year + a.warranty_years - 1).astype("string") + "-12-31"
            ).to_numpy(),
        },
        index=recorded.index,
    )
    profile = recorded.fillna(drawn)
    return pd.DataFrame(
        {
            "vin": first["vin"],
            **{k: _profile(profile[k].astype("string"), k).to_numpy() for k in VEHICLE_PROFILE},
            "_customer_id": pd.Series(pd.NA, index=first.index, dtype="string"),
            "_canonical_id": first["vehicle_id"],
        }
    )


#: The id column of each export that the identity truth maps to customers.
ID_COLUMNS = {
    "adf": "lead_id",
    "crm_leads": "lead_id",
    "crm_activities": "activity_id",
    "scheduler_appointments": "appointment_id",
    "dms_deals": "deal_number",
    "dms_repair_orders": "ro_number",
    "web_events": "visitor_id",
    "customers": "customer_number",
    "vehicles": "vin",
}


def _truth_identity(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """``truth_identity.parquet``: each export's raw ids with the simulator's ``customer_id``
    and the canonical id they stand for (a lead's event id, ``a-`` appointment and ``ro-``
    repair-order ids, a delivery's event id, a vehicle id; missing for visitors and customer
    numbers). Vehicles have no customer. One row per export and raw id."""
    parts = []
    for export, column in ID_COLUMNS.items():
        t = tables[export]
        canonical = t["_canonical_id"] if column != "visitor_id" else pd.NA
        part = pd.DataFrame(
            {
                "export": export,
                "id_column": column,
                "raw_id": t[column].astype("string"),
                "customer_id": t["_customer_id"].astype("string"),
                "canonical_id": pd.Series(canonical, index=t.index, dtype="string"),
            }
        )
        parts.append(part.drop_duplicates(["raw_id"]))
    return pd.concat(parts, ignore_index=True)
