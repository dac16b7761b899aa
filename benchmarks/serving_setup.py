"""What the serving benchmarks (``api.py``, ``reload_soak.py``, ``heavy_load.py``) share: the
customers to score, a tenants file with one group-wide key, and waiting for ``cjm serve``.

Imported by those scripts as a sibling module (``python benchmarks/<script>.py`` puts this
folder first on the import path).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import httpx
import pandas as pd

from cjm_ml.features.instances import open_instances
from cjm_ml.serving.tenants import generate_api_key

#: The benchmarks score as of this long before the events' last day (bookings still open).
SCORE_BEFORE_END = pd.Timedelta(days=7)


def no_show_customers(events: pd.DataFrame, limit: int) -> tuple[pd.Series, pd.Timestamp]:
    """Up to ``limit`` customers with an open no-show instance a week before the last day,
    and that moment."""
    as_of = events["ts"].max().floor("D") - SCORE_BEFORE_END
    open_now = open_instances(events, "no_show", as_of)
    return open_now["customer_id"].drop_duplicates().head(limit), as_of


def write_tenants(events: pd.DataFrame, folder: Path, key_id: str) -> str:
    """``<folder>/tenants.json`` for the events' dealer group with one group-wide key; the key."""
    key, entry = generate_api_key(key_id)
    group = {
        "dealer_group_id": str(events["dealer_group_id"].iloc[0]),
        "rooftops": sorted(events["rooftop_id"].astype(str).unique()),
        "api_keys": [entry.model_dump(exclude_none=True)],
    }
    (folder / "tenants.json").write_text(json.dumps({"dealer_groups": [group]}))
    return key


def wait_ready(base: str, timeout_s: float = 120) -> None:
    """Wait until ``/readyz`` answers 200, or exit saying the server did not get ready."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    sys.exit("the server did not become ready")
