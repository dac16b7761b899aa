"""Limits and bad input (issue 13, items 9-13 and 15): non-finite numbers, lenient types, the
inline-event limit, the key checked before a body is read, streamed bodies over the limit,
idle and half-sent connections, the connection cap, and one access-log line per answer.

A light app of its own (two dealer groups' keys, no models: validation and refusals come
before scoring); the connection tests go through real HTTP to uvicorn on 127.0.0.1, started
in a thread with the options ``cjm serve`` gives it (``server_options``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import select
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi.testclient import TestClient

from cjm_ml.config import Settings
from cjm_ml.serving.api.main import create_app
from cjm_ml.serving.connections import server_options
from cjm_ml.serving.schemas import MAX_BODY_BYTES, MAX_EVENTS
from cjm_ml.serving.tenants import generate_api_key

MIB = 1024 * 1024


def event_text(extra: str = "", ts: str = '"2026-01-05T10:00Z"', customer: str = '"c-1"') -> str:
    """One event as JSON text: ``ts`` and ``customer`` (its id) as written, ``extra`` fields
    after."""
    return (
        f'{{"event_id": "e-1", "rooftop_id": "rt-04", "customer_id": {customer},'
        f' "ts": {ts}, "event_type": "lead_form"{extra}}}'
    )


def events_text(event: str) -> str:
    """A POST /v1/events body as JSON text, with one event (JSON text)."""
    return '{"events": [' + event + "]}"


def event(**changes: Any) -> dict[str, Any]:
    """One valid event as a dict, with ``changes``."""
    return {**json.loads(event_text()), **changes}


@dataclass
class Light:
    client: TestClient
    settings: Settings
    keys: dict[str, str]

    def post(self, url: str, text: str, key: str | None = "manager") -> Any:
        headers = {"content-type": "application/json"}
        if key is not None:
            headers["X-API-Key"] = self.keys[key]
        return self.client.post(url, content=text.encode(), headers=headers)


def light_settings(root: Path) -> tuple[Settings, dict[str, str]]:
    """Settings for an app with dg-01 (keys ``manager`` and rt-04's ``bdc``) and dg-02
    (``other``), and no models."""
    keys, entries = {}, []
    for name, rooftops in (("manager", None), ("bdc", ["rt-04"])):
        keys[name], entry = generate_api_key(f"dg01-{name}", rooftops)
        entries.append(entry.model_dump(exclude_none=True))
    keys["other"], other = generate_api_key("dg02-crm")
    groups = [
        {"dealer_group_id": "dg-01", "rooftops": ["rt-01", "rt-04"], "api_keys": entries},
        {
            "dealer_group_id": "dg-02",
            "rooftops": ["rt-90"],
            "api_keys": [other.model_dump(exclude_none=True)],
        },
    ]
    (root / "tenants.json").write_text(json.dumps({"dealer_groups": groups}))
    settings = Settings(
        data_dir=root / "data", models_dir=root / "models", tenants_file=root / "tenants.json"
    )
    return settings, keys


@pytest.fixture(scope="module")
def light(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Light]:
    settings, keys = light_settings(tmp_path_factory.mktemp("limits"))
    app = create_app(settings, start_deliverer=False)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Light(client, settings, keys)


def strict_json(text: str) -> Any:
    """``text`` parsed as RFC 8259 JSON (NaN and Infinity are not JSON)."""

    def refuse(token: str) -> Any:
        raise ValueError(f"not JSON: {token}")

    return json.loads(text, parse_constant=refuse)


# ------------------------------------------------------------------ item 9: NaN and Infinity
PLACES = [
    ("/v1/events", events_text(event_text(', "value": @')), ["events", 0, "value"]),
    ("/v1/events", events_text(event_text(ts="@")), ["events", 0, "ts"]),
    ("/v1/events", events_text(event_text(customer="@")), ["events", 0, "customer_id"]),
    ("/v1/events", events_text(event_text(', "attributes": {"km": [1, @]}')),
     ["events", 0, "attributes"]),
    ("/v1/score/no_show", '{"customers": [{"customer_id": "c-1"}], "as_of": @}', ["as_of"]),
    ("/v1/score/no_show", '{"customers": [{"customer_id": "c-1"}], "push": @}', ["push"]),
    ("/v1/score/no_show", '{"customers": [{"customer_id": @}]}', ["customers", 0, "customer_id"]),
    ("/v1/score/no_show",
     '{"customers": [{"customer_id": "c-1", "events": [' + event_text(', "value": @') + "]}]}",
     ["customers", 0, "events", 0, "value"]),
]  # fmt: skip


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity", "1e400"])
@pytest.mark.parametrize(("url", "template", "loc"), PLACES)
def test_non_finite_numbers_are_a_422_naming_the_field(
    light: Light, token: str, url: str, template: str, loc: list[Any]
) -> None:
    response = light.post(url, template.replace("@", token))
    assert response.status_code == 422, response.text
    [problem] = strict_json(response.text)["detail"]
    assert problem["loc"] == ["body", *loc]
    assert set(problem) == {"loc", "msg", "type"}  # the input is not echoed
    assert problem["msg"]


# ------------------------------------------------------------------ item 12: strict types
@pytest.mark.parametrize(
    ("url", "change", "loc", "fragment"),
    [
        ("/v1/events", {"ts": 1700000000}, ["events", 0, "ts"], "ISO 8601"),
        ("/v1/events", {"ts": 1700000000.5}, ["events", 0, "ts"], "ISO 8601"),
        ("/v1/events", {"ts": "1700000000"}, ["events", 0, "ts"], "ISO 8601"),
        ("/v1/events", {"ts": True}, ["events", 0, "ts"], "ISO 8601"),
        ("/v1/events", {"value": "3.5"}, ["events", 0, "value"], "number"),
        ("/v1/events", {"value": True}, ["events", 0, "value"], "number"),
        ("/v1/score/no_show", {"push": "yes"}, ["push"], "boolean"),
        ("/v1/score/no_show", {"push": "true"}, ["push"], "boolean"),
        ("/v1/score/no_show", {"push": 1}, ["push"], "boolean"),
        ("/v1/score/no_show", {"as_of": 1700000000}, ["as_of"], "ISO 8601"),
        ("/v1/score/no_show", {"as_of": "1700000000"}, ["as_of"], "ISO 8601"),
    ],
)
def test_lenient_types_are_refused(
    light: Light, url: str, change: dict[str, Any], loc: list[Any], fragment: str
) -> None:
    if url == "/v1/events":
        body: dict[str, Any] = {"events": [event(event_id="lenient", **change)]}
    else:
        body = {"customers": [{"customer_id": "c-1"}], **change}
    response = light.post(url, json.dumps(body))
    assert response.status_code == 422, response.text
    [problem] = response.json()["detail"]
    assert problem["loc"] == ["body", *loc] and fragment in problem["msg"]


def test_strict_types_still_take_what_the_readme_allows(light: Light) -> None:
    """An integer is a number; times with any zone written as ISO 8601 are times."""
    events = [
        event(event_id="strict-1", value=3),
        event(event_id="strict-2", ts="2026-01-05T12:00:00+01:00"),
        event(event_id="strict-3", ts="2026-01-05 13:00Z"),
    ]
    response = light.post("/v1/events", json.dumps({"events": events}))
    assert response.json() == {"inserted": 3, "duplicates": 0}


# ------------------------------------------------------------------ item 11: inline events
def _inline(customers: int, each: int) -> str:
    return json.dumps(
        {
            "customers": [
                {
                    "customer_id": f"c-{c}",
                    "events": [
                        event(customer_id=f"c-{c}", event_id=f"e-{c}-{i}") for i in range(each)
                    ],
                }
                for c in range(customers)
            ]
        }
    )


@pytest.mark.parametrize(("customers", "each"), [(2, MAX_EVENTS // 2 + 1), (8, MAX_EVENTS)])
def test_inline_events_are_limited_over_all_customers(
    light: Light, customers: int, each: int
) -> None:
    response = light.post("/v1/score/no_show", _inline(customers, each))
    assert response.status_code == 422, response.text[:300]
    [problem] = response.json()["detail"]
    assert problem["loc"] == ["body", "customers"]
    assert f"at most {MAX_EVENTS} inline events in all (got {customers * each})" in problem["msg"]


def test_inline_events_up_to_the_limit_pass_validation(light: Light) -> None:
    response = light.post("/v1/score/no_show", _inline(2, MAX_EVENTS // 2))
    assert response.status_code == 503  # checked and accepted; this app has no models
    assert "models not loaded" in response.json()["detail"]


# ------------------------------------------------------------------ item 10: key before body
@pytest.mark.parametrize(
    ("key", "message"),
    [(None, "missing API key (X-API-Key header)"), ("cjm.dg01-manager.wrong", "invalid API key")],
)
def test_the_key_is_checked_before_the_body_is_read(
    light: Light, key: str | None, message: str
) -> None:
    """Without a valid key, a body that is not even JSON gets the 401 (not its 422), and the
    connection is closed rather than the rest of the body read."""
    headers = {"content-type": "application/json"} | ({} if key is None else {"X-API-Key": key})
    for url in ("/v1/events", "/v1/score/no_show"):
        response = light.client.post(url, content=b'{"events": [', headers=headers)
        assert response.status_code == 401 and response.json() == {"detail": message}
        assert response.headers["www-authenticate"] == "ApiKey"
        assert response.headers["connection"] == "close"


# ------------------------------------------------------------------ item 15: the access log
def test_every_answer_gets_one_access_log_line(
    light: Light, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager = light.keys["manager"]
    logged = event(event_id="logged-1")
    store = light.client.app.state.service.store  # type: ignore[attr-defined]

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("disk on fire")

    caplog.set_level(logging.INFO, logger="cjm_ml.serving.api.middleware")
    asked = {
        413: light.client.post(
            "/v1/events", content=b" " * (MAX_BODY_BYTES + 1), headers={"X-API-Key": manager}
        ),
        401: light.client.post("/v1/events", json={"events": [logged]}),
        422: light.post("/v1/events", events_text(event_text(', "value": NaN'))),
        503: light.client.get(f"/v1/models?api_key={manager}"),
    }
    monkeypatch.setattr(store, "append", broken)
    asked[500] = light.client.post(
        "/v1/events", json={"events": [logged]}, headers={"X-API-Key": manager}
    )
    assert {status: r.status_code for status, r in asked.items()} == {s: s for s in asked}
    lines = [r.getMessage() for r in caplog.records if r.name == "cjm_ml.serving.api.middleware"]
    assert len(lines) == len(asked), lines
    expected = {
        413: ("POST /v1/events 413", "key=-"),
        401: ("POST /v1/events 401", "key=-"),
        422: ("POST /v1/events 422", "key=dg01-manager"),
        503: ("GET /v1/models 503", "key=dg01-manager"),
        500: ("POST /v1/events 500", "key=dg01-manager"),
    }
    for line, (start, key_id) in zip(lines, expected.values(), strict=True):
        assert re.fullmatch(rf"{start} \d+\.\d ms {key_id}", line), line
    secret = manager.split(".")[-1]
    assert secret not in caplog.text and "api_key" not in caplog.text


# ------------------------------------------------------------------ real HTTP: uvicorn
@dataclass
class Served:
    host: str
    port: int
    key: str
    settings: Settings


#: The connection limits the real-HTTP tests run under (short, so they are quick to test).
HEADER_TIMEOUT_S, KEEP_ALIVE_S, MAX_CONNECTIONS = 2.0, 1, 200


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The API under uvicorn with ``server_options`` (as ``cjm serve`` runs it), in a thread,
    on a free 127.0.0.1 port."""
    settings, keys = light_settings(tmp_path_factory.mktemp("served"))
    settings = settings.model_copy(
        update={
            "header_timeout_s": HEADER_TIMEOUT_S,
            "keep_alive_s": KEEP_ALIVE_S,
            "max_connections": MAX_CONNECTIONS,
        }
    )
    app = create_app(settings, start_deliverer=False)
    config = uvicorn.Config(app, log_config=None, access_log=False, **server_options(settings))
    server = uvicorn.Server(config)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])))
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started and time.monotonic() < deadline and thread.is_alive():
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    try:
        yield Served("127.0.0.1", sock.getsockname()[1], keys["manager"], settings)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def _connect(served: Served) -> socket.socket:
    """A client socket with a small send buffer, so bytes sent are close to bytes read."""
    conn = socket.socket()
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 256 * 1024)
    conn.settimeout(10)
    conn.connect((served.host, served.port))
    return conn


