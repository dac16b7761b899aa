"""The user's TOML files (mappings, features, parameters): read, and their errors worded once.

Every file a user writes is validated by pydantic; its problems are shown as one line each,
``<key path>: <message>`` (``events.outcome.event_types.values."No Show": unknown event type
'appointment_noshow'``), with pydantic's wording replaced where it is obscure ("unknown key",
"missing"). A validator that finds a problem *below* the key it checks raises ``KeyPathError``
with the rest of the path, so the line names the exact key.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


class KeyPathError(ValueError):
    """A validation error below the key being validated: ``path`` is appended to its loc."""

    def __init__(self, path: tuple[str, ...], message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


def key_path(parts: Iterable[str | int]) -> str:
    """A TOML key path: ``events.outcome.event_types.values."No Show"`` (list positions as
    ``[0]``)."""
    out = ""
    for part in parts:
        if isinstance(part, int) or (isinstance(part, str) and part.startswith("[")):
            out += f"[{part}]" if isinstance(part, int) else part
            continue
        text = part if _BARE_KEY.match(part) else '"' + part.replace('"', '\\"') + '"'
        out += f".{text}" if out else text
    return out


def error_line(error: ErrorDetails) -> str:
    """``key.path: message`` for one pydantic error, with our own wording."""
    loc: tuple[str | int, ...] = tuple(error["loc"])
    cause = error.get("ctx", {}).get("error")
    if isinstance(cause, KeyPathError):
        loc, message = (*loc, *cause.path), cause.message
    elif error["type"] == "extra_forbidden":
        message = "unknown key"
    elif error["type"] == "missing":
        message = "missing"
    else:
        message = error["msg"].removeprefix("Value error, ")
    return f"{key_path(loc) or '(top level)'}: {message}"


def error_lines(exc: ValidationError, prefix: str = "") -> list[str]:
    """Every error of ``exc`` as ``error_line``, each after ``prefix`` (e.g. the file name)."""
    return [f"{prefix}{error_line(e)}" for e in exc.errors()]


def read_toml(path: Path | str, kind: str) -> dict[str, Any]:
    """The TOML document at ``path``; raises ValueError naming a missing file (``no such
    <kind> file``) or the file and the syntax error."""
    path = Path(path)
    try:
        return tomllib.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{path}: no such {kind} file") from None
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{path.name}: not valid TOML: {e}") from None


M = TypeVar("M", bound=BaseModel)


def read_toml_model(path: Path | str, kind: str, model: type[M], error: type[ValueError]) -> M:
    """The TOML document at ``path`` validated as ``model``; raises ``error`` naming a
    missing file, the syntax error, or each problem by key path (``error_lines``)."""
    path = Path(path)
    try:
        raw = read_toml(path, kind)
    except ValueError as e:
        raise error(str(e)) from None
    try:
        return model.model_validate(raw)
    except ValidationError as e:
        raise error("\n".join(error_lines(e, f"{path.name}: "))) from None
