"""Sentences from the feature registry's wording: each feature's value in dealer terms and its
comparison with the group (vectorised over rows). Values are worded by ``cjm_ml.formatting``;
whose figures a comparison quotes (``{group}`` in the registry's templates) by ``whose_figures``.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from cjm_ml.featureset import FeatureSet, feature_set_of
from cjm_ml.formatting import format_standard, format_values
from cjm_ml.params import Task, TaskParams
from cjm_ml.registry import FeatureSpec


def _missing(spec: FeatureSpec, values: np.ndarray) -> np.ndarray:
    """Where the values are unknown: NaN, or a category's missing or ``unknown`` level."""
    if spec.unit == "category":
        v = np.asarray(values, dtype=object)
        return np.asarray(pd.isna(v) | (v == "unknown"), dtype=bool)
    return np.isnan(np.asarray(values, dtype=float))


#: Feature values for rendering: (feature name, row positions) -> that feature's values there.
ValueSource = Callable[[str, np.ndarray], np.ndarray]

#: Whose figures a comparison quotes, as the ``{group}`` field of a template says it: the
#: sentence's own dealer group's, or every group's pooled (a group with too little data).
OWN_FIGURES = "in the group"
POOLED_FIGURES = "across groups"


def whose_figures(pooled: bool) -> str:
    """How a comparison says whose figures it quotes: ``POOLED_FIGURES`` or ``OWN_FIGURES``."""
    return POOLED_FIGURES if pooled else OWN_FIGURES


def _compile(template: str) -> list[tuple[str, str | None]]:
    return [(lit, fld) for lit, fld, _, _ in string.Formatter().parse(template)]


def _upper_first(text: np.ndarray) -> np.ndarray:
    return np.array([t[:1].upper() + t[1:] for t in text], dtype=object)


class Renderer:
    """Phrases for one task's features (or a feature set's: with the declared ones), from
    their wording (vectorised). ``norms``: the comparison values quoted; ``pooled``: they are
    every group's, not the sentence's own group's (the comparisons say "across groups")."""

    def __init__(
        self, task: Task | FeatureSet, norms: Mapping[str, float], *, pooled: bool = False
    ) -> None:
        self.specs = {f.name: f for f in feature_set_of(task).specs}
        self.whose = whose_figures(pooled)
        self.norm_text = {
            name: format_standard(self.specs[name], v)
            for name, v in norms.items()
            if name in self.specs
        }
        self.clause: dict[str, list[tuple[str, str | None]]] = {}
        self.templates: dict[str, tuple[list[tuple[str, str | None]], ...]] = {}
        for f in self.specs.values():
            w = f.wording
            assert w is not None  # check_registry guarantees it
            if w.standard and f.name in self.norm_text:
                self.clause[f.name] = _compile(w.standard)
            self.templates[f.name] = tuple(
                _compile(t) for t in (w.says, w.zero, w.unknown, w.when[2] if w.when else "")
            )

    def _fill(
        self,
        parts: list[tuple[str, str | None]],
        feature: str,
        rows: np.ndarray,
        source: ValueSource,
        capital: bool,
    ) -> np.ndarray:
        out: Any = np.full(len(rows), "", dtype=object)
        for k, (lit, fld) in enumerate(parts):
            if lit:
                out = out + (lit[:1].upper() + lit[1:] if capital and k == 0 else lit)
            if fld is None:
                continue
            if fld == "standard":
                out = out + self.norm_text.get(feature, "the group's usual")
                continue
            if fld == "group":
                out = out + self.whose
                continue
            name = feature if fld == "value" else fld
            spec = self.specs[name]
            vals = source(name, rows)
            miss = _missing(spec, vals)
            text = np.full(len(rows), "unknown", dtype=object)
            if (~miss).any():
                text[~miss] = format_values(spec, vals[~miss])
            if capital and k == 0 and not lit:
                text = _upper_first(text)
            out = out + text
        return np.asarray(out, dtype=object)

    def phrase(
        self, feature: str, rows: np.ndarray, source: ValueSource, capital: bool = False
    ) -> np.ndarray:
        """The feature's phrase for each row, with its comparison with the group appended."""
        spec = self.specs[feature]
        w = spec.wording
        assert w is not None
        vals = source(feature, rows)
        miss = _missing(spec, vals)
        choice = np.zeros(len(rows), dtype=np.int64)  # 0 says, 1 zero, 2 unknown, 3 when
        if spec.unit in ("flag", "count"):
            numbers = np.asarray(vals, dtype=float)
            choice[~miss & (np.rint(np.nan_to_num(numbers, nan=1.0)) == 0)] = 1
        if w.when is not None:
            other, value, _ = w.when
            choice[np.asarray(source(other, rows), dtype=float) == value] = 3
        choice[miss] = 2
        out = np.empty(len(rows), dtype=object)
        for k, parts in enumerate(self.templates[feature]):
            m = choice == k
            if m.any():
                out[m] = self._fill(parts, feature, rows[m], source, capital)
        compared = self._compared_by(feature)
        if compared is not None and (~miss).any():
            clause = self._fill(self.clause[compared], compared, rows[~miss], source, False)
            out[~miss] = out[~miss] + "; " + clause
        return out

    def _compared_by(self, feature: str) -> str | None:
        """The feature whose comparison with the group a phrase of ``feature`` ends with: its
        own, else (when its wording quotes no standard itself) the first feature of the same
        friction that has one (a confirmation's channel quotes the share of appointments
        confirmed), else none."""
        if feature in self.clause:
            return feature
        friction = self.specs[feature].friction
        quotes_itself = any(fld == "standard" for t in self.templates[feature] for _, fld in t)
        if friction is None or quotes_itself:
            return None
        return next(
            (n for n, f in self.specs.items() if f.friction == friction and n in self.clause),
            None,
        )


