"""Friction drivers: TreeSHAP contributions in dealer language, the what-if and the fix to try.

``DriverExplainer`` wraps a model artifact (``cjm_ml.artifact.ModelArtifact``). For each scored
instance it takes LightGBM's native TreeSHAP contributions (``pred_contrib=True``), adds up the
features that express the same friction into one driver (the response features into "slow first
reply"), ranks the drivers that push the risk up and those that pull it down, renders each as a
sentence from the feature registry (the value in dealer terms, the standard of the dealer group
it explains for, the journey stage and touchpoint, and the driver's share of the risk; a group
the model has too little data on is compared "across groups"), predicts the risk with each
actionable friction removed (the what-if), and picks the playbook's action for the top
actionable friction.

Honesty. Only the model's drivers exist (its ``features``: training drops constant ones). A
driver that moves an instance's risk by less than ``MIN_DRIVER_RISK`` is not listed for it; a
what-if, and the fix to try, are offered only where removing the friction lowers the risk by
``MIN_FIX_GAIN`` or more (else ``NO_FIX``), and one playbook action once per instance (on the
friction whose removal lowers the risk most).

Units. Contributions are reported on the calibrated log-odds scale (LightGBM's raw SHAP values
times the Platt slope), so the base value plus the contributions is the calibrated log-odds of
the risk. ``risk_points`` is what a driver adds to the risk in probability: the risk minus the
risk with that driver's contribution taken out. ``share`` is the driver's part of everything
that pushes the risk the same way.

One code path serves one instance (the API: a dict in, microseconds of numpy) and a whole table
(the batch: vectorised per driver, never per row).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from scipy.special import expit

from cjm_ml.artifact import ModelArtifact
from cjm_ml.events import catalogue
from cjm_ml.explain.playbook import load_playbook, recommended_action
from cjm_ml.explain.render import Renderer, ValueSource, with_standard
from cjm_ml.featureset import FeatureSet, Play, feature_set_of
from cjm_ml.params import Task, TaskParams

DriverKind = Literal["friction", "context"]
Direction = Literal["up", "down"]
#: Drivers listed per instance by default: the top pushing risk up and pulling it down.
TOP_UP = 3
TOP_DOWN = 2
#: A driver that moves an instance's risk by less than this (probability; 0.05 points) does
#: nothing for it: it is never listed for that instance, and it touches no case in a roll-up.
MIN_DRIVER_RISK = 0.0005
#: A fix (a friction's what-if) is offered only when it lowers the instance's risk by at
#: least this much (probability; 1 point).
MIN_FIX_GAIN = 0.01
#: What an explanation says when no fix would lower the risk by ``MIN_FIX_GAIN`` or more.
NO_FIX = f"No fix here would lower this risk by {MIN_FIX_GAIN * 100:g} point or more"


# ------------------------------------------------------------------------------ drivers
@dataclass(frozen=True)
class DriverSpec:
    """A driver of a task's risk: one friction (all the features that express it) or one
    context feature. ``key`` is the friction's name or the feature's name."""

    key: str
    label: str
    kind: DriverKind
    stage: str
    touchpoint: str | None
    features: tuple[str, ...]


def drivers_for(task: Task | FeatureSet, features: Sequence[str] | None = None) -> list[DriverSpec]:
    """The task's drivers (or a feature set's: with its declared features) in feature order:
    one per friction (its features together, placed where its first feature is) and one per
    context feature. ``features``: only those (a model's ``features``: what it was fitted
    on); a friction none of whose features is among them is no driver. Default: every
    feature of the set."""
    feature_set = feature_set_of(task)
    out: dict[str, DriverSpec] = {}
    kept = None if features is None else set(features)
    for f in feature_set.specs:
        if kept is not None and f.name not in kept:
            continue
        if f.friction is None:
            w = f.wording
            assert w is not None  # check_registry guarantees it
            out[f.name] = DriverSpec(f.name, w.label, "context", f.stage, f.touchpoint, (f.name,))
        elif f.friction in out:
            d = out[f.friction]
            out[f.friction] = DriverSpec(
                d.key, d.label, d.kind, d.stage, d.touchpoint, (*d.features, f.name)
            )
        else:
            fr = feature_set.friction(f.friction)
            out[fr.name] = DriverSpec(
                fr.name, fr.label, "friction", fr.stage, fr.touchpoint, (f.name,)
            )
    return list(out.values())


# ------------------------------------------------------------------------------ results
class Driver(BaseModel):
    """One driver of one instance's risk, in dealer language."""

    model_config = ConfigDict(frozen=True)
    driver: str = Field(description="The friction's name, or the context feature's name.")
    label: str
    kind: DriverKind
    direction: Direction
    rank: int
    stage: str
    stage_label: str
    touchpoint: str | None
    touchpoint_label: str | None
    text: str = Field(description="The value and its comparison, e.g. 'First reply took 3 h'.")
    sentence: str = Field(description="The text with stage, touchpoint and share of the risk.")
    contribution: float = Field(description="Calibrated log-odds this driver adds.")
    risk_points: float = Field(description="Risk (probability) this driver adds.")
    share: float = Field(description="Share of everything pushing the risk the same way.")
    what_if_risk: float | None = Field(
        None,
        description="The risk with this friction removed: actionable drivers pushing up whose "
        "removal lowers the risk by MIN_FIX_GAIN or more, one per playbook action (the "
        "largest reduction).",
    )


