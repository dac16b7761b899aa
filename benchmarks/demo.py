"""Benchmark: ``cjm demo`` from its start to a served API, and the time to each of its stages.

Target on the 2-core machine: the demo (simulate the 60,000-customer group as raw exports,
ingest them, validate, features, round trip, train, explain, map, store) answers ``/healthz``
in under 6 minutes.

Each run starts ``cjm demo`` (this tree's package: ``python -m cjm_ml.cli``) in a fresh data
and models folder on a free port, stamps each line it prints that opens a stage, polls
``/healthz`` until it answers, then stops the server. Times are medians of ``--repeats`` runs;
``benchmarks/compare.py --before TREE demo`` runs it on two versions, interleaved.

    .venv/bin/python benchmarks/demo.py [--customers 60000] [--repeats 1]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

#: The first line of each stage the demo prints (older versions lack some), in order.
STAGES = {
    "simulated": "events: ",
    "ingested": "\nIngest",
    "validated": ": valid, ",
    "features": "service_defection: ",
    "trained": "Friction drivers",
    "explained": "Pictures and roll-ups",
    "map": "journey map",
    "store loaded": "event store ",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def run_once(customers: int, limit_s: float) -> dict[str, float]:
    """One demo run: seconds from the start to each stage and to ``served``."""
    with tempfile.TemporaryDirectory(prefix="cjm-bench-demo-") as tmp:
        port = _free_port()
        env = {
            **os.environ,
            "CJM_DATA_DIR": str(Path(tmp) / "data"),
            "CJM_MODELS_DIR": str(Path(tmp) / "models"),
            "CJM_PORT": str(port),
            "PYTHONPATH": str(Path.cwd()),
        }
        env.pop("CJM_PII_SALT", None)
        started = time.perf_counter()
        args = ["-m", "cjm_ml.cli", "demo", "--customers", str(customers)]
        proc = subprocess.Popen(
            [sys.executable, *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        seen: dict[str, float] = {}
        previous = ""

        def watch() -> None:
            nonlocal previous
            assert proc.stdout is not None
            for line in proc.stdout:
                text = previous + "\n" + line
                for stage, marker in STAGES.items():
                    if stage not in seen and marker in text:
                        seen[stage] = time.perf_counter() - started
                previous = line

        threading.Thread(target=watch, daemon=True).start()
        try:
            while not _healthy(port):
                if proc.poll() is not None:
                    raise RuntimeError(f"cjm demo exited with {proc.returncode} before serving")
                if time.perf_counter() - started > limit_s:
                    raise RuntimeError(f"not served within {limit_s:.0f} s")
                time.sleep(0.5)
            seen["served"] = time.perf_counter() - started
        finally:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        return seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=60_000)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--limit", type=float, default=900.0, help="give up after (s)")
    args = parser.parse_args()
    runs = [run_once(args.customers, args.limit) for _ in range(args.repeats)]
    print(f"cjm demo, {args.customers:,} customers, median of {len(runs)} run(s):")
    for stage in [*STAGES, "served"]:
        times = [r[stage] for r in runs if stage in r]
        if times:
            print(f"  {stage:<13} at {statistics.median(times):6.1f} s")
    served = statistics.median(r["served"] for r in runs)
    print(f"served after {served:.1f} s (target < 360 s: {'met' if served < 360 else 'NOT met'})")


if __name__ == "__main__":
    main()
