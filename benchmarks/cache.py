"""Where the benchmarks keep what they simulate once: ``/tmp/cjm-bench``, keyed by the
simulator, so a changed simulator never serves stale events."""

from __future__ import annotations

import hashlib
from pathlib import Path

CACHE = Path("/tmp/cjm-bench")


def simulator_digest() -> str:
    """A digest of the simulator's code and settings (12 hex digits)."""
    root = Path(__file__).resolve().parent.parent / "cjm_ml"
    files = [*sorted((root / "simulation").rglob("*.py")), root / "data" / "simulation.toml"]
    return hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()[:12]