class RecommendedAction(BaseModel):
    """The playbook's action for the instance's top actionable friction whose what-if lowers
    its risk by ``MIN_FIX_GAIN`` or more, with that what-if."""

    model_config = ConfigDict(frozen=True)
    friction: str
    label: str
    action: str
    channel: str
    urgency: str
    owner: str
    risk: float
    what_if_risk: float


class InstanceExplanation(BaseModel):
    """One instance's risk, its drivers up and down, and the fix to try."""

    model_config = ConfigDict(frozen=True)
    task: Task
    risk: float
    base_risk: float = Field(description="The model's average risk before any feature.")
    raw_score: float = Field(description="LightGBM's raw log-odds (SHAP base + contributions).")
    base_value: float = Field(description="LightGBM's raw SHAP base value.")
    up: list[Driver]
    down: list[Driver]
    action: RecommendedAction | None = Field(
        description="The fix to try; None when no fix would lower the risk by MIN_FIX_GAIN "
        "or more (``NO_FIX`` says so)."
    )


@dataclass(frozen=True)
class Explanations:
    """A table's explanations: ``drivers`` (one row per instance and listed driver) and
    ``instances`` (one row per instance: risk, base risk and the recommended action)."""

    drivers: pd.DataFrame
    instances: pd.DataFrame


@dataclass(frozen=True)
class _Core:
    """Arrays of one explanation pass (rows of ``x``)."""

    raw: np.ndarray
    base: np.ndarray
    risk: np.ndarray
    base_risk: np.ndarray
    phi: np.ndarray  # calibrated per-feature contributions (n, F)
    grouped: np.ndarray  # calibrated per-driver contributions (n, G)


