"""Scoring at "now": open instances, features, risk, band and drivers, for the API and batch.

The features come from the same functions as training (``open_instances`` and the task's
builder), with the cutoff at the scoring moment; nothing here re-implements a feature.

``ScoreBatcher`` lets concurrent requests share that work: requests that arrive while a
batch is being scored wait for the next one, and each batch reads the store once, builds one
``Timeline``, calls the model once and explains every instance in one pass. Scoring cost is
mostly fixed per call (pandas, LightGBM): a batch of 16 customers costs about what two single
ones do. A request that finds the scorer idle is scored at once, with no waiting window.
"""

from __future__ import annotations

import logging
import queue as queues
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from functools import cached_property
from typing import Generic, TypeVar

import numpy as np
import pandas as pd

from cjm_ml.features.pipeline import open_feature_columns
from cjm_ml.features.timeline import Columns
from cjm_ml.params import Task
from cjm_ml.serving.models import ModelSet
from cjm_ml.serving.store import EventStore
from cjm_ml.serving.tenants import Principal

log = logging.getLogger(__name__)

#: The date a queue filters on: when the appointment is, or when the lead/delivery happened.
QUEUE_DATE: dict[Task, str] = {
    "lead_leakage": "anchor_ts",
    "no_show": "scheduled_ts",
    "service_defection": "anchor_ts",
}


@dataclass(frozen=True)
class Scored:
    """Open instances with their features, ``risk``, ``raw`` (log-odds) and ``band``, as
    columns (``table`` is the same as a DataFrame), and the model and cutoff used."""

    task: Task
    columns: Columns
    model_name: str
    model_version: str
    cutoff: pd.Timestamp

    def __len__(self) -> int:
        return len(self.columns["instance_id"])

    @cached_property
    def table(self) -> pd.DataFrame:
        """The columns as a table (built on first use: the per-request path never needs it)."""
        return pd.DataFrame(self.columns, copy=False)


def score_events(models: ModelSet, task: Task, events: pd.DataFrame, now: pd.Timestamp) -> Scored:
    """Score every instance open at ``now`` in ``events`` (canonical, typed) with the task's
    champion, the instances and features defined by the task parameters it was trained with
    (its declared features too: the artifact carries them)."""
    model = models.models[task]
    columns = open_feature_columns(
        events, task, now, model.task_params, declared=model.feature_set.declared
    )
    raw = model.predict_raw(columns) if len(columns["instance_id"]) else np.empty(0)
    risk = model.calibrate(raw)
    columns.update(raw=raw, risk=risk, band=model.band(risk))
    return Scored(task, columns, *model.identity, now)


def queue(
    models: ModelSet,
    store: EventStore,
    principal: Principal,
    task: Task,
    now: pd.Timestamp,
    *,
    rooftop_id: str | None = None,
    date_from: pd.Timestamp | None = None,
    date_to: pd.Timestamp | None = None,
    limit: int = 100,
) -> Scored:
    """The call list: the key's open instances ranked by risk (highest first), optionally for
    one rooftop and a date range (appointment date for no-shows, lead or delivery date else).
    The customers looked at are those active within the champion's open lookback."""
    rooftops = sorted(principal.rooftops if rooftop_id is None else {rooftop_id})
    lookback = models.models[task].task_params.open_lookback(task)
    customers = store.active_customers(
        principal.dealer_group_id, (now - lookback).to_pydatetime(), rooftops
    )
    events = store.customer_events(principal.dealer_group_id, customers)
    scored = score_events(models, task, events, now)
    table = scored.table
    keep = table["rooftop_id"].isin(rooftops)
    when = table[QUEUE_DATE[task]]
    if date_from is not None:
        keep &= when >= date_from
    if date_to is not None:
        keep &= when < date_to
    ranked = table[keep.to_numpy(dtype=bool)].sort_values(
        ["risk", "instance_id"], ascending=[False, True], kind="stable"
    )
    top = ranked.head(limit).reset_index(drop=True)
    return Scored(
        task,
        {c: top[c].array for c in top.columns},
        scored.model_name,
        scored.model_version,
        scored.cutoff,
    )


# ------------------------------------------------------------------------------ batching
Job = TypeVar("Job")
Result = TypeVar("Result")


@dataclass
class _Waiting(Generic[Job, Result]):
    job: Job
    future: Future[Result] = field(default_factory=Future)


class ScoreBatcher(Generic[Job, Result]):
    """Runs jobs submitted from any thread in batches on one scoring thread.

    ``run(jobs)`` gets every job waiting when the thread comes round (at most ``max_batch``,
    less any whose future was cancelled meanwhile) and returns one result per job, in order: a
    value, or an exception for that job alone.
    ``submit`` returns the job's future (``asyncio.wrap_future`` awaits it); an exception
    raised by ``run`` itself fails every job of its batch. A job submitted to an idle batcher
    runs at once.
    """

    def __init__(
        self,
        run: Callable[[Sequence[Job]], Sequence[Result | BaseException]],
        *,
        max_batch: int = 64,
        name: str = "cjm-scorer",
    ) -> None:
        self._run = run
        self._max_batch = max_batch
        self._queue: queues.SimpleQueue[_Waiting[Job, Result] | None] = queues.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._closed = False
        self._thread.start()

    def submit(self, job: Job) -> Future[Result]:
        """Queue ``job`` to be scored with whatever else is waiting; its future result."""
        if self._closed:
            raise RuntimeError("the scorer is closed")
        waiting: _Waiting[Job, Result] = _Waiting(job)
        self._queue.put(waiting)
        return waiting.future

    def close(self) -> None:
        """Finish the jobs already submitted, then stop the scoring thread."""
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            self._thread.join(timeout=30)

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < self._max_batch:
                try:
                    more = self._queue.get_nowait()
                except queues.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.append(more)
            self._finish(batch)
            if stop:
                return

    def _finish(self, batch: list[_Waiting[Job, Result]]) -> None:
        # A request given up while it waited (its client went away) is dropped here; the
        # others can no longer be cancelled, so their results always land.
        batch = [w for w in batch if w.future.set_running_or_notify_cancel()]
        if not batch:
            return
        started = time.perf_counter()
        try:
            results = self._run([w.job for w in batch])
            log.debug(
                "scored %d requests together in %.1f ms",
                len(batch),
                1000 * (time.perf_counter() - started),
            )
        except BaseException as exc:
            for w in batch:
                w.future.set_exception(exc)
            return
        for w, result in zip(batch, results, strict=True):
            if isinstance(result, BaseException):
                w.future.set_exception(result)
            else:
                w.future.set_result(result)
