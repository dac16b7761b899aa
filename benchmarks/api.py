"""Benchmark: the scoring API under load, served by uvicorn on 127.0.0.1, loaded by wrk.

Targets on this 2-core machine: single-customer score with drivers p50 < 15 ms at
concurrency 1; >= 300 scores/s at concurrency 32 with p99 < 150 ms. ``/healthz`` (no scoring:
the framework's own floor) is measured in the same run. Each load runs ``--rounds`` times,
interleaved, and the table gives the median of each figure over the rounds (this machine is
noisy), with the score's requests/s as a share of the floor's. Needs ``wrk`` (Debian package)
and the demo (``make demo --no-serve`` or ``cjm demo --no-serve``) for its events and champions.

    .venv/bin/python benchmarks/api.py [--seconds 10] [--rounds 3] [--customers 3000]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import pandas as pd
from serving_setup import no_show_customers, wait_ready, write_tenants

from cjm_ml.serving.store import SqliteEventStore

LUA = """
local bodies = {}
for line in io.lines("%(bodies)s") do bodies[#bodies + 1] = line end
local i = 0
request = function()
  i = i %% #bodies + 1
  return wrk.format("POST", "/v1/score/no_show",
    {["Content-Type"] = "application/json", ["X-API-Key"] = "%(key)s"}, bodies[i])
end
"""
GET_LUA = """
request = function()
  return wrk.format("GET", "%(path)s", {["X-API-Key"] = "%(key)s"})
end
"""


def _wrk(url: str, script: Path, connections: int, seconds: int) -> dict[str, float]:
    threads = min(2, connections)
    out = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    def ms(label: str) -> float:
        value, unit = re.search(rf"{label}%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: .*", out)
    return {
        "rps": rps,
        "p50": ms("50"),
        "p99": ms("99"),
        "non_2xx": float(non2xx.group(1)) if non2xx else 0.0,
        "socket_errors": 1.0 if errors else 0.0,
    }


def _workspace(args: argparse.Namespace) -> tuple[Path, str, int, pd.Timestamp, int]:
    """A temporary store with the demo's customers that have a no-show instance open a week
    before its last day, a tenants file with one key, and the wrk scripts. Returns the folder,
    the key, the number of customers and events, and the moment they are scored at."""
    events = pd.read_parquet(args.demo / "events.parquet")
    customers, as_of = no_show_customers(events, args.customers)
    mine = events[events["customer_id"].isin(customers)].reset_index(drop=True)
    work = Path(tempfile.mkdtemp(prefix="cjm-api-bench-"))
    key = write_tenants(events, work, "bench")
    with SqliteEventStore(work / "events.db") as store:
        store.append(mine)
    bodies = work / "bodies.txt"
    bodies.write_text(
        "\n".join(
            json.dumps({"customers": [{"customer_id": c}], "as_of": as_of.isoformat()})
            for c in customers
        )
    )
    (work / "score.lua").write_text(LUA % {"bodies": bodies, "key": key})
    (work / "health.lua").write_text(GET_LUA % {"path": "/healthz", "key": key})
    return work, key, len(customers), as_of, len(mine)


def _start_server(args: argparse.Namespace, work: Path) -> subprocess.Popen[bytes]:
    """``cjm serve`` on the workspace's store and tenants and the demo's champions."""
    env = {
        **os.environ,
        "CJM_TENANTS_FILE": str(work / "tenants.json"),
        "CJM_EVENT_STORE_PATH": str(work / "events.db"),
        "CJM_OUTBOX_PATH": str(work / "outbox.db"),
        "CJM_MODELS_DIR": str(args.models.resolve()),
        "CJM_LOG_LEVEL": "WARNING",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "cjm_ml.cli", "serve", "--port", str(args.port)], env=env
    )


def _wait_ready(base: str, work: Path, key: str) -> None:
    """Wait for ``/readyz``, then score one customer: a warm-up that also checks the answer."""
    wait_ready(base, timeout_s=60)
    check = httpx.post(
        f"{base}/v1/score/no_show",
        content=(work / "bodies.txt").read_text().splitlines()[0],
        headers={"X-API-Key": key, "content-type": "application/json"},
    )
    check.raise_for_status()
    assert check.json()["customers"][0]["instances"][0]["drivers_up"]


Load = tuple[str, str, int]
LOADS: list[Load] = [
    (name, script, connections)
    for name, script in (("score with drivers", "score.lua"), ("/healthz", "health.lua"))
    for connections in (1, 32)
]


def _measure(base: str, work: Path, rounds: int, seconds: int) -> dict[tuple[str, int], list]:
    """Every load, ``rounds`` times interleaved: wrk's figures per (endpoint, connections)."""
    runs: dict[tuple[str, int], list[dict[str, float]]] = {}
    for round_ in range(rounds):
        for name, script, connections in LOADS:
            r = _wrk(base + "/", work / script, connections, seconds)
            runs.setdefault((name, connections), []).append(r)
            print(
                f"round {round_ + 1}: {name} c={connections}: {r['rps']:.0f} req/s, "
                f"p50 {r['p50']:.1f} ms, p99 {r['p99']:.1f} ms",
                file=sys.stderr,
                flush=True,
            )
    return runs


def _report(runs: dict[tuple[str, int], list], rounds: int, seconds: int) -> None:
    """The medians per load, with the score's requests/s as a share of the floor's."""
    print(f"medians of {rounds} rounds of {seconds} s")
    print("| endpoint | connections | requests/s | of floor | p50 ms | p99 ms | non-2xx |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, _, connections in LOADS:
        rows = runs[(name, connections)]
        rps, p50, p99 = (statistics.median(r[k] for r in rows) for k in ("rps", "p50", "p99"))
        floor = statistics.median(r["rps"] for r in runs[("/healthz", connections)])
        errors = sum(r["non_2xx"] + r["socket_errors"] for r in rows)
        print(
            f"| {name} | {connections} | {rps:.0f} | {rps / floor:.0%} | {p50:.1f} | "
            f"{p99:.1f} | {errors:.0f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--customers", type=int, default=3000)
    parser.add_argument("--demo", type=Path, default=Path("data/demo"))
    parser.add_argument("--models", type=Path, default=Path("models"))
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is missing: apt-get install wrk")
    if not (args.demo / "events.parquet").exists() or not (args.models / "no_show").exists():
        sys.exit(f"no demo in {args.demo} and {args.models}: run `cjm demo --no-serve` first")
    work, key, customers, as_of, events = _workspace(args)
    server = _start_server(args, work)
    base = f"http://127.0.0.1:{args.port}"
    try:
        _wait_ready(base, work, key)
        print(f"{customers:,} customers, {events:,} events in the store; as of {as_of}")
        _report(_measure(base, work, args.rounds, args.seconds), args.rounds, args.seconds)
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