def _stream(served: Served, key: str | None, most: int) -> tuple[int, bytes]:
    """POSTs a chunked body of up to ``most`` bytes to /v1/events, 1 MiB a chunk, until the
    server answers or stops reading: the bytes the kernel accepted, and the answer's head."""
    conn = _connect(served)
    head = "POST /v1/events HTTP/1.1\r\nHost: t\r\ncontent-type: application/json\r\n"
    head += "" if key is None else f"X-API-Key: {key}\r\n"
    conn.sendall((head + "Transfer-Encoding: chunked\r\n\r\n").encode())
    chunk = b"%x\r\n%s\r\n" % (MIB, b"[" + b" " * (MIB - 1))
    conn.settimeout(5)
    sent = 0
    with conn:
        while sent < most:
            if select.select([conn], [], [], 0)[0]:
                break  # the answer came
            try:
                conn.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError, TimeoutError):
                break
            sent += MIB
        else:
            conn.sendall(b"0\r\n\r\n")
        try:
            answer = conn.recv(4096)
        except ConnectionResetError:
            answer = b""
    return sent, answer


def test_a_streamed_body_over_the_limit_is_refused_as_it_arrives(served: Served) -> None:
    sent, answer = _stream(served, served.key, most=64 * MIB)
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert b"connection: close" in answer.lower()
    # the server stopped reading at the limit: what it took is the limit plus socket buffers
    assert sent <= MAX_BODY_BYTES + 8 * MIB, sent


