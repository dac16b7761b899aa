"""The user's TOML files: their errors worded once, naming the exact key."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from cjm_ml.tomlfiles import KeyPathError, error_lines, key_path, read_toml


class _Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")
    words: dict[str, str]

    @field_validator("words")
    @classmethod
    def _no_empty(cls, value: dict[str, str]) -> dict[str, str]:
        for word, target in value.items():
            if not target:
                raise KeyPathError((word,), "maps to nothing")
        return value


class _Outer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    inner: _Inner


def test_key_paths_quote_what_toml_would() -> None:
    assert key_path(["events", "outcome", "values", "No Show"]) == (
        'events.outcome.values."No Show"'
    )
    assert key_path(["items", 0, "name"]) == "items[0].name"
    assert key_path([]) == ""


def test_errors_name_the_key_in_plain_words() -> None:
    with pytest.raises(ValidationError) as e:
        _Outer.model_validate({"inner": {"words": {"No Show": ""}}, "colour": 1})
    assert error_lines(e.value, "f.toml: ") == [
        "f.toml: name: missing",
        'f.toml: inner.words."No Show": maps to nothing',
        "f.toml: colour: unknown key",
    ]


def test_reading_names_a_missing_or_broken_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"none\.toml: no such mapping file"):
        read_toml(tmp_path / "none.toml", "mapping")
    (tmp_path / "bad.toml").write_text("[x\n")
    with pytest.raises(ValueError, match=r"^bad\.toml: not valid TOML"):
        read_toml(tmp_path / "bad.toml", "features")
    (tmp_path / "ok.toml").write_text('a = 1\n[b]\nc = "d"\n')
    assert read_toml(tmp_path / "ok.toml", "features") == {"a": 1, "b": {"c": "d"}}