def with_standard(
    task: Task | FeatureSet, norms: Mapping[str, float] | None, params: TaskParams
) -> dict[str, float]:
    """``norms`` plus the group's response standard for the features compared with it."""
    out = dict(norms or {})
    for f in feature_set_of(task).specs:
        if f.wording is not None and f.wording.norm == "sla":
            out.setdefault(f.name, float(params.response_sla_minutes))
    return out


def feature_phrases(
    table: pd.DataFrame,
    task: Task | FeatureSet,
    feature: str,
    norms: Mapping[str, float] | None = None,
    params: TaskParams | None = None,
    *,
    pooled: bool = False,
) -> pd.Series:
    """How ``feature`` reads for each row of ``table`` (a feature table of ``task``): its value
    in dealer terms and its comparison with the group (``norms``, e.g. ``group_norms``; the
    response standard comes from ``params``; ``pooled``: the norms are every group's, "across
    groups"). Refuses a feature the task does not have, or a table missing a column the
    wording reads, by name. ``task``: a task, or a feature set (with its declared features)."""
    feature_set = feature_set_of(task)
    task = feature_set.task
    if feature not in feature_set.names:
        raise KeyError(f"{task} has no feature {feature!r}")
    renderer = Renderer(
        feature_set, with_standard(feature_set, norms, params or TaskParams()), pooled=pooled
    )

    def source(name: str, rows: np.ndarray) -> np.ndarray:
        if name not in table.columns:
            raise ValueError(
                f"{task}: the table lacks {name}, which the wording of {feature} reads"
            )
        col = table[name]
        if feature_set.spec(name).unit == "category":
            return col.astype("string").fillna("unknown").to_numpy(dtype=object)[rows]
        return pd.to_numeric(col, errors="coerce").to_numpy(dtype=float)[rows]

    text = renderer.phrase(feature, np.arange(len(table)), source, capital=True)
    return pd.Series(text, index=table.index, dtype=object, name=feature)
