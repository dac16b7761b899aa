"""Benchmark: heavy requests (journey pages, whole-group call lists) beside scoring.

``cjm serve`` (two processes) on 127.0.0.1 with the demo's events and champions (or, without a
demo, a small simulated group and models fitted on it). An async client scores customers by id
on ``--connections`` connections and probes ``/healthz`` every 100 ms for the whole run: first
``--baseline`` seconds alone, then while ``--journeys`` group journey pages (and ``--queues``
whole-group call lists) are requested at once, then while the same pages are asked for again
(a second wave, which a cache can answer). Reports each heavy request's latency and status,
score p50/p99 and /healthz p50/max per phase, and the server's peak RSS (all its processes
together). Bounded: every request has a timeout and each phase ends when its heavy requests do.

    .venv/bin/python benchmarks/heavy_load.py [--journeys 4] [--connections 8] [--baseline 10]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pandas as pd
import psutil
from serving_setup import no_show_customers, wait_ready, write_tenants

from cjm_ml.params import TASKS
from cjm_ml.serving.store import SqliteEventStore

CACHE = Path("/tmp/cjm-bench")
#: Longest wait for one request (a heavy one took 52 s before the fix).
TIMEOUT_S = 180.0


@dataclass
class Phase:
    """What one phase measured."""

    name: str
    score_ms: list[float] = field(default_factory=list)
    health_ms: list[float] = field(default_factory=list)
    heavy: list[tuple[str, int, float]] = field(default_factory=list)
    seconds: float = 0.0


# ------------------------------------------------------------------------------ workspace
def _events_and_models(args: argparse.Namespace, work: Path) -> tuple[pd.DataFrame, Path]:
    """The demo's events and champions, or a small simulated group and models fitted on it."""
    if (args.demo / "events.parquet").exists() and (args.models / "no_show").exists():
        return pd.read_parquet(args.demo / "events.parquet"), args.models.resolve()
    from cjm_ml.features.pipeline import build_feature_table
    from cjm_ml.features.timeline import Timeline
    from cjm_ml.simulation import SimulationConfig, simulate
    from cjm_ml.training.model import RiskModel
    from cjm_ml.training.split import time_split

    print("no demo: simulating a small group and fitting models", file=sys.stderr)
    group = simulate(SimulationConfig(rooftops=6, customers=12_000, seed=11))
    timeline = Timeline(group.events)
    for task in TASKS:
        split = time_split(build_feature_table(timeline, task))
        model = RiskModel(task).fit(split.train, split.valid)
        model.save(work / "models" / task, {"model_name": f"bench-{task}", "version": "1"})
    return group.events, work / "models"


def _store(events: pd.DataFrame, work: Path) -> None:
    """The events in a store at ``work/events.db`` (built once per event count, then copied)."""
    cached = CACHE / f"heavy-store-{len(events)}-{events['ts'].max().value}.db"
    if not cached.exists():
        print(f"loading {len(events):,} events into {cached} ...", file=sys.stderr)
        CACHE.mkdir(parents=True, exist_ok=True)
        partial = cached.with_suffix(".partial")
        partial.unlink(missing_ok=True)
        with SqliteEventStore(partial) as store:
            store.append(events)
        for suffix in ("-wal", "-shm"):
            Path(f"{partial}{suffix}").unlink(missing_ok=True)
        partial.rename(cached)
    shutil.copyfile(cached, work / "events.db")


def _workspace(args: argparse.Namespace) -> tuple[Path, Path, str, list[str], pd.Timestamp]:
    """A temporary folder with the store, a tenants file with one group-wide key, and the
    customers to score (an open no-show instance at ``as_of``, a week before the last day).
    Returns the folder, the models folder, the key, the customers and ``as_of``."""
    work = Path(tempfile.mkdtemp(prefix="cjm-heavy-bench-"))
    events, models = _events_and_models(args, work)
    customers, as_of = no_show_customers(events, args.customers)
    key = write_tenants(events, work, "bench")
    _store(events, work)
    print(f"{len(events):,} events, {len(customers):,} customers to score", file=sys.stderr)
    return work, models, key, customers.astype(str).tolist(), as_of


def _start_server(args: argparse.Namespace, work: Path, models: Path) -> subprocess.Popen[bytes]:
    """``cjm serve`` on the workspace's store and tenants."""
    env = {
        **os.environ,
        "CJM_TENANTS_FILE": str(work / "tenants.json"),
        "CJM_EVENT_STORE_PATH": str(work / "events.db"),
        "CJM_OUTBOX_PATH": str(work / "outbox.db"),
        "CJM_MODELS_DIR": str(models),
        "CJM_LOG_LEVEL": "WARNING",
    }
    command = [sys.executable, "-m", "cjm_ml.cli", "serve", "--port", str(args.port)]
    return subprocess.Popen([*command, "--workers", str(args.workers)], env=env)


