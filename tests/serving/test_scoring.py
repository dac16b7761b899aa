"""ScoreBatcher: concurrent requests share one scoring pass; failures stay with their jobs."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest

from cjm_ml.serving.scoring import ScoreBatcher


class Recorder:
    """A ``run`` that records its batches; the first batch waits until released."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.started = threading.Event()
        self.release = threading.Event()

    def __call__(self, jobs: Sequence[int]) -> list[int | BaseException]:
        self.batches.append(list(jobs))
        self.started.set()
        self.release.wait(timeout=10)
        return [ValueError(f"job {j} refused") if j < 0 else j * 10 for j in jobs]


def test_requests_arriving_during_a_batch_are_scored_together_next() -> None:
    run = Recorder()
    batcher: ScoreBatcher[int, int] = ScoreBatcher(run)
    try:
        first = batcher.submit(1)
        assert run.started.wait(timeout=10)
        waiting = [batcher.submit(j) for j in (2, 3, 4, 5, 6)]
        run.release.set()
        assert first.result(timeout=10) == 10
        assert [f.result(timeout=10) for f in waiting] == [20, 30, 40, 50, 60]
        assert run.batches == [[1], [2, 3, 4, 5, 6]]
    finally:
        run.release.set()
        batcher.close()


def test_batches_are_capped() -> None:
    run = Recorder()
    batcher: ScoreBatcher[int, int] = ScoreBatcher(run, max_batch=2)
    try:
        first = batcher.submit(0)
        assert run.started.wait(timeout=10)
        rest = [batcher.submit(j) for j in (1, 2, 3, 4, 5)]
        run.release.set()
        assert [f.result(timeout=10) for f in [first, *rest]] == [0, 10, 20, 30, 40, 50]
        assert run.batches == [[0], [1, 2], [3, 4], [5]]
    finally:
        run.release.set()
        batcher.close()


def test_a_refused_job_fails_alone_and_a_failed_batch_fails_only_its_jobs() -> None:
    run = Recorder()
    run.release.set()
    batcher: ScoreBatcher[int, int] = ScoreBatcher(run)
    try:
        with pytest.raises(ValueError, match="job -1 refused"):
            batcher.submit(-1).result(timeout=10)
        assert batcher.submit(7).result(timeout=10) == 70

        def broken(jobs: Sequence[int]) -> list[int | BaseException]:
            raise RuntimeError("store unreachable")

        failing: ScoreBatcher[int, int] = ScoreBatcher(broken)
        with pytest.raises(RuntimeError, match="store unreachable"):
            failing.submit(1).result(timeout=10)
        failing.close()
        assert batcher.submit(8).result(timeout=10) == 80  # the other batcher is unaffected
    finally:
        batcher.close()


def test_close_finishes_what_was_submitted_then_refuses_more() -> None:
    run = Recorder()
    batcher: ScoreBatcher[int, int] = ScoreBatcher(run)
    first = batcher.submit(1)
    assert run.started.wait(timeout=10)
    second = batcher.submit(2)
    closing = threading.Thread(target=batcher.close)
    closing.start()
    run.release.set()
    closing.join(timeout=10)
    assert (first.result(timeout=1), second.result(timeout=1)) == (10, 20)
    with pytest.raises(RuntimeError, match="closed"):
        batcher.submit(3)


def test_a_request_given_up_while_waiting_is_dropped_and_the_scorer_goes_on() -> None:
    run = Recorder()
    batcher: ScoreBatcher[int, int] = ScoreBatcher(run)
    try:
        first = batcher.submit(1)
        assert run.started.wait(timeout=10)
        gone, kept = batcher.submit(2), batcher.submit(3)
        assert gone.cancel()  # what awaiting it through asyncio does when the client leaves
        run.release.set()
        assert (first.result(timeout=10), kept.result(timeout=10)) == (10, 30)
        assert batcher.submit(4).result(timeout=10) == 40
        assert run.batches == [[1], [3], [4]]
    finally:
        run.release.set()
        batcher.close()
