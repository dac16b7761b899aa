"""The scoring API's connections: the time limits and the cap uvicorn does not set by itself.

uvicorn closes an idle keep-alive connection only once it has answered on it: a connection
opened and left silent, or one sending its request headers a byte at a time, stays open for
ever (the issue's probe left 4,000 idle and 1,000 half-sent connections open for 90 s).
``GuardedH11Protocol`` closes a connection whose request headers are not complete
``header_timeout_s`` after it opened (or after the first byte of its next request), and
answers 503 and closes a connection over ``max_connections`` open in this process.
``server_options(settings)`` is what ``cjm serve`` gives uvicorn; under a process manager of
your own, ``uvicorn --http cjm_ml.serving.connections:GuardedH11Protocol`` uses the defaults.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, ClassVar

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from cjm_ml.config import Settings

log = logging.getLogger(__name__)

_BUSY_BODY = b'{"detail":"too many open connections; try again"}'
#: What a connection over the cap gets before it is closed (no request is read from it).
BUSY_RESPONSE = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
    b"connection: close\r\nretry-after: 1\r\ncontent-length: %d\r\n\r\n%s"
    % (len(_BUSY_BODY), _BUSY_BODY)
)


class GuardedH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with a request-header deadline and a per-process cap on
    open connections (class attributes; ``server_options`` makes a subclass with the
    settings' values)."""

    header_timeout_s: ClassVar[float] = Settings.model_fields["header_timeout_s"].default
    max_connections: ClassVar[int] = Settings.model_fields["max_connections"].default
    #: Refused connections since the last warning, and when that was (one warning a second).
    _refused_since_warning: ClassVar[int] = 0
    _last_warning: ClassVar[float] = 0.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_deadline: asyncio.TimerHandle | None = None
        self._refused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Serves the connection, with the header deadline running; or, over the cap, answers
        503 and closes it."""
        assert isinstance(transport, asyncio.Transport)
        if len(self.connections) >= self.max_connections:
            self._refused = True
            transport.write(BUSY_RESPONSE)
            transport.close()
            self._warn_refused()
            return
        super().connection_made(transport)
        self._start_header_deadline()

    def data_received(self, data: bytes) -> None:
        """Feeds uvicorn; the first byte of a request starts the header deadline, and the
        complete request headers stop it."""
        if self._refused:
            return
        if self._header_deadline is None and self.conn.their_state is h11.IDLE:
            self._start_header_deadline()
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._stop_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        """Forgets the connection (a refused one was never counted)."""
        self._stop_header_deadline()
        if not self._refused:
            super().connection_lost(exc)

    def _start_header_deadline(self) -> None:
        self._stop_header_deadline()
        self._header_deadline = self.loop.call_later(self.header_timeout_s, self._headers_late)

    def _stop_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_late(self) -> None:
        """Closes the connection if its request headers are still incomplete."""
        self._header_deadline = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            log.debug("closed a connection: request headers not complete in time")
            self._unset_keepalive_if_required()
            self.transport.close()

    @classmethod
    def _warn_refused(cls) -> None:
        """One warning a second at most, with the count of connections refused since."""
        cls._refused_since_warning += 1
        now = time.monotonic()
        if now - cls._last_warning >= 1.0:
            log.warning(
                "refused %d connection(s): %d open is the cap (CJM_MAX_CONNECTIONS)",
                cls._refused_since_warning,
                cls.max_connections,
            )
            cls._refused_since_warning = 0
            cls._last_warning = now


def server_options(settings: Settings) -> dict[str, Any]:
    """The uvicorn options that bound connections: the protocol with the settings' header
    deadline and connection cap, and the keep-alive timeout (``CJM_HEADER_TIMEOUT_S``,
    ``CJM_MAX_CONNECTIONS``, ``CJM_KEEP_ALIVE_S``)."""
    protocol = type(
        "GuardedH11Protocol",
        (GuardedH11Protocol,),
        {
            "header_timeout_s": settings.header_timeout_s,
            "max_connections": settings.max_connections,
        },
    )
    return {"http": protocol, "timeout_keep_alive": settings.keep_alive_s}