class PeakRss:
    """Samples the RSS of a process and its children (summed) every 0.2 s in a thread."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(0.2):
            total = 0
            for p in [self.process, *self.process.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):  # a process that just ended
                    total += p.memory_info().rss
            self.peak = max(self.peak, total)


# ------------------------------------------------------------------------------ load
async def _score_loop(
    client: httpx.AsyncClient, key: str, bodies: list[str], offset: int, stop: asyncio.Event
) -> tuple[list[tuple[float, float]], int]:
    """Score one customer after another until ``stop``: (finished at, ms) and the failures."""
    times, errors, i = [], 0, offset
    headers = {"X-API-Key": key, "content-type": "application/json"}
    while not stop.is_set():
        i = (i + 1) % len(bodies)
        started = time.perf_counter()
        try:
            r = await client.post("/v1/score/no_show", content=bodies[i], headers=headers)
            ok = r.status_code == 200
        except httpx.HTTPError:
            ok = False
        done = time.perf_counter()
        if ok:
            times.append((done, 1000 * (done - started)))
        else:
            errors += 1
    return times, errors


async def _health_loop(client: httpx.AsyncClient, stop: asyncio.Event) -> list[tuple[float, float]]:
    times = []
    while not stop.is_set():
        started = time.perf_counter()
        r = await client.get("/healthz")
        done = time.perf_counter()
        if r.status_code == 200:
            times.append((done, 1000 * (done - started)))
        await asyncio.sleep(0.1)
    return times


async def _heavy(client: httpx.AsyncClient, key: str, path: str) -> tuple[str, int, float]:
    started = time.perf_counter()
    try:
        r = await client.get(path, headers={"X-API-Key": key}, timeout=TIMEOUT_S)
        status = r.status_code
    except httpx.HTTPError:
        status = 0
    return path, status, time.perf_counter() - started


async def _run(
    args: argparse.Namespace, base: str, key: str, bodies: list[str]
) -> tuple[list[Phase], int]:
    """The three phases on one set of connections: each phase's share of the figures, and
    the score requests that failed."""
    limits = httpx.Limits(max_connections=args.connections + args.journeys + args.queues + 2)
    heavy_paths = ["/journey"] * args.journeys + ["/v1/queues/no_show?limit=5000"] * args.queues
    phases: list[tuple[str, float, float, list[tuple[str, int, float]]]] = []
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=TIMEOUT_S) as client:
        stop = asyncio.Event()
        scorers = [
            asyncio.create_task(_score_loop(client, key, bodies, i * 97, stop))
            for i in range(args.connections)
        ]
        health = asyncio.create_task(_health_loop(client, stop))
        for name in ("baseline", "heavy (cold)", "heavy (again)"):
            started = time.perf_counter()
            if name == "baseline":
                await asyncio.sleep(args.baseline)
                results: list[tuple[str, int, float]] = []
            else:
                results = list(await asyncio.gather(*(_heavy(client, key, p) for p in heavy_paths)))
            phases.append((name, started, time.perf_counter(), results))
        stop.set()
        scored = await asyncio.gather(*scorers)
        probes = await health
    return [_phase(p, scored, probes) for p in phases], sum(e for _, e in scored)


def _phase(
    spec: tuple[str, float, float, list[tuple[str, int, float]]],
    scored: list[tuple[list[tuple[float, float]], int]],
    probes: list[tuple[float, float]],
) -> Phase:
    name, start, end, heavy = spec
    phase = Phase(name, heavy=heavy, seconds=end - start)
    phase.score_ms = [ms for times, _ in scored for at, ms in times if start <= at < end]
    phase.health_ms = [ms for at, ms in probes if start <= at < end]
    return phase


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _report(phases: list[Phase], peak_rss: int, errors: int) -> None:
    print(
        "| phase | seconds | heavy requests: status and seconds | scores/s | score p50 ms | "
        "score p99 ms | /healthz p50 ms | /healthz max ms |"
    )
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    for p in phases:
        heavy = ", ".join(
            f"{'J' if path == '/journey' else 'Q'} {s} {t:.1f}" for path, s, t in p.heavy
        )
        print(
            f"| {p.name} | {p.seconds:.1f} | {heavy or '-'} | "
            f"{len(p.score_ms) / max(p.seconds, 1e-9):.0f} | "
            f"{statistics.median(p.score_ms) if p.score_ms else float('nan'):.1f} | "
            f"{_percentile(p.score_ms, 0.99):.1f} | "
            f"{statistics.median(p.health_ms) if p.health_ms else float('nan'):.1f} | "
            f"{max(p.health_ms, default=float('nan')):.1f} |"
        )
    print(
        f"peak RSS of the server's processes: {peak_rss / 2**30:.2f} GiB; "
        f"failed score requests: {errors}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--journeys", type=int, default=4, help="concurrent journey pages")
    parser.add_argument("--queues", type=int, default=0, help="concurrent whole-group call lists")
    parser.add_argument("--connections", type=int, default=8, help="concurrent scoring clients")
    parser.add_argument("--baseline", type=float, default=10.0, help="seconds of scoring alone")
    parser.add_argument("--customers", type=int, default=3000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--demo", type=Path, default=Path("data/demo"))
    parser.add_argument("--models", type=Path, default=Path("models"))
    parser.add_argument("--port", type=int, default=8766)
    args = parser.parse_args()
    work, models, key, customers, as_of = _workspace(args)
    bodies = [
        json.dumps({"customers": [{"customer_id": c}], "as_of": as_of.isoformat()})
        for c in customers
    ]
    server = _start_server(args, work, models)
    base = f"http://127.0.0.1:{args.port}"
    try:
        wait_ready(base, timeout_s=120)
        with PeakRss(server.pid) as rss:
            phases, errors = asyncio.run(_run(args, base, key, bodies))
        _report(phases, rss.peak, errors)
    finally:
        server.terminate()
        server.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
