"""``cjm serve``, ``cjm push`` and ``cjm keys``: the scoring API, CRM write-back, API keys."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import pandas as pd
import typer

from cjm_ml.cli.common import TASK_HELP, load_or_exit, tasks_or_fail
from cjm_ml.config import Settings

if TYPE_CHECKING:
    from cjm_ml.serving.outbox import Backlog
    from cjm_ml.serving.service import Service


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


#: ``cjm push``'s exit status when deliveries are still pending at the end of ``--wait``.
PENDING_EXIT_CODE = 3
#: Shortest and longest sleep between delivery runs while deliveries wait for their backoff
#: (the longest also notices other processes' progress on the same outbox).
_POLL_S = (0.2, 5.0)


def push(
    task: Annotated[str | None, typer.Option(help=TASK_HELP)] = None,
    all_tasks: Annotated[bool, typer.Option("--all", help="All three tasks.")] = False,
    wait: Annotated[
        float,
        typer.Option(
            min=0,
            help="Seconds to keep delivering, retries included: until no delivery is pending "
            f"(all delivered or parked) or this runs out. Exits {PENDING_EXIT_CODE} when some "
            "are still pending then (they stay queued for the next run or `cjm serve`).",
        ),
    ] = 60.0,
) -> None:
    """Score every open instance of every dealer group and send changed risks to the CRMs
    (through the durable outbox: what is not delivered now is retried later). Waits up to
    ``--wait`` seconds for every delivery to end (delivered or parked) and says what is left;
    exits 1 without models, ``PENDING_EXIT_CODE`` with deliveries still pending."""
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
            typer.echo(f"error: models not loaded: {service.models.last_error}", err=True)
            raise typer.Exit(code=1)
        now = pd.Timestamp.now(tz="UTC")
        for name in tasks:
            counts = push_task(service, name, now)
            typer.echo(f"{name}: {counts['scored']:,} open instances, {counts['queued']:,} queued")
        left = deliver_until_done(service, wait)
    finally:
        service.close()
    if left.waiting or left.held:
        raise typer.Exit(code=PENDING_EXIT_CODE)


def deliver_until_done(service: Service, wait_s: float) -> Backlog:
    """Run the outbox's deliveries until none is pending but those held behind a parked one
    (everything delivered or parked), or ``wait_s`` seconds have passed, sleeping through
    retry backoffs; prints each run and what is left, and returns what is left."""
    deadline = time.monotonic() + wait_s
    while True:
        report = service.deliverer.run_once()
        if report.attempted:
            typer.echo(
                f"delivered {report.delivered}, retrying {report.retrying}, parked {report.parked}"
            )
        left = service.outbox.backlog()
        remaining = deadline - time.monotonic()
        if not left.waiting or remaining <= 0:
            break
        due_in = 0.0 if left.next_due_at is None else left.next_due_at - time.time()
        time.sleep(min(remaining, max(due_in, _POLL_S[0]), _POLL_S[1]))
    _say_what_is_left(left)
    return left


def _say_what_is_left(left: Backlog) -> None:
    """One line on the outbox after the wait (on stderr when deliveries are still pending)."""
    parked = f"{left.parked:,} parked (GET /v1/outbox lists them; requeue to send again)"
    if not left.waiting and not left.held:
        typer.echo(f"no delivery pending; {parked}" if left.parked else "all delivered")
        return
    parts = []
    if left.waiting:
        due = "" if left.next_due_at is None else f", next try in {_seconds_to(left.next_due_at)}"
        parts.append(f"{left.waiting:,} still pending (retrying{due})")
    if left.held:
        parts.append(f"{left.held:,} held behind parked ones")
    typer.echo(f"deliveries left queued after the wait: {'; '.join(parts)}; {parked}", err=True)


def _seconds_to(at: float) -> str:
    """How long until the Unix time ``at``, e.g. "12 s"."""
    return f"{max(0.0, at - time.time()):.0f} s"
