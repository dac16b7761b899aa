"""File I/O at the edges: atomic writes, so no reader ever sees a half-written file."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def _write_atomic(path: Path, write: Callable[[Path], Any]) -> None:
    with atomic_path(path) as tmp:
        write(tmp)


METADATA_KEY = b"cjm_ml"


def write_parquet_atomic(
    df: pd.DataFrame, path: Path, metadata: dict[str, str] | None = None
) -> None:
    """Write ``df`` to Parquet atomically; ``metadata`` goes into the file's schema metadata."""
    table = pa.Table.from_pandas(df, preserve_index=False)
    if metadata:
        table = table.replace_schema_metadata(
            {**(table.schema.metadata or {}), METADATA_KEY: json.dumps(metadata).encode()}
        )
    _write_atomic(path, lambda tmp: pq.write_table(table, tmp))


def read_parquet_metadata(path: Path) -> dict[str, str]:
    """The cjm-ml metadata written with ``write_parquet_atomic`` (empty if there is none)."""
    raw = (pq.read_schema(path).metadata or {}).get(METADATA_KEY)
    return dict(json.loads(raw)) if raw else {}


def write_json_atomic(obj: Any, path: Path) -> None:
    """Write ``obj`` as indented JSON atomically."""
    _write_atomic(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n"))


@contextmanager
def atomic_dir(path: Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; on success it replaces ``path`` whole.

    A reader sees the old folder or the new one, never a mix: the old one is moved aside,
    the new one renamed in, then the old one removed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    old = path.with_name(f".{path.name}.old")
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(old, ignore_errors=True)
            path.replace(old)
        tmp.replace(path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
