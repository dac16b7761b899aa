"""The playbook: one play per friction, and a bad file refused by friction and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cjm_ml.explain.playbook import load_playbook, recommended_action
from cjm_ml.registry import FRICTION_SPECS


def _write(path: Path, plays: dict[str, object]) -> Path:
    path.write_text(json.dumps(plays))
    return path


def test_playbook_covers_every_friction() -> None:
    playbook = load_playbook()
    assert set(playbook) == {f.name for f in FRICTION_SPECS}
    play = recommended_action("no_confirmation", playbook)
    assert (play.channel, play.urgency, play.owner) == ("sms", "now", "BDC")
    with pytest.raises(KeyError, match="no play for friction 'no_coffee'"):
        recommended_action("no_coffee", playbook)


def test_a_bad_playbook_file_is_refused_by_friction_and_field(tmp_path: Path) -> None:
    good = {k: v.model_dump() for k, v in load_playbook().items()}
    path = _write(tmp_path / "p.json", {**good, "no_coffee": good["open_recall"]})
    with pytest.raises(ValueError, match=r"p.json: unknown friction 'no_coffee'"):
        load_playbook(path)
    bad = {**good, "open_recall": {**good["open_recall"], "urgency": "someday"}}
    with pytest.raises(ValueError, match=r"friction 'open_recall': urgency: Input should be"):
        load_playbook(_write(tmp_path / "p.json", bad))
    del good["no_confirmation"]
    with pytest.raises(ValueError, match="no play for friction\\(s\\) no_confirmation"):
        load_playbook(_write(tmp_path / "p.json", good))
    (tmp_path / "p.json").write_text("{nope")
    with pytest.raises(ValueError, match=r"p\.json: not valid JSON"):
        load_playbook(tmp_path / "p.json")
