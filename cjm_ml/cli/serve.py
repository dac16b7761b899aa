"""``cjm serve``, ``cjm push`` and ``cjm keys``: the scoring API, CRM write-back, API keys."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer

from cjm_ml.cli.common import TASK_HELP, load_or_exit, tasks_or_fail
from cjm_ml.config import Settings


def serve(
    host: Annotated[str | None, typer.Option(help="Interface; default CJM_HOST.")] = None,
    port: Annotated[int | None, typer.Option(help="Port; default CJM_PORT.")] = None,
    load_events: Annotated[
        Path | None, typer.Option(help="Append this events file to the store first.")
    ] = None,
    workers: Annotated[
        int, typer.Option(min=1, max=16, help="Server processes (one per core is best).")
    ] = 2,
) -> None:
    """Start the scoring API (uvicorn) with the configured tenants, store and champions."""
    settings = Settings()
    if load_events is not None:
        load_store(settings, load_events)
    serve_or_exit(settings, host or settings.host, port or settings.port, workers)


def load_store(settings: Settings, path: Path) -> None:
    """Append the events file at ``path`` to the configured event store and print how many
    were new; exits 1 on a file that does not load."""
    from cjm_ml.serving.store import SqliteEventStore

    events = load_or_exit(path)
    started = time.perf_counter()
    with SqliteEventStore(settings.event_store_file) as store:
        result = store.append(events, file=str(path))
    typer.echo(
        f"event store {settings.event_store_file}: {result.inserted:,} new, "
        f"{result.duplicates:,} already stored ({time.perf_counter() - started:.1f} s)"
    )


def serve_or_exit(settings: Settings, host: str, port: int, workers: int = 2) -> None:
    """Serve the API until stopped (``cjm_ml.serving.server.serve``); exits 1 on a tenants
    file that does not load."""
    from cjm_ml.serving.server import serve as serve_processes
    from cjm_ml.serving.tenants import TenantConfigError

    try:
        serve_processes(settings, host=host, port=port, workers=workers)
    except (TenantConfigError, FileNotFoundError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from exc


keys_app = typer.Typer(help="API keys per dealer group (stored hashed in the tenants file).")


@keys_app.command("add")
def keys_add(
    group: Annotated[str, typer.Option(help="Dealer group id, as in the tenants file.")],
    key_id: Annotated[str, typer.Option(help="A public name for the key, e.g. dg01-crm.")],
    rooftop: Annotated[
        list[str] | None, typer.Option(help="Limit the key to these rooftops (repeat).")
    ] = None,
) -> None:
    """Create a key for a dealer group; print it once (only its hash is stored)."""
    from cjm_ml.serving.tenants import TenantConfigError, add_api_key

    path = Settings().tenants_file
    try:
        plaintext = add_api_key(path, group, key_id, rooftop or None)
    except (TenantConfigError, ValueError, FileNotFoundError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from exc
    typer.echo(f"new key for {group} ({key_id}); shown once, store it safely:\n{plaintext}")


def push(
    task: Annotated[str | None, typer.Option(help=TASK_HELP)] = None,
    all_tasks: Annotated[bool, typer.Option("--all", help="All three tasks.")] = False,
    wait: Annotated[
        float, typer.Option(help="Seconds to keep delivering before leaving the rest queued.")
    ] = 60.0,
) -> None:
    """Score every open instance of every dealer group and send changed risks to the CRMs
    (through the durable outbox: what is not delivered now is retried later)."""
    from cjm_ml.serving.models import ModelsUnavailable
    from cjm_ml.serving.service import open_service, push_task
    from cjm_ml.serving.tenants import TenantConfigError

    tasks = tasks_or_fail(task, all_tasks)
    try:
        service = open_service(Settings())
    except (TenantConfigError, FileNotFoundError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from exc
    try:
        if service.models.current is None:
            raise ModelsUnavailable(str(service.models.last_error))
        now = pd.Timestamp.now(tz="UTC")
        for name in tasks:
            counts = push_task(service, name, now)
            typer.echo(f"{name}: {counts['scored']:,} open instances, {counts['queued']:,} queued")
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            report = service.deliverer.run_once()
            if report.attempted == 0:
                break
            typer.echo(
                f"delivered {report.delivered}, retrying {report.retrying}, parked {report.parked}"
            )
    except ModelsUnavailable as exc:
        typer.echo(f"error: models not loaded: {exc}", err=True)
        raise typer.Exit(code=1) from exc
    finally:
        service.close()