# ------------------------------------------------------------------------------ explainer
class DriverExplainer:
    """Explains a model artifact's scores in dealer language (see the module docstring).

    ``group`` is the dealer group whose instances it explains: its sentences quote that group's
    norms, or the pooled ones "across groups" where the model has too little of its data
    (``ModelArtifact.norms_for``; ``None``: the model's only group, else pooled). ``norms``
    replaces the values quoted (default: those the artifact carries for ``group``, computed at
    training time); ``params`` the task parameters whose response standard is quoted
    (default: those the model was trained with).
    ``threads`` is LightGBM's thread count for batch contributions (one row uses one).
    """

    def __init__(
        self,
        model: ModelArtifact,
        norms: Mapping[str, float] | None = None,
        *,
        group: str | None = None,
        params: TaskParams | None = None,
        playbook: Mapping[str, Play] | None = None,
        threads: int = 2,
    ) -> None:
        self.model = model
        self.task: Task = model.task
        self.params = params or model.task_params
        carried, own = model.norms_for(group)
        self.group = group
        #: Whether the sentences quote the norms across groups (not the group's own).
        self.pooled = not own
        self.feature_set = model.feature_set
        self.norms = with_standard(
            self.feature_set, carried if norms is None else norms, self.params
        )
        self.playbook = {
            **(dict(playbook) if playbook is not None else load_playbook()),
            **self.feature_set.plays(),
        }
        self.threads = threads
        self.features = model.features
        self.index = {f: j for j, f in enumerate(self.features)}
        self.drivers = drivers_for(self.feature_set, self.features)
        self.membership = np.zeros((len(self.features), len(self.drivers)))
        for g, d in enumerate(self.drivers):
            for name in d.features:
                self.membership[self.index[name], g] = 1.0
        self.fixes = {d.key: self._fixes(d) for d in self.drivers if d.kind == "friction"}
        for fr in {d.key for d in self.drivers if d.kind == "friction"}:
            recommended_action(fr, self.playbook)
        self.actionable = np.array([d.kind == "friction" for d in self.drivers])
        # Each driver's playbook action (an id per distinct action text; -1: context), so one
        # action is offered once per instance however many frictions it fixes.
        texts = [
            self.playbook[d.key].action if d.kind == "friction" else None for d in self.drivers
        ]
        known = sorted({t for t in texts if t is not None})
        self.action_ids = np.array([-1 if t is None else known.index(t) for t in texts])
        self.renderer = Renderer(self.feature_set, self.norms, pooled=self.pooled)
        cat = catalogue()
        self.stage_labels = {s.key: s.label for s in cat.stages}
        self.touchpoint_labels = {e.key: e.label for e in cat.event_types}
        #: Where each driver sits in the journey, as its sentences say it.
        self.where = np.array(
            [
                (
                    f"{self.stage_labels[d.stage]} · {self.touchpoint_labels[d.touchpoint]}"
                    if d.touchpoint
                    else self.stage_labels[d.stage]
                )
                + ("" if d.kind == "friction" else "; context, not a friction")
                for d in self.drivers
            ],
            dtype=object,
        )

    def _fixes(self, driver: DriverSpec) -> list[tuple[int, str, float, int, float]]:
        """(feature column, kind, value, condition column or -1, condition value) per fix."""
        out: list[tuple[int, str, float, int, float]] = []
        for name in driver.features:
            spec = self.feature_set.spec(name)
            if spec.fix is None:
                continue
            value = spec.fix.value
            if value is None:
                value = self.norms[name]
            if spec.unit == "category":
                codes = self.model.level_codes(name)
                if str(value) not in codes:
                    continue  # the model never saw the fixed level: leave the feature as is
                code = codes[str(value)]
            else:
                code = float(value)
            cond, cond_value = -1, np.nan
            if spec.fix.only_when is not None:
                if spec.fix.only_when[0] not in self.index:
                    continue  # the model does not read the condition (constant in training)
                cond, cond_value = self.index[spec.fix.only_when[0]], spec.fix.only_when[1]
            out.append((self.index[name], spec.fix.kind, code, cond, cond_value))
        return out

    # -------------------------------------------------------------------------- encoding
    def encode(self, table: pd.DataFrame | Mapping[str, Any]) -> np.ndarray:
        """The model's input as a float matrix: categoricals as LightGBM's category codes
        (the model's learned levels; a level it never saw is missing). Refuses a table missing
        a feature, by name. ``table``: a feature table or its columns."""
        return np.ascontiguousarray(self.model.encode(table), dtype=float)

    def encode_row(self, row: Mapping[str, Any]) -> np.ndarray:
        """One instance (feature name -> value) as a 1-row model input, without pandas
        (``ModelArtifact.encode_row``)."""
        return self.model.encode_row(row)

    # -------------------------------------------------------------------------- numbers
    def contributions(self, x: np.ndarray) -> np.ndarray:
        """LightGBM's native TreeSHAP values on the raw log-odds scale: (rows, features + 1),
        the last column the base value; each row sums to the raw score."""
        threads = 1 if len(x) < 64 else self.threads
        return np.asarray(
            self.model.booster_.predict(x, pred_contrib=True, num_threads=threads), dtype=float
        )

    def _core(self, x: np.ndarray) -> _Core:
        contrib = self.contributions(x)
        slope = self.model.calibration_[0]
        raw = contrib.sum(axis=1)
        base = contrib[:, -1]
        phi = contrib[:, :-1] * slope
        return _Core(
            raw=raw,
            base=base,
            risk=self.model.calibrate(raw),
            base_risk=self.model.calibrate(base),
            phi=phi,
            grouped=phi @ self.membership,
        )

    def fixed(self, x: np.ndarray, friction: str) -> np.ndarray:
        """The rows of ``x`` with the friction removed: each of its features at its fixed value,
        where the fix applies (known values; the fix's condition). Raises KeyError for a name
        that is not one of the task's frictions."""
        if friction not in self.fixes:
            raise KeyError(f"{self.task}: {friction!r} is not one of the task's frictions")
        y = x.copy()
        for j, kind, value, cond, cond_value in self.fixes[friction]:
            col = x[:, j]
            if kind == "set":
                new = np.full(len(col), value)
            elif kind == "at_most":
                new = np.minimum(col, value)
            else:
                new = np.maximum(col, value)
            applies = ~np.isnan(col)
            if cond >= 0:
                applies &= x[:, cond] == cond_value
            y[:, j] = np.where(applies, new, col)
        return y

    def present(self, x: np.ndarray, friction: str) -> np.ndarray:
        """Whether each row of ``x`` has the friction: removing it would change a feature."""
        y = self.fixed(x, friction)
        changed = (y != x) & ~(np.isnan(y) & np.isnan(x))
        return np.asarray(changed.any(axis=1), dtype=bool)

    def presence(self, x: np.ndarray) -> np.ndarray:
        """Rows x drivers: True where the row has the friction (always True for context)."""
        out = np.ones((len(x), len(self.drivers)), dtype=bool)
        for g, d in enumerate(self.drivers):
            if d.kind == "friction":
                out[:, g] = self.present(x, d.key)
        return out

    def risk(self, x: np.ndarray) -> np.ndarray:
        """The calibrated risk of each row of an encoded matrix (plain prediction)."""
        return self.model.calibrate(self.model.raw_of(x))

    def what_if(self, x: np.ndarray, friction: str) -> np.ndarray:
        """The calibrated risk of each row of ``x`` with the friction removed."""
        return self.risk(self.fixed(x, friction))

    def driver_matrix(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-driver contributions (calibrated log-odds, rows x drivers) and the risk."""
        core = self._core(x)
        return core.grouped, core.risk

    # -------------------------------------------------------------------------- explain
    def _select(
        self, grouped: np.ndarray, points: np.ndarray, top: int, bottom: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(row, driver, rank, direction +1/-1) of each listed driver, rows in order: the
        strongest each way that move the risk by ``MIN_DRIVER_RISK`` or more (``points``: the
        risk each driver adds, rows x drivers)."""
        g_count = grouped.shape[1]
        parts = [(np.empty(0, np.int64),) * 3 + (np.empty(0),)]
        for way, k in ((1.0, min(top, g_count)), (-1.0, min(bottom, g_count))):
            if k == 0:
                continue
            order = np.argsort(-way * grouped, axis=1, kind="stable")[:, :k]
            vals = np.take_along_axis(grouped, order, axis=1) * way
            moved = np.take_along_axis(points, order, axis=1) * way
            r, ranks = np.nonzero((vals > 0) & (moved >= MIN_DRIVER_RISK))
            parts.append((r, order[r, ranks], ranks + 1, np.full(len(r), way)))
        rows, drv, rank, sign = (np.concatenate([p[i] for p in parts]) for i in range(4))
        keep = np.lexsort((rank, -sign, rows))
        return rows[keep], drv[keep], rank[keep], sign[keep]

    def _texts(
        self, core: _Core, rows: np.ndarray, drv: np.ndarray, sign: np.ndarray, source: ValueSource
    ) -> np.ndarray:
        """The phrase of each listed driver: its feature that pushes hardest its way."""
        text = np.empty(len(rows), dtype=object)
        for g in np.unique(drv):
            m = np.flatnonzero(drv == g)
            members = np.array([self.index[f] for f in self.drivers[g].features])
            pushes = core.phi[rows[m]][:, members] * sign[m, None]
            lead = members[np.argmax(pushes, axis=1)]
            for j in np.unique(lead):
                mj = m[lead == j]
                text[mj] = self.renderer.phrase(self.features[j], rows[mj], source, capital=True)
        return text

    def _what_ifs(self, x: np.ndarray, rows: np.ndarray, drv: np.ndarray) -> np.ndarray:
        """The risk with each (row, friction) pair's friction removed (each pair once)."""
        g_count = len(self.drivers)
        codes, inverse = np.unique(rows * g_count + drv, return_inverse=True)
        u_rows, u_drv = np.divmod(codes, g_count)
        risk = np.full(len(codes), np.nan)
        for g in np.unique(u_drv):
            m = np.flatnonzero(u_drv == g)
            risk[m] = self.what_if(x[u_rows[m]], self.drivers[g].key)
        return risk[inverse.reshape(-1)]

    def _sentences(
        self,
        text: np.ndarray,
        drv: np.ndarray,
        sign: np.ndarray,
        points: np.ndarray,
        share: np.ndarray,
    ) -> np.ndarray:
        where = self.where[drv]
        pts = np.char.mod("%.1f", np.abs(points) * 100).astype(object)
        pct = np.char.mod("%.0f", share * 100).astype(object)
        verb = np.where(sign > 0, "adds ", "takes ").astype(object)
        tail = np.where(sign > 0, " pts of risk, ", " pts off the risk, ").astype(object)
        way = np.where(sign > 0, "% of what raises it", "% of what lowers it").astype(object)
        out: np.ndarray = text + " (" + where + "): " + verb + pts + tail + pct + way + "."
        return out

    def _explain_arrays(
        self, x: np.ndarray, source: ValueSource, top: int, bottom: int
    ) -> tuple[_Core, dict[str, np.ndarray], dict[str, np.ndarray]]:
        core = self._core(x)
        logit = np.log(core.risk / (1 - core.risk))
        points_all = core.risk[:, None] - expit(logit[:, None] - core.grouped)
        rows, drv, rank, sign = self._select(core.grouped, points_all, top, bottom)
        contrib = core.grouped[rows, drv]
        points = points_all[rows, drv]
        up_total = np.where(core.grouped > 0, core.grouped, 0).sum(axis=1)
        down_total = np.where(core.grouped < 0, -core.grouped, 0).sum(axis=1)
        share = np.abs(contrib) / np.where(sign > 0, up_total[rows], down_total[rows])
        # What-ifs: every actionable friction present and pushing the risk up, listed or not.
        what_if_all, gain = self._fix_gains(x, core)
        meaningful = gain >= MIN_FIX_GAIN  # NaN (no what-if) is never meaningful
        # The fix to try: the friction pushing hardest among those whose fix lowers the risk
        # by MIN_FIX_GAIN or more; none when no fix would.
        act = np.where(meaningful, core.grouped, -np.inf)
        best = np.argmax(act, axis=1)
        at = np.arange(len(x))
        has = np.isfinite(act[at, best])
        action_what_if = np.where(has, what_if_all[at, best], np.nan)
        # A listed driver's what-if: pushing up, meaningful, and its action's best for the row.
        offered = (sign > 0) & meaningful[rows, drv]
        offered[offered] = self._best_per_action(rows[offered], drv[offered], gain)
        what_if = np.where(offered, what_if_all[rows, drv], np.nan)
        text = self._texts(core, rows, drv, sign, source)
        listed = {
            "row": rows,
            "driver_index": drv,
            "rank": rank,
            "sign": sign,
            "contribution": contrib,
            "risk_points": points,
            "share": share,
            "what_if_risk": what_if,
            "text": text,
            "sentence": self._sentences(text, drv, sign, points, share)
            if len(rows)
            else np.empty(0, dtype=object),
        }
        actions = {"has": has, "driver_index": best, "what_if_risk": action_what_if}
        return core, listed, actions

    def _fix_gains(self, x: np.ndarray, core: _Core) -> tuple[np.ndarray, np.ndarray]:
        """Rows x drivers: the risk with the friction removed, and how much lower that is than
        the risk now, for every actionable friction present and pushing the risk up (NaN
        elsewhere)."""
        candidates = self.actionable[None, :] & self.presence(x) & (core.grouped > 0)
        c_rows, c_drv = np.nonzero(candidates)
        what_if = np.full(core.grouped.shape, np.nan)
        what_if[c_rows, c_drv] = self._what_ifs(x, c_rows, c_drv)
        return what_if, core.risk[:, None] - what_if

    def _best_per_action(self, rows: np.ndarray, drv: np.ndarray, gain: np.ndarray) -> np.ndarray:
        """For (row, driver) pairs, whether each is its row's largest risk reduction among the
        pairs with the same playbook action (each action offered once per instance)."""
        if not len(rows):
            return np.zeros(0, dtype=bool)
        key = rows * (int(self.action_ids.max()) + 1) + self.action_ids[drv]
        order = np.lexsort((-gain[rows, drv], key))
        first = np.ones(len(order), dtype=bool)
        first[1:] = key[order][1:] != key[order][:-1]
        keep = np.zeros(len(rows), dtype=bool)
        keep[order[first]] = True
        return keep

    def explain_row(
        self, row: Mapping[str, Any], top: int = TOP_UP, bottom: int = TOP_DOWN
    ) -> InstanceExplanation:
        """One instance (feature name -> value, as a feature table row or the API's body):
        its risk, drivers up and down in dealer language, and the action to take."""
        x = self.encode_row(row)

        def source(name: str, rows: np.ndarray) -> np.ndarray:
            value = row[name]
            absent = value is None or value is pd.NA
            if self.feature_set.spec(name).unit == "category":
                return np.array(["unknown" if absent else str(value)], dtype=object)
            return np.array([np.nan if absent else float(value)])

        return self._instances(*self._explain_arrays(x, source, top, bottom))[0]

    def explain_each(
        self, table: pd.DataFrame | Mapping[str, Any], top: int = TOP_UP, bottom: int = TOP_DOWN
    ) -> list[InstanceExplanation]:
        """``explain_row`` for every row of a feature table (or its columns, as
        ``open_feature_columns`` gives them), computed as one batch; in row order (for an API
        response: one customer's instances, or a batch of customers')."""
        if isinstance(table, pd.DataFrame):
            table = table.reset_index(drop=True)
        x = self.encode(table)
        return self._instances(*self._explain_arrays(x, self._table_source(table, x), top, bottom))

    def _instances(
        self, core: _Core, listed: dict[str, np.ndarray], actions: dict[str, np.ndarray]
    ) -> list[InstanceExplanation]:
        per_row: list[list[Driver]] = [[] for _ in range(len(core.risk))]
        for i in range(len(listed["row"])):
            per_row[int(listed["row"][i])].append(self._driver(listed, i))
        out = []
        for r, drivers in enumerate(per_row):
            action = None
            if actions["has"][r]:
                d = self.drivers[int(actions["driver_index"][r])]
                play = recommended_action(d.key, self.playbook)
                action = RecommendedAction(
                    friction=d.key,
                    label=d.label,
                    **play.model_dump(),
                    risk=float(core.risk[r]),
                    what_if_risk=float(actions["what_if_risk"][r]),
                )
            out.append(
                InstanceExplanation(
                    task=self.task,
                    risk=float(core.risk[r]),
                    base_risk=float(core.base_risk[r]),
                    raw_score=float(core.raw[r]),
                    base_value=float(core.base[r]),
                    up=[d for d in drivers if d.direction == "up"],
                    down=[d for d in drivers if d.direction == "down"],
                    action=action,
                )
            )
        return out

    def _driver(self, listed: dict[str, np.ndarray], i: int) -> Driver:
        d = self.drivers[int(listed["driver_index"][i])]
        what_if = float(listed["what_if_risk"][i])
        return Driver(
            driver=d.key,
            label=d.label,
            kind=d.kind,
            direction="up" if listed["sign"][i] > 0 else "down",
            rank=int(listed["rank"][i]),
            stage=d.stage,
            stage_label=self.stage_labels[d.stage],
            touchpoint=d.touchpoint,
            touchpoint_label=self.touchpoint_labels[d.touchpoint] if d.touchpoint else None,
            text=str(listed["text"][i]),
            sentence=str(listed["sentence"][i]),
            contribution=float(listed["contribution"][i]),
            risk_points=float(listed["risk_points"][i]),
            share=float(listed["share"][i]),
            what_if_risk=None if np.isnan(what_if) else what_if,
        )

    def explain(
        self, table: pd.DataFrame, top: int = TOP_UP, bottom: int = TOP_DOWN
    ) -> Explanations:
        """Explanations for every row of a feature table, vectorised (see ``Explanations``).
        The table needs the model's features, ``instance_id`` and ``rooftop_id``."""
        missing = [c for c in ("instance_id", "rooftop_id") if c not in table.columns]
        if missing:
            raise ValueError(f"{self.task}: the table lacks {', '.join(missing)}")
        table = table.reset_index(drop=True)
        x = self.encode(table)
        source = self._table_source(table, x)
        core, listed, actions = self._explain_arrays(x, source, top, bottom)
        meta = driver_table(self.drivers)
        ids = table["instance_id"].to_numpy()
        rooftops = table["rooftop_id"].astype("string").to_numpy()
        rows = listed["row"]
        drivers = pd.DataFrame(
            {
                "instance_id": ids[rows],
                "rooftop_id": rooftops[rows],
                "risk": core.risk[rows],
                "direction": np.where(listed["sign"] > 0, "up", "down"),
                "rank": listed["rank"],
            }
        )
        drivers = pd.concat(
            [drivers, meta.iloc[listed["driver_index"]].reset_index(drop=True)], axis=1
        )
        for name in ("text", "sentence", "contribution", "risk_points", "share", "what_if_risk"):
            drivers[name] = listed[name]
        instances = pd.DataFrame(
            {
                "instance_id": ids,
                "rooftop_id": rooftops,
                "risk": core.risk,
                "base_risk": core.base_risk,
                **self._action_columns(actions, meta),
                "what_if_risk": actions["what_if_risk"],
            }
        )
        return Explanations(drivers=drivers, instances=instances)

    def _action_columns(self, actions: dict[str, np.ndarray], meta: pd.DataFrame) -> dict[str, Any]:
        """Per instance, the top friction present (``action_friction``, ``action_label``) and
        its play (``action``, ``channel``, ``urgency``, ``owner``); None where there is none."""
        best, has = actions["driver_index"], actions["has"]
        plays = [self.playbook.get(d.key) for d in self.drivers]
        out: dict[str, Any] = {
            "action_friction": np.where(has, meta["driver"].to_numpy()[best], None),
            "action_label": np.where(has, meta["label"].to_numpy()[best], None),
        }
        for field in ("action", "channel", "urgency", "owner"):
            per_driver = np.array([getattr(p, field) if p else None for p in plays], dtype=object)
            out[field] = np.where(has, per_driver[best], None)
        return out

    def _table_source(self, table: pd.DataFrame | Mapping[str, Any], x: np.ndarray) -> ValueSource:
        """Rendering values from a table: numbers from the model input, categories as given."""
        cache: dict[str, np.ndarray] = {}

        def source(name: str, rows: np.ndarray) -> np.ndarray:
            if name not in cache:
                if self.feature_set.spec(name).unit == "category":
                    col = pd.array(table[name], dtype="string").fillna("unknown")
                    cache[name] = col.to_numpy(dtype=object)
                elif name in self.index:
                    cache[name] = x[:, self.index[name]]
                else:  # a feature the model does not read (a wording may still quote it)
                    values = pd.to_numeric(pd.Series(table[name]), errors="coerce")
                    cache[name] = values.to_numpy(dtype=float)
            return cache[name][rows]

        return source

    def driver_contributions(self, table: pd.DataFrame) -> pd.DataFrame:
        """Every driver of every instance (long): ``instance_id``, ``rooftop_id``, ``risk``,
        ``driver``, ``contribution`` (calibrated log-odds), ``risk_points`` (the risk it adds)
        ``present`` (the instance has the friction; always True for context) and ``fix_gain``
        (the risk the what-if removes: current risk minus the risk with the friction removed;
        0 where absent and for context). The roll-ups' input."""
        table = table.reset_index(drop=True)
        x = self.encode(table)
        grouped, risk = self.driver_matrix(x)
        n, g = grouped.shape
        logit = np.log(risk / (1 - risk))
        points = risk[:, None] - expit(logit[:, None] - grouped)
        present = self.presence(x)
        gain = np.zeros((n, g))
        for k, d in enumerate(self.drivers):
            rows = np.flatnonzero(present[:, k]) if d.kind == "friction" else np.empty(0, int)
            if len(rows):
                gain[rows, k] = risk[rows] - self.what_if(x[rows], d.key)
        return pd.DataFrame(
            {
                "instance_id": np.repeat(table["instance_id"].to_numpy(), g),
                "rooftop_id": np.repeat(table["rooftop_id"].astype("string").to_numpy(), g),
                "risk": np.repeat(risk, g),
                "driver": np.tile(np.array([d.key for d in self.drivers], dtype=object), n),
                "contribution": grouped.reshape(-1),
                "risk_points": points.reshape(-1),
                "present": present.reshape(-1),
                "fix_gain": gain.reshape(-1),
            }
        )


def driver_table(drivers: Sequence[DriverSpec]) -> pd.DataFrame:
    """The drivers as a table: ``driver``, ``label``, ``kind``, ``stage``, ``touchpoint``."""
    return pd.DataFrame(
        {
            "driver": [d.key for d in drivers],
            "label": [d.label for d in drivers],
            "kind": [d.kind for d in drivers],
            "stage": [d.stage for d in drivers],
            "touchpoint": [d.touchpoint for d in drivers],
        }
    )
