"""Load test: model reloads under load, across the processes of ``cjm serve``.

Starts ``cjm serve --workers 2`` on 127.0.0.1 (a temporary store, tenants file and a copy of
the models), keeps ``--connections`` keep-alive connections scoring customers by id for
``--seconds``, and in the middle: a reload of a damaged bundle (``model.txt`` truncated:
refused, 409), then two valid reloads (new versions of the no-show model). Each connection
knows which server process answers it (the socket's owner, from /proc). Prints: requests,
failures (any answer but 200, or a broken connection), the versions each process answered
with after the last reload, and each process's RSS before (after a warm-up) and after.

Models and events: the demo's (``models/``, ``data/demo/events.parquet``) if present, else
ones trained here on a small simulated group.

    .venv/bin/python benchmarks/reload_soak.py [--seconds 30] [--connections 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h11
import httpx
import pandas as pd
from serving_setup import no_show_customers, write_tenants

from cjm_ml.artifact import BundleError, ModelArtifact
from cjm_ml.params import TASKS
from cjm_ml.serving.store import SqliteEventStore
from cjm_ml.serving.tenants import hash_api_key
from cjm_ml.training.model import RiskModel

ADMIN = "cjm.ops.reload-soak-admin"
#: When, as a share of the run, each step happens.
WARM_UP, DAMAGED, FIRST, SECOND = 0.2, 0.35, 0.5, 0.7


@dataclass
class Tally:
    """What the connections saw: per server pid, the versions answered and when."""

    requests: int = 0
    failures: list[str] = field(default_factory=list)
    #: pid -> (time sent, model version) of each answer
    answers: dict[int, list[tuple[float, str]]] = field(default_factory=lambda: defaultdict(list))
    #: pid -> connections open to it
    connected: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    opening: asyncio.Lock = field(default_factory=asyncio.Lock)


# ---------------------------------------------------------------------------------- workspace
def _models_and_events(args: argparse.Namespace, work: Path) -> tuple[Path, pd.DataFrame]:
    """A copy of the models to serve (reloads change it) and the events to store."""
    models = work / "models"
    if _servable(args.models) and args.events.exists():
        for task in TASKS:
            shutil.copytree(args.models / task, models / task)
        return models, pd.read_parquet(args.events)
    print("no usable models or events: training on a small simulated group", file=sys.stderr)
    from cjm_ml.features.pipeline import build_feature_table
    from cjm_ml.features.timeline import Timeline
    from cjm_ml.simulation import SimulationConfig, simulate
    from cjm_ml.training.split import time_split

    group = simulate(SimulationConfig(rooftops=3, customers=4_000, seed=5))
    timeline = Timeline(group.events)
    for task in TASKS:
        split = time_split(build_feature_table(timeline, task))
        RiskModel(task).fit(split.train, split.valid).save(models / task, {"version": "1"})
    return models, group.events


def _servable(models: Path) -> bool:
    """Whether ``models`` holds a bundle per task that this version of the code loads."""
    try:
        for task in TASKS:
            ModelArtifact.load(models / task)
    except BundleError as exc:
        print(f"not serving {models}: {exc}", file=sys.stderr)
        return False
    return True


def _workspace(args: argparse.Namespace, work: Path) -> tuple[dict[str, str], list[bytes], str]:
    """The server's environment, the score requests' bodies, and the API key."""
    models, events = _models_and_events(args, work)
    customers, as_of = no_show_customers(events, args.customers)
    mine = events[events["customer_id"].isin(customers)].reset_index(drop=True)
    key = write_tenants(events, work, "soak")
    with SqliteEventStore(work / "events.db") as store:
        store.append(mine)
    env = {
        **os.environ,
        "CJM_DATA_DIR": str(work / "data"),
        "CJM_TENANTS_FILE": str(work / "tenants.json"),
        "CJM_EVENT_STORE_PATH": str(work / "events.db"),
        "CJM_MODELS_DIR": str(models),
        "CJM_ADMIN_KEY_HASH": hash_api_key(ADMIN),
        "CJM_LOG_LEVEL": "WARNING",
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    bodies = [
        json.dumps({"customers": [{"customer_id": c}], "as_of": as_of.isoformat()}).encode()
        for c in customers
    ]
    return env, bodies, key


# ---------------------------------------------------------------------------------- server
def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_ready(base: str, server: subprocess.Popen[bytes]) -> list[int]:
    """Wait until every process is ready; the server's pids (the first one's first)."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"cjm serve exited with {server.returncode}")
        try:
            children = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200 and children:
                pids = [server.pid, *map(int, children)]
                if all(_listening(pid) for pid in pids):
                    return pids
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(0.3)
    sys.exit("cjm serve did not become ready")


