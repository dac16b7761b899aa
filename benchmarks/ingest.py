"""Benchmark: ingesting the raw exports of the 60,000-customer demo group.

Target on the 2-core machine: every export (all sources, identity resolved) ingested into a
fresh data folder in under 30 s, with peak memory under 2 GB.

The demo group (6 rooftops, seed 7, 730 days) is simulated once and its raw exports cached
under ``/tmp/cjm-bench/raw-<customers>/``. Each load of all exports runs in a fresh process so
that peak memory (max RSS) belongs to that job alone; times are medians of ``--repeats`` runs.
``--profile`` also profiles the slowest export with cProfile (in place: after the exports
before it) and prints its top functions.

    .venv/bin/python benchmarks/ingest.py [--customers 60000] [--repeats 3] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from cache import CACHE, simulator_digest

SALT = "cjm-bench-ingest-salt-2024"
# mapping name -> export under the raw folder (ADF is a folder of XML files)
EXPORTS = {
    "customers": "customers.csv",
    "adf_leads": "adf",
    "crm_leads": "crm_leads.csv",
    "crm_activities": "crm_activities.csv",
    "scheduler_appointments": "scheduler_appointments.csv",
    "dms_deals": "dms_deals.csv",
    "dms_repair_orders": "dms_repair_orders.csv",
    "web_events": "web_events.csv",
}


def _raw_dir(customers: int) -> Path:
    """The cached raw exports, simulated and written on first use, with the simulator's
    canonical counts beside them in ``canonical.json`` (keyed by the simulator's digest)."""
    raw = CACHE / f"raw-{customers}-{simulator_digest()}"
    if not (raw / "canonical.json").exists():
        from cjm_ml.simulation import SimulationConfig, simulate
        from cjm_ml.simulation.exports import write_raw_exports

        print(f"simulating {customers:,} customers (cached at {raw}) ...", file=sys.stderr)
        config = SimulationConfig(rooftops=6, customers=customers, seed=7, days=730)
        group = simulate(config, progress=True)
        write_raw_exports(group, raw)
        canonical = {
            "events": len(group.events),
            "customers": int(group.events["customer_id"].nunique()),
        }
        (raw / "canonical.json").write_text(json.dumps(canonical))
    return raw


def _ingest_all(raw: Path, data_dir: Path) -> dict[str, object]:
    """Ingest every export into ``data_dir``; rows, events and seconds per export."""
    from cjm_ml.ingest.mapping import shipped_mapping
    from cjm_ml.ingest.pipeline import ingest

    per_export: dict[str, dict[str, float]] = {}
    started = time.perf_counter()
    for name, export in EXPORTS.items():
        began = time.perf_counter()
        report = ingest(shipped_mapping(name), [raw / export], data_dir=data_dir, salt=SALT)
        per_export[name] = {
            "rows": report.rows_read,
            "events": report.events_written,
            "seconds": time.perf_counter() - began,
        }
    total = time.perf_counter() - started
    written = pd.read_parquet(data_dir / "events", columns=["customer_id"])
    return {
        "exports": per_export,
        "total_s": total,
        "events": len(written),
        "customers": int(written["customer_id"].nunique()),
    }


def _profile(raw: Path, name: str, top: int = 5) -> str:
    """cProfile of one export's load, after the exports before it loaded unprofiled into a
    fresh folder (as in a full run): the ``top`` functions by own time, then the ``top``
    project functions by cumulative time."""
    from cjm_ml.ingest.mapping import shipped_mapping
    from cjm_ml.ingest.pipeline import ingest

    profiler = cProfile.Profile()
    with tempfile.TemporaryDirectory(prefix="cjm-bench-ingest-") as tmp:
        for earlier in list(EXPORTS)[: list(EXPORTS).index(name)]:
            ingest(
                shipped_mapping(earlier), [raw / EXPORTS[earlier]], data_dir=Path(tmp), salt=SALT
            )
        mapping = shipped_mapping(name)
        profiler.runcall(ingest, mapping, [raw / EXPORTS[name]], data_dir=Path(tmp), salt=SALT)
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats("cjm_ml", top)
    return out.getvalue()


def child(raw: Path, profile: str | None) -> None:
    """Run one measurement in this process and print it as JSON."""
    if profile:
        print(json.dumps({"profile": _profile(raw, profile)}))
        return
    with tempfile.TemporaryDirectory(prefix="cjm-bench-ingest-") as tmp:
        out = _ingest_all(raw, Path(tmp) / "data")
    out["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))


def _run_child(raw: Path, profile: str | None = None) -> dict[str, object]:
    cmd = [sys.executable, __file__, "--child", "--raw", str(raw)]
    if profile:
        cmd += ["--profile-export", profile]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    result: dict[str, object] = json.loads(done.stdout)
    return result


def _print_table(runs: list[dict[str, object]], canonical: dict[str, int]) -> str:
    """Print the markdown table of the median run; returns the slowest export's name."""
    exports: list[dict[str, dict[str, float]]] = [r["exports"] for r in runs]  # type: ignore[misc]
    print("| export | rows read | events written | seconds |")
    print("|---|---:|---:|---:|")
    medians = {n: statistics.median(e[n]["seconds"] for e in exports) for n in EXPORTS}
    for name in EXPORTS:
        first = exports[0][name]
        print(f"| {name} | {first['rows']:,.0f} | {first['events']:,.0f} | {medians[name]:.1f} |")
    total = statistics.median(float(r["total_s"]) for r in runs)  # type: ignore[arg-type]
    rss = max(float(r["max_rss_mb"]) for r in runs)  # type: ignore[arg-type]
    print()
    print("| measure | figure | target |")
    print("|---|---:|---:|")
    print(f"| all exports (median of {len(runs)}) | {total:.1f} s | < 30 s |")
    print(f"| peak memory (max of {len(runs)} processes) | {rss:,.0f} MiB | < 2 GB |")
    resolved, events = runs[0]["customers"], runs[0]["events"]
    print(f"| customers resolved / simulator's | {resolved:,} / {canonical['customers']:,} | |")
    print(f"| events written / canonical | {events:,} / {canonical['events']:,} | |")
    return max(medians, key=lambda n: medians[n])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=60_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="profile the slowest export")
    parser.add_argument("--child", action="store_true")
    parser.add_argument("--raw", type=Path)
    parser.add_argument("--profile-export", choices=list(EXPORTS))
    args = parser.parse_args()
    if args.child:
        child(args.raw, args.profile_export)
        return
    raw = _raw_dir(args.customers)
    canonical = json.loads((raw / "canonical.json").read_text())
    runs = [_run_child(raw) for _ in range(args.repeats)]
    slowest = _print_table(runs, canonical)
    if args.profile:
        print(f"\ncProfile of {slowest} (top 5 by own time):\n")
        print(_run_child(raw, slowest)["profile"])


if __name__ == "__main__":
    main()
