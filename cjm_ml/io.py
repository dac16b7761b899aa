"""File I/O at the edges: atomic writes, so no reader ever sees a half-written file."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd


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


def write_parquet_atomic(
    df: pd.DataFrame, path: Path, metadata: dict[str, str] | None = None
) -> None:
    """Write ``df`` to Parquet atomically; ``metadata`` goes into the file's key-value metadata."""
    if metadata:
        df = df.copy()
        df.attrs = {**df.attrs, **metadata}
    _write_atomic(path, lambda tmp: df.to_parquet(tmp, index=False))


def write_json_atomic(obj: Any, path: Path) -> None:
    """Write ``obj`` as indented JSON atomically."""
    _write_atomic(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n"))