def test_no_key_is_a_401_before_any_of_a_streamed_body_is_read(served: Served) -> None:
    sent, answer = _stream(served, None, most=64 * MIB)
    assert answer.startswith(b"HTTP/1.1 401 "), answer[:200]
    assert sent <= 8 * MIB, sent  # socket buffers only: the body was never read


def _closed_by_server(conns: list[socket.socket], within_s: float) -> int:
    """How many of ``conns`` the server closed within ``within_s`` seconds (EOF or reset;
    answers read on the way are skipped)."""
    deadline = time.monotonic() + within_s
    open_ = set(conns)
    while open_ and time.monotonic() < deadline:
        readable, _, _ = select.select(list(open_), [], [], 0.2)
        for conn in readable:
            try:
                if conn.recv(65536) == b"":
                    open_.discard(conn)
            except (ConnectionResetError, TimeoutError):
                open_.discard(conn)
    return len(conns) - len(open_)


def test_idle_and_half_sent_connections_are_closed(served: Served) -> None:
    idle = [_connect(served) for _ in range(60)]
    half = [_connect(served) for _ in range(60)]
    for conn in half:
        conn.sendall(b"POST /v1/events HTTP/1.1\r\nHost: t\r\nX-Pad: ")
    kept = [_connect(served) for _ in range(20)]
    for conn in kept:  # answered once, then left open (keep-alive)
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
    # a slow sender that completes its headers in time is served
    slow = _connect(served)
    slow.sendall(b"GET /healthz HTTP/1.1\r\n")
    time.sleep(HEADER_TIMEOUT_S / 2)
    slow.sendall(b"Host: t\r\n\r\n")
    assert slow.recv(4096).startswith(b"HTTP/1.1 200 ")
    try:
        everyone = idle + half + kept
        closed = _closed_by_server(everyone, within_s=HEADER_TIMEOUT_S + KEEP_ALIVE_S + 3)
        assert closed == len(everyone)
    finally:
        for conn in [*idle, *half, *kept, slow]:
            conn.close()


def test_connections_over_the_cap_get_a_503_and_are_closed(served: Served) -> None:
    time.sleep(HEADER_TIMEOUT_S + 0.5)  # earlier tests' connections are gone
    held = [_connect(served) for _ in range(MAX_CONNECTIONS)]
    try:
        extra = _connect(served)
        with extra:
            answer = extra.recv(4096)
            assert answer.startswith(b"HTTP/1.1 503 ") and b"too many open connections" in answer
            assert _closed_by_server([extra], within_s=2) == 1
    finally:
        for conn in held:
            conn.close()
    time.sleep(0.3)
    with _connect(served) as conn:
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        assert conn.recv(4096).startswith(b"HTTP/1.1 200 ")
