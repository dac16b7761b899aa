"""Heavy requests kept apart from scoring: a small executor of their own and a page cache.

A whole group's journey page or call list takes seconds and a gigabyte; several at once used
to take every core, the memory and the scorer's turn with them (four journey pages: 24-52 s
each, 4.8 GB, score p99 5 s, ``/healthz`` 2.7 s). ``HeavyWork`` runs such jobs on their own
thread(s), ``workers`` at a time per process (one by default), at a lower CPU priority than the
scorer and the event loop; a job that cannot start within ``wait_s`` is refused (``Busy``: the
API answers 503 with ``Retry-After``), and so is one that finds ``max_waiting`` already waiting.
``PageCache`` keeps built pages (bytes) by key, least recently used first out, within a byte
budget: the journey page is keyed by its scope and the store's version, so it is built once
until the events change.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

#: How much nicer (lower CPU priority) than the process the heavy threads run.
HEAVY_NICENESS = 10


class Busy(Exception):
    """A heavy job refused because the process's heavy-work slots stayed taken: try again
    after ``retry_after_s`` seconds (the API's 503 with ``Retry-After``)."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after_s = retry_after_s


class HeavyWork:
    """Runs heavy jobs on ``workers`` threads of their own, so they wait for each other and
    not the scorer; each job may wait ``wait_s`` to start, with at most ``max_waiting`` waiting.
    """

    def __init__(self, workers: int = 1, wait_s: float = 20.0, max_waiting: int = 8) -> None:
        self.workers = workers
        self.wait_s = wait_s
        self.max_waiting = max_waiting
        self._pool = ThreadPoolExecutor(
            workers, thread_name_prefix="cjm-heavy", initializer=_lower_priority
        )
        self._lock = threading.Lock()
        self._queued: list[Future[Any]] = []
        self._last_s: float | None = None  # how long the last job took
        self._started: float | None = None  # when the job running now started

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn(*args, **kwargs)``'s result, computed on a heavy thread (its exceptions
        raised here). Refuses (``Busy``) when ``max_waiting`` jobs already wait, or when this
        one could not start within ``wait_s``; a job that has started always finishes."""
        with self._lock:
            self._queued = [f for f in self._queued if not (f.running() or f.done())]
            if len(self._queued) >= self.max_waiting:
                raise self._busy(f"{len(self._queued)} heavy request(s) already waiting")
            future = self._pool.submit(self._timed, functools.partial(fn, *args, **kwargs))
            self._queued.append(future)
        waiting = asyncio.wrap_future(future)
        try:
            return await asyncio.wait_for(asyncio.shield(waiting), self.wait_s)
        except TimeoutError:
            if future.cancel():
                raise self._busy(f"no heavy-work slot came free within {self.wait_s:g} s") from None
            return await waiting  # it started in the meantime: let it finish
        except asyncio.CancelledError:
            future.cancel()  # the caller is gone: drop the job if it has not started
            raise

    def close(self) -> None:
        """Drop the jobs not started and wait for the running ones."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _timed(self, job: Callable[[], T]) -> T:
        self._started = started = time.perf_counter()
        try:
            return job()
        finally:
            self._last_s, self._started = time.perf_counter() - started, None

    def _busy(self, why: str) -> Busy:
        """The refusal, with a retry time: what the running job should still take if it takes
        as long as the last one (``wait_s`` before any finished), at least 1 s."""
        started, last = self._started, self._last_s
        running_for = 0.0 if started is None else time.perf_counter() - started
        retry = max(1, math.ceil((self.wait_s if last is None else last) - running_for))
        log.warning("heavy request refused: %s (retry after %d s)", why, retry)
        return Busy(f"busy with other heavy requests: {why}; retry after {retry} s", retry)


class PageCache:
    """Built pages by scope, each with the version of the data it was built from (a newer
    version replaces it); least recently used evicted first beyond ``max_bytes`` in all, and
    a page larger than that is not kept. Safe to share between threads."""

    def __init__(self, max_bytes: int = 64 * 2**20) -> None:
        self.max_bytes = max_bytes
        self._pages: OrderedDict[Hashable, tuple[Hashable, bytes]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, scope: Hashable, version: Hashable) -> bytes | None:
        """The page of ``scope`` built from ``version`` (now the most recently used), or None."""
        with self._lock:
            entry = self._pages.get(scope)
            if entry is None or entry[0] != version:
                return None
            self._pages.move_to_end(scope)
            return entry[1]

    def put(self, scope: Hashable, version: Hashable, page: bytes) -> None:
        """Keep ``page`` as ``scope``'s (replacing an older version's), evicting the least
        recently used pages beyond the budget."""
        if len(page) > self.max_bytes:
            return
        with self._lock:
            old = self._pages.pop(scope, None)
            self._bytes += len(page) - (0 if old is None else len(old[1]))
            self._pages[scope] = (version, page)
            while self._bytes > self.max_bytes:
                _, (_, evicted) = self._pages.popitem(last=False)
                self._bytes -= len(evicted)

    @property
    def size_bytes(self) -> int:
        """The bytes of the pages kept."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._pages)


def _lower_priority() -> None:
    """Run the calling thread ``HEAVY_NICENESS`` nicer (Linux threads have their own nice
    value; elsewhere, or where it is not allowed, it stays as it is)."""
    with contextlib.suppress(AttributeError, OSError):
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + HEAVY_NICENESS)
