"""The playbook: the fix to try for each friction (``cjm_ml/data/playbook.json``: data, not
code), with its owner, channel and urgency."""

from __future__ import annotations

import json
from collections.abc import Mapping
from importlib import resources
from pathlib import Path

from pydantic import ValidationError

from cjm_ml.featureset import Play
from cjm_ml.registry import FRICTION_SPECS


def load_playbook(path: Path | None = None) -> dict[str, Play]:
    """The playbook (``cjm_ml/data/playbook.json``, or a JSON file of the same shape): friction
    name -> ``Play``. Keys starting with ``_`` are comments. Refuses an entry for an unknown
    friction, a friction without an entry, or a bad field, naming the file, friction and field."""
    where = str(path) if path is not None else "playbook.json (embedded)"
    if path is None:
        text = resources.files("cjm_ml.data").joinpath("playbook.json").read_text()
    else:
        text = Path(path).read_text()
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{where}: not valid JSON ({exc})") from exc
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: expected a JSON object of friction -> play")
    known = {f.name for f in FRICTION_SPECS}
    plays: dict[str, Play] = {}
    for name, entry in raw.items():
        if name.startswith("_"):
            continue
        if name not in known:
            raise ValueError(
                f"{where}: unknown friction {name!r}; known: {', '.join(sorted(known))}"
            )
        try:
            plays[name] = Play.model_validate(entry)
        except ValidationError as exc:
            fields = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'entry'}: {e['msg']}" for e in exc.errors()
            )
            raise ValueError(f"{where}: friction {name!r}: {fields}") from exc
    missing = sorted(known - set(plays))
    if missing:
        raise ValueError(f"{where}: no play for friction(s) {', '.join(missing)}")
    return plays


def recommended_action(friction: str, playbook: Mapping[str, Play]) -> Play:
    """The playbook's play for a friction; raises KeyError naming a friction it lacks."""
    try:
        return playbook[friction]
    except KeyError:
        raise KeyError(f"the playbook has no play for friction {friction!r}") from None
