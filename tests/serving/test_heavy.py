"""Heavy requests (journey pages, call lists) beside scoring: one at a time per process on
their own thread, a bounded wait then 503 with Retry-After, the journey page built once per
scope and store version; scoring and /healthz stay fast meanwhile."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from cjm_ml.serving import service as use
from cjm_ml.serving.heavy import Busy, HeavyWork, PageCache
from tests.serving.conftest import Api, new_event, open_customer

#: How long each journey page build is made to take on top of the real one.
BUILD_S = 1.0


class Builds:
    """Counts the journey page builds and how many ran at once; each takes ``BUILD_S`` more,
    half of it holding the GIL (as building a big group's page does)."""

    def __init__(self, real: Callable[..., str]) -> None:
        self.real = real
        self.count = 0
        self.running = 0
        self.most_at_once = 0
        self._lock = threading.Lock()

    def __call__(self, *args: Any, **kwargs: Any) -> str:
        with self._lock:
            self.count += 1
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        try:
            page = self.real(*args, **kwargs)
            busy_until = time.perf_counter() + BUILD_S / 2
            while time.perf_counter() < busy_until:
                sum(range(1000))
            time.sleep(BUILD_S / 2)
            return page
        finally:
            with self._lock:
                self.running -= 1


@pytest.fixture
def builds(api: Api, monkeypatch: pytest.MonkeyPatch) -> Iterator[Builds]:
    """Journey page builds counted, on a fresh cache and heavy-work executor."""
    service = api.client.app.state.service  # type: ignore[attr-defined]
    counter = Builds(use.build_report)
    monkeypatch.setattr(use, "build_report", counter)
    monkeypatch.setattr(service, "pages", type(service.pages)())
    yield counter


def score_body(api: Api) -> dict[str, Any]:
    customer = open_customer(api, "no_show")
    return {"customers": [{"customer_id": customer}], "as_of": api.now.isoformat()}


def timed(call: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = call()
    return time.perf_counter() - started, result


def test_journey_pages_wait_for_each_other_not_scoring_and_are_built_once(
    api: Api, builds: Builds
) -> None:
    body = score_body(api)
    assert api.post("/v1/score/no_show", body).status_code == 200  # warm
    quiet = [timed(lambda: api.post("/v1/score/no_show", body))[0] for _ in range(5)]
    with ThreadPoolExecutor(4) as pool:
        pages = [pool.submit(timed, lambda: api.get("/journey")) for _ in range(4)]
        time.sleep(0.2)  # the first build is under way
        scores, health = [], []
        while not all(p.done() for p in pages):
            seconds, response = timed(lambda: api.post("/v1/score/no_show", body))
            assert response.status_code == 200
            scores.append(seconds)
            health.append(timed(lambda: api.get("/healthz", key=None))[0])
        done = [p.result() for p in pages]
    assert [r.status_code for _, r in done] == [200] * 4
    assert len({r.content for _, r in done}) == 1
    assert builds.count == 1 and builds.most_at_once == 1  # the others waited, then the cache
    assert len(scores) >= 3
    # Scoring and /healthz kept going while the page was built: within a small multiple of
    # scoring alone, nowhere near the build's second.
    assert max(scores) < max(0.5, 5 * max(quiet)), (scores, quiet)
    assert max(health) < 0.5, health


def test_the_page_is_rebuilt_when_its_events_change_and_kept_per_scope(
    api: Api, builds: Builds
) -> None:
    first = api.get("/journey?rooftop_id=rt-04", key="bdc")
    assert api.get("/journey", key="bdc").content == first.content  # bdc's rooftops: rt-04
    assert builds.count == 1
    group = api.get("/journey")
    assert builds.count == 2 and group.content != first.content
    event = new_event(event_id="heavy-1", customer_id="c-heavy", rooftop_id="rt-04")
    assert api.post("/v1/events", {"events": [event]}).status_code == 200
    again = api.get("/journey", key="bdc")
    assert again.status_code == 200 and builds.count == 3


def test_a_heavy_request_that_cannot_start_in_time_gets_503_with_retry_after(
    api: Api, builds: Builds, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = api.client.app.state.service  # type: ignore[attr-defined]
    monkeypatch.setattr(service, "heavy", HeavyWork(wait_s=0.3))
    try:
        with ThreadPoolExecutor(2) as pool:
            page = pool.submit(api.get, "/journey")
            time.sleep(0.2)
            as_of = {"as_of": api.now.isoformat()}
            seconds, queue = timed(lambda: api.get("/v1/queues/no_show", params=as_of))
            assert page.result().status_code == 200
    finally:
        service.heavy.close()
    assert queue.status_code == 503
    assert 0.3 <= seconds < BUILD_S  # refused after the wait, not after the build
    assert int(queue.headers["Retry-After"]) >= 1
    assert "busy with other heavy requests" in queue.json()["detail"]


def test_heavy_work_refuses_past_its_queue_and_drops_jobs_that_waited_too_long() -> None:
    heavy = HeavyWork(wait_s=0.3, max_waiting=1)
    release = threading.Event()
    ran: list[str] = []

    async def main() -> None:
        first = asyncio.create_task(heavy.run(release.wait, 5))
        await asyncio.sleep(0.05)
        second = asyncio.create_task(heavy.run(ran.append, "second"))
        await asyncio.sleep(0.05)
        with pytest.raises(Busy, match=r"1 heavy request\(s\) already waiting") as full:
            await heavy.run(ran.append, "third")
        assert full.value.retry_after_s >= 1
        with pytest.raises(Busy, match=r"no heavy-work slot came free within 0\.3 s"):
            await second
        release.set()
        assert await first is True

    asyncio.run(main())
    heavy.close()
    assert ran == []  # the refused jobs never ran


def test_the_page_cache_keeps_the_newest_version_within_its_byte_budget() -> None:
    cache = PageCache(max_bytes=10)
    cache.put("a", 1, b"aaaa")
    cache.put("b", 1, b"bbbb")
    assert cache.get("a", 1) == b"aaaa" and cache.get("a", 2) is None
    cache.put("c", 1, b"cccc")  # 12 bytes: the least recently used (b) goes
    assert cache.get("b", 1) is None and cache.get("a", 1) == b"aaaa"
    cache.put("a", 2, b"AA")  # a newer version replaces the older
    assert cache.get("a", 1) is None and cache.get("a", 2) == b"AA"
    cache.put("big", 1, b"x" * 11)  # larger than the whole budget: not kept
    assert cache.get("big", 1) is None
    assert len(cache) == 2 and cache.size_bytes == 6