def _socket_inodes(pid: int) -> set[str]:
    """The inodes of the sockets process ``pid`` holds open."""
    out = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            out.add(target[8:-1])
    return out


def _listening(pid: int) -> bool:
    """Whether process ``pid`` has a listening TCP socket (its server is up)."""
    inodes = _socket_inodes(pid)
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        parts = line.split()
        if parts[3] == "0A" and parts[9] in inodes:
            return True
    return False


def _owner(client_port: int, server_port: int, pids: list[int]) -> int:
    """Which server process holds the server end of the connection from ``client_port``."""
    wanted = f"{server_port:04X}", f"{client_port:04X}"
    inode = None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        parts = line.split()
        if (parts[1].split(":")[1], parts[2].split(":")[1]) == wanted:
            inode = parts[9]
    for pid in pids:
        if inode is not None and inode in _socket_inodes(pid):
            return pid
    return 0  # not accepted yet: asked again on the next answer


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# ---------------------------------------------------------------------------------- load
async def _connection(
    port: int, pids: list[int], bodies: list[bytes], key: str, stop: float, tally: Tally, n: int
) -> None:
    """One keep-alive connection scoring customers by id until ``stop``."""
    reader, writer, owner = await _open_balanced(port, pids, tally)
    conn, i = h11.Connection(h11.CLIENT), n
    headers = [("host", "soak"), ("x-api-key", key), ("content-type", "application/json")]
    while time.monotonic() < stop:
        body = bodies[i % len(bodies)]
        i += 1
        sent = time.monotonic()
        tally.requests += 1
        try:
            request = h11.Request(
                method="POST",
                target="/v1/score/no_show",
                headers=[*headers, ("content-length", str(len(body)))],
            )
            writer.write(conn.send(request) + conn.send(h11.Data(data=body)))
            writer.write(conn.send(h11.EndOfMessage()))
            status, payload = await _response(conn, reader)
        except (OSError, h11.ProtocolError, asyncio.IncompleteReadError) as exc:
            tally.failures.append(f"connection {n}: {exc!r}")
            writer.close()
            tally.connected[owner] -= 1
            reader, writer, owner = await _open_balanced(port, pids, tally)
            conn = h11.Connection(h11.CLIENT)
            continue
        if status != 200:
            tally.failures.append(f"connection {n}: {status} {payload[:200]!r}")
            continue
        tally.answers[owner].append((sent, json.loads(payload)["model_version"]))
        conn.start_next_cycle()
    writer.close()


async def _open_balanced(
    port: int, pids: list[int], tally: Tally
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, int]:
    """A connection to the process with the fewest connections so far (the kernel picks the
    process by a hash of the addresses: reconnect until it is that one, 50 tries at most)."""
    async with tally.opening:
        for _ in range(50):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            conn = h11.Connection(h11.CLIENT)
            writer.write(
                conn.send(h11.Request(method="GET", target="/healthz", headers=[("host", "soak")]))
            )
            writer.write(conn.send(h11.EndOfMessage()))
            await _response(conn, reader)
            owner = _owner(writer.get_extra_info("sockname")[1], port, pids)
            if tally.connected[owner] <= min(tally.connected[p] for p in pids):
                break
            writer.close()
        tally.connected[owner] += 1
        return reader, writer, owner


async def _response(conn: h11.Connection, reader: asyncio.StreamReader) -> tuple[int, bytes]:
    status, chunks = 0, []
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            data = await reader.read(65536)
            if not data:
                raise asyncio.IncompleteReadError(b"", None)
            conn.receive_data(data)
        elif isinstance(event, h11.Response):
            status = event.status_code
        elif isinstance(event, h11.Data):
            chunks.append(bytes(event.data))
        elif isinstance(event, h11.EndOfMessage):
            return status, b"".join(chunks)


# ---------------------------------------------------------------------------------- reloads
def _reload(base: str) -> int:
    response = httpx.post(
        f"{base}/v1/admin/reload-models", headers={"X-API-Key": ADMIN}, timeout=60
    )
    print(f"reload: {response.status_code} {response.text[:160]}", file=sys.stderr)
    return response.status_code


