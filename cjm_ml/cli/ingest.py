"""``cjm ingest``: dealer exports loaded through a mapping into the canonical events."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer

from cjm_ml.config import Settings
from cjm_ml.ingest.identity import IdentityError
from cjm_ml.ingest.mapping import Mapping, MappingError, mapping_for
from cjm_ml.ingest.pipeline import IngestError
from cjm_ml.ingest.pipeline import ingest as run_ingest


def ingest(
    inputs: Annotated[list[Path], typer.Argument(help="Export files (.csv, .parquet, ADF .xml).")],
    source: Annotated[
        str | None,
        typer.Option(
            help="The kind of export (adf, crm_leads, crm_activities, scheduler, dms_deals, "
            "dms_repair_orders, web, customers, vehicles); without --mapping, its shipped "
            "mapping (the simulator's raw format)."
        ),
    ] = None,
    mapping: Annotated[Path | None, typer.Option(help="The export's mapping file (TOML).")] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="Data folder (default: CJM_DATA_DIR or ./data).")
    ] = None,
) -> None:
    """Load exports through a mapping into <data dir>/events/; exit 1 on a bad mapping, missing
    columns, bad data or a missing CJM_PII_SALT (nothing written then)."""
    settings = Settings()
    salt = settings.pii_salt.get_secret_value() if settings.pii_salt else ""
    try:
        chosen = mapping_for(source, mapping)
    except MappingError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from exc
    ingest_to(chosen, inputs, data_dir or settings.data_dir, salt)


def ingest_to(mapping: Mapping, inputs: Sequence[Path], data_dir: Path, salt: str) -> None:
    """Load ``inputs`` through ``mapping`` into ``data_dir`` and print what the load did;
    prints the error and exits 1 when the load is refused (nothing written then)."""
    try:
        result = run_ingest(mapping, inputs, data_dir=data_dir, salt=salt)
    except (MappingError, IngestError, IdentityError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from exc
    names = ", ".join(p.name for p in inputs)
    typer.echo(
        f"{mapping.source} ({names}): rows read {result.rows_read:,}; events written "
        f"{result.events_written:,}; duplicates skipped {result.duplicates_skipped:,}; new "
        f"customers {result.new_customers:,}; merges {result.merged_customers:,}; refused rows "
        f"{result.refused_rows:,}"
    )
    if result.ambiguous_times or result.nonexistent_times:
        typer.echo(
            f"daylight-saving times: {result.ambiguous_times:,} ambiguous (read as the first), "
            f"{result.nonexistent_times:,} nonexistent (moved to the end of the gap)"
        )
    if result.path is not None:
        typer.echo(f"events -> {result.path}")
