"""The simulator's event log: events kept as arrays of codes, rendered to tables once at the end."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd


@dataclass
class EventLog:
    """Accumulates events as arrays of codes; each event gets the next key (its event id)."""

    etype_codes: dict[str, int]
    channel_codes: dict[str, int]
    parts: list[dict[str, np.ndarray]] = field(default_factory=list)
    next_key: int = 0

    def add(
        self,
        etype: str,
        cust: np.ndarray,
        ts: np.ndarray,
        rooftop: np.ndarray,
        *,
        channel: str | np.ndarray | None = None,
        source: np.ndarray | None = None,
        vehicle: np.ndarray | None = None,
        value: np.ndarray | None = None,
        attrs: np.ndarray | None = None,
    ) -> np.ndarray:
        """Append ``len(cust)`` events of one type; returns their keys (for event ids)."""
        n = len(cust)
        keys = np.arange(self.next_key, self.next_key + n, dtype=np.int64)
        self.next_key += n
        if n == 0:
            return keys
        self.parts.append(
            {
                "key": keys,
                "cust": np.asarray(cust, dtype=np.int64),
                "ts": np.floor(np.asarray(ts, dtype=float)),
                "rooftop": np.asarray(rooftop, dtype=np.int16),
                "etype": np.full(n, self.etype_codes[etype], dtype=np.int16),
                "channel": self._channel_codes(channel, n),
                "source": _codes(source, n, np.int16),
                "vehicle": _codes(vehicle, n, np.int64),
                "value": np.full(n, np.nan) if value is None else np.asarray(value, dtype=float),
                "attrs": np.full(n, None, dtype=object) if attrs is None else attrs,
            }
        )
        return keys

    def _channel_codes(self, channel: str | np.ndarray | None, n: int) -> np.ndarray:
        if channel is None:
            return np.full(n, -1, dtype=np.int16)
        if isinstance(channel, str):
            return np.full(n, self.channel_codes[channel], dtype=np.int16)
        return np.asarray(channel, dtype=np.int16)


def _codes(values: np.ndarray | None, n: int, dtype: type[np.integer[Any]]) -> np.ndarray:
    """Category codes (-1 when absent)."""
    return np.full(n, -1, dtype=dtype) if values is None else values.astype(dtype)


def json_attrs(**fields: Any) -> np.ndarray:
    """Render small JSON objects from equal-length arrays of strings, vectorised."""
    out: pd.Series | None = None
    for name, values in fields.items():
        piece = f'"{name}": "' + pd.Series(values, dtype="string") + '"'
        out = piece if out is None else out + ", " + piece
    assert out is not None
    return ("{" + out + "}").to_numpy(dtype=object)


def padded_ids(prefix: str, numbers: np.ndarray, width: int) -> pd.Series:
    """Zero-padded string ids such as ``c-000042``, vectorised."""
    return prefix + pd.Series(numbers, dtype="int64").astype("string").str.zfill(width)