def _with_version(models: Path, pristine: Path, version: str) -> None:
    model = RiskModel.load(pristine)
    model.save(models / "no_show", {**model.metadata_, "version": version})


async def _steps(base: str, models: Path, pids: list[int], seconds: float) -> dict[str, Any]:
    """The reloads in the middle of the run, and RSS after the warm-up."""
    start = time.monotonic()
    pristine = models.parent / "no_show.pristine"
    shutil.copytree(models / "no_show", pristine)

    async def at(share: float) -> None:
        await asyncio.sleep(max(0.0, start + share * seconds - time.monotonic()))

    await at(WARM_UP)
    before = {pid: _rss_mib(pid) for pid in pids}
    await at(DAMAGED)
    text = (models / "no_show" / "model.txt").read_bytes()
    (models / "no_show" / "model.txt").write_bytes(text[: len(text) // 2])
    damaged = await asyncio.to_thread(_reload, base)
    await at(FIRST)
    await asyncio.to_thread(_with_version, models, pristine, "soak-1")
    first = await asyncio.to_thread(_reload, base)
    await at(SECOND)
    await asyncio.to_thread(_with_version, models, pristine, "soak-2")
    second = await asyncio.to_thread(_reload, base)
    return {
        "rss_before": before,
        "reloads": {"damaged": damaged, "valid": [first, second]},
        "last_reload_at": time.monotonic(),
    }


async def _run(args: argparse.Namespace, base: str, port: int, pids: list[int], **kw: Any) -> Any:
    tally = Tally()  # (in the loop: its lock belongs to it)
    stop = time.monotonic() + args.seconds
    loads = [
        _connection(port, pids, kw["bodies"], kw["key"], stop, tally, n)
        for n in range(args.connections)
    ]
    steps, *_ = await asyncio.gather(_steps(base, kw["models"], pids, args.seconds), *loads)
    return tally, steps


def _result(tally: Tally, steps: dict[str, Any], pids: list[int]) -> dict[str, Any]:
    after = steps["last_reload_at"]
    return {
        "requests": tally.requests,
        "failures": len(tally.failures),
        "failure_examples": tally.failures[:5],
        "reloads": steps["reloads"],
        "final_version": "soak-2",
        "processes": [
            {
                "pid": pid,
                "answers": len(tally.answers.get(pid, [])),
                "versions_after": sorted({v for t, v in tally.answers.get(pid, []) if t > after}),
                "rss_before_mib": round(steps["rss_before"][pid], 1),
                "rss_after_mib": round(_rss_mib(pid), 1),
            }
            for pid in pids
        ],
    }


def _print(result: dict[str, Any], args: argparse.Namespace) -> None:
    print(
        f"{args.connections} connections, {args.seconds} s: {result['requests']:,} requests, "
        f"{result['failures']} failed; reloads: damaged -> {result['reloads']['damaged']}, "
        f"valid -> {result['reloads']['valid']}"
    )
    print("| process | answers | versions after the last reload | RSS before MiB | after MiB |")
    print("|---|---:|---|---:|---:|")
    for p in result["processes"]:
        print(
            f"| {p['pid']} | {p['answers']:,} | {', '.join(p['versions_after']) or '-'} | "
            f"{p['rss_before_mib']:.1f} | {p['rss_after_mib']:.1f} |"
        )
    for example in result["failure_examples"]:
        print(f"failure: {example}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--customers", type=int, default=300)
    parser.add_argument("--events", type=Path, default=Path("data/demo/events.parquet"))
    parser.add_argument("--models", type=Path, default=Path("models"))
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cjm-reload-soak-"))
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    server = None
    try:
        env, bodies, key = _workspace(args, work)
        command = [sys.executable, "-m", "cjm_ml.cli", "serve", "--host", "127.0.0.1"]
        server = subprocess.Popen([*command, "--port", str(port), "--workers", "2"], env=env)
        pids = _wait_ready(base, server)
        tally, steps = asyncio.run(
            _run(args, base, port, pids, bodies=bodies, key=key, models=work / "models")
        )
        result = _result(tally, steps, pids)
        _print(result, args)
        if args.json:
            args.json.write_text(json.dumps(result, indent=2))
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
