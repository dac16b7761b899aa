"""A real CRM webhook receiver on 127.0.0.1 that fails, times out, drops and recovers on command.

It checks every request's HMAC signature itself (not with cjm-ml's code), applies each
idempotency key once (a repeat is answered 200 and counted as a duplicate), and records what
arrived, so tests can prove every update arrived exactly once and in order per customer.

Modes, set for every request (``set_mode``) or for the next few (``script``):

- ``ok``: apply the update, answer 200.
- ``fail``: answer 500 without applying it.
- ``reject``: answer 422 (the CRM refuses the update) without applying it.
- ``slow``: apply the update, then wait ``slow_s`` before answering 200 (past a client timeout,
  so the sender sees a timeout for an update the CRM has in fact applied).
- ``drop``: read the request and close the connection without an answer or applying it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODES = ("ok", "fail", "reject", "slow", "drop")


@dataclass(frozen=True)
class Received:
    """One request as it arrived: its key, the mode it met and whether its signature held."""

    key: str | None
    mode: str
    signature_ok: bool
    body: dict[str, Any] | None


class Receiver:
    """The CRM stand-in; use as a context manager (``with Receiver(secret) as crm:``)."""

    def __init__(self, secret: str, slow_s: float = 1.0, tolerance_s: float = 300.0) -> None:
        self.secret = secret
        self.slow_s = slow_s
        self.tolerance_s = tolerance_s
        self.requests: list[Received] = []
        #: bodies applied, first arrival per key, in the order they were applied
        self.applied: list[dict[str, Any]] = []
        self.duplicates: Counter[str] = Counter()
        self._keys: set[str] = set()
        self._mode = "ok"
        self._script: deque[str] = deque()
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        """Where to post updates."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/hooks/cjm"

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closing.set()  # release slow handlers
        self._server.shutdown()
        self._server.server_close()

    def set_mode(self, mode: str) -> None:
        """Answer every following request in ``mode`` (after any scripted ones)."""
        assert mode in MODES, mode
        with self._lock:
            self._mode = mode

    def script(self, *modes: str) -> None:
        """Answer the next requests in these modes, one each, then fall back to ``set_mode``."""
        assert all(m in MODES for m in modes), modes
        with self._lock:
            self._script.extend(modes)

    def applied_keys(self) -> list[str]:
        """Idempotency keys applied, in order."""
        with self._lock:
            return [b["idempotency_key"] for b in self.applied]

    def sequences_by_customer(self) -> dict[tuple[str, str], list[int]]:
        """(customer, task) -> the sequences applied, in arrival order."""
        out: dict[tuple[str, str], list[int]] = {}
        with self._lock:
            for b in self.applied:
                out.setdefault((b["customer_id"], b["task"]), []).append(b["sequence"])
        return out

    def customer_order(self) -> dict[str, list[str]]:
        """customer -> idempotency keys applied, in arrival order (across tasks)."""
        out: dict[str, list[str]] = {}
        with self._lock:
            for b in self.applied:
                out.setdefault(b["customer_id"], []).append(b["idempotency_key"])
        return out

    def wait_for(self, condition: Callable[[Receiver], bool], timeout_s: float = 10.0) -> bool:
        """Poll until ``condition(self)`` holds or the time is up; returns whether it held."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if condition(self):
                return True
            time.sleep(0.01)
        return condition(self)

    # ------------------------------------------------------------------------------------------

    def _next_mode(self) -> str:
        with self._lock:
            return self._script.popleft() if self._script else self._mode

    def _signature_ok(self, headers: Any, body: bytes) -> bool:
        ts, given = headers.get("X-CJM-Timestamp"), headers.get("X-CJM-Signature")
        if ts is None or given is None or not ts.isdigit():
            return False
        if abs(time.time() - int(ts)) > self.tolerance_s:
            return False
        mac = hmac.new(self.secret.encode(), ts.encode() + b"." + body, hashlib.sha256)
        return hmac.compare_digest("sha256=" + mac.hexdigest(), given)

    def _apply(self, key: str, body: dict[str, Any]) -> None:
        with self._lock:
            if key in self._keys:
                self.duplicates[key] += 1
            else:
                self._keys.add(key)
                self.applied.append(body)

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        raw = handler.rfile.read(int(handler.headers.get("Content-Length", "0")))
        key = handler.headers.get("X-CJM-Idempotency-Key")
        signature_ok = self._signature_ok(handler.headers, raw)
        mode = self._next_mode()
        try:
            body = json.loads(raw)
        except json.JSONDecodeError:
            body = None
        with self._lock:
            self.requests.append(Received(key, mode, signature_ok, body))
        if not signature_ok or body is None or key != body.get("idempotency_key"):
            _answer(handler, 401, {"error": "bad signature or body"})
            return
        if mode == "drop":
            handler.close_connection = True
            return
        if mode in ("fail", "reject"):
            _answer(handler, 500 if mode == "fail" else 422, {"error": mode})
            return
        self._apply(str(key), body)
        if mode == "slow":
            self._closing.wait(self.slow_s)
        _answer(handler, 200, {"status": "ok"})

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                receiver._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


def _answer(handler: BaseHTTPRequestHandler, status: int, payload: dict[str, Any]) -> None:
    data = json.dumps(payload).encode()
    try:
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the sender gave up (timeout) or died: what a real CRM would see too
