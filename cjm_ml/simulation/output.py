"""Writing a simulated group to disk: events, truth per task, and the rooftops' processes."""

from __future__ import annotations

import logging
from pathlib import Path

from cjm_ml.io import write_json_atomic, write_parquet_atomic
from cjm_ml.simulation.generator import SimulatedGroup

log = logging.getLogger(__name__)

#: Figures assumed for the simulated group (documented in the README).
ASSUMED_BASE_RATES = {
    "sales_show_rate": "50-70% of sales appointments show (industry range)",
    "lead_leakage": "30-50% of leads get no appointment or visit within 30 days",
    "service_defection": "30-50% of buyers do not return for a first service within 210 days",
}


def write_simulation(group: SimulatedGroup, out_dir: Path) -> dict[str, Path]:
    """Write ``events.parquet``, ``truth_<task>.parquet`` and ``rooftops.json`` into ``out_dir``.

    Each file is written to a temporary name and renamed, so a reader never sees half a file.
    Returns the paths written, by name.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {"events": out_dir / "events.parquet"}
    write_parquet_atomic(group.events, paths["events"])
    for task, truth in group.truth.items():
        paths[f"truth_{task}"] = out_dir / f"truth_{task}.parquet"
        write_parquet_atomic(truth, paths[f"truth_{task}"])
    paths["rooftops"] = out_dir / "rooftops.json"
    write_json_atomic(
        {
            "dealer_group_id": group.config.dealer_group_id,
            "config": group.config.model_dump(mode="json"),
            "rooftops": [r.model_dump(mode="json") for r in group.rooftops],
            "planted_deviations": [p.model_dump(mode="json") for p in group.planted],
            "assumed_base_rates": ASSUMED_BASE_RATES,
        },
        paths["rooftops"],
    )
    log.info(
        "wrote %d events and truth for %d tasks to %s", len(group.events), len(group.truth), out_dir
    )
    return paths
