"""Outcome rates of a simulated group per rooftop: what the demo prints and the tests check."""

from __future__ import annotations

import pandas as pd

from cjm_ml.params import Task


def outcome_rates(truth: dict[Task, pd.DataFrame]) -> pd.DataFrame:
    """Observed outcome rates per rooftop and for the group, from the truth tables' labels.

    Columns: lead leakage rate, sales-appointment show rate, service-appointment no-show rate
    and first-service defection rate; rows: each rooftop, then ``group``. Instances whose
    outcome is not yet known (null label) are left out.
    """
    ns = truth["no_show"]
    sales = ns[ns["appointment_kind"] == "sales"]
    service = ns[ns["appointment_kind"] == "service"]
    columns = {
        "leads": truth["lead_leakage"].assign(x=1.0),
        "lead_leakage_rate": truth["lead_leakage"].assign(x=lambda d: d["label"].astype(float)),
        "sales_show_rate": sales.assign(x=(sales["outcome"] == "showed").astype(float))[
            sales["label"].notna()
        ],
        "service_no_show_rate": service.assign(x=lambda d: d["label"].astype(float)),
        "defection_rate": truth["service_defection"].assign(x=lambda d: d["label"].astype(float)),
    }
    out = {}
    for name, df in columns.items():
        df = df[df["label"].notna()]
        agg = "sum" if name == "leads" else "mean"
        per_rooftop = df.groupby("rooftop_id")["x"].agg(agg)
        per_rooftop["group"] = df["x"].agg(agg)
        out[name] = per_rooftop
    table = pd.DataFrame(out)
    table["leads"] = table["leads"].astype(int)
    return table.round(3)
