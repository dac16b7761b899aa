"""The scoring API's processes: several uvicorn workers sharing one port.

``serve`` runs the API in this process and starts ``workers - 1`` more
(``python -m cjm_ml.serving.server``, one worker each). Every worker binds its own
``SO_REUSEPORT`` socket, so the kernel spreads connections over them (uvicorn's own
``--workers`` left all keep-alive connections on one process here), with ``TCP_NODELAY`` set
(accepted sockets inherit it; without it small responses waited ~40 ms for delayed ACKs). The
other workers are stopped when this one shuts down, on SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Sequence

from cjm_ml.config import Settings

log = logging.getLogger(__name__)

#: Connections the kernel queues per worker before the API accepts them.
BACKLOG = 2048


def serve(settings: Settings, *, host: str, port: int, workers: int = 2) -> None:
    """Serve the API on ``host:port`` from ``workers`` processes until stopped; returns when
    they have all stopped. Refuses, before binding, a tenants file that does not load
    (``TenantConfigError``, ``FileNotFoundError``)."""
    import uvicorn

    from cjm_ml.serving.api.main import create_app
    from cjm_ml.serving.connections import server_options
    from cjm_ml.serving.tenants import load_tenants

    load_tenants(settings.tenants_file)
    sock = _listening_socket(host, port)
    children = _start_workers(settings, host, port, workers - 1)

    def stop_workers() -> None:
        _stop(children)

    # Stopped from the app's shutdown too: after a SIGTERM, uvicorn re-raises the signal once
    # it has shut down, and the process dies before a ``finally`` here would run.
    app = create_app(settings, on_shutdown=stop_workers)
    try:
        uvicorn.run(
            app,
            fd=sock.fileno(),
            log_config=None,
            access_log=False,
            **server_options(settings),
        )
    finally:
        stop_workers()


def settings_env(settings: Settings) -> dict[str, str]:
    """``settings`` as the CJM_* variables that recreate it in another process."""
    values = settings.model_dump(exclude_none=True)
    return {f"CJM_{k.upper()}": str(v) for k, v in values.items()}


def _listening_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` that other processes may bind too."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(BACKLOG)
    return sock


def _start_workers(
    settings: Settings, host: str, port: int, count: int
) -> list[subprocess.Popen[bytes]]:
    """``count`` worker processes on ``host:port``, given this process's settings through the
    environment."""
    env = {**os.environ, **settings_env(settings)}
    command = [sys.executable, "-m", "cjm_ml.serving.server", "--host", host, "--port", str(port)]
    if count:
        log.info("starting %d more worker(s) on %s:%d", count, host, port)
    return [subprocess.Popen(command, env=env) for _ in range(count)]


def _stop(children: Sequence[subprocess.Popen[bytes]]) -> None:
    """Terminate the workers still running and wait for each."""
    for child in children:
        if child.poll() is None:
            child.terminate()
    for child in children:
        child.wait(timeout=30)


def main(argv: Sequence[str] | None = None) -> None:
    """One worker process (``python -m cjm_ml.serving.server --host H --port P``), started by
    ``serve``: settings from the environment, logging configured here. Exits 1 on a tenants
    file that does not load."""
    from cjm_ml.logs import configure_logging
    from cjm_ml.serving.tenants import TenantConfigError

    parser = argparse.ArgumentParser(description="One worker of the cjm scoring API.")
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    settings = Settings()
    configure_logging(settings.log_level)
    try:
        serve(settings, host=args.host, port=args.port, workers=1)
    except (TenantConfigError, FileNotFoundError) as exc:
        raise SystemExit(f"error: {exc}") from exc


if __name__ == "__main__":
    main()
