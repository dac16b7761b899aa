"""The coverage page: one self-contained HTML file (no script, nothing else to load) that shows
each task's state, its weak features in the warnings' words, and the gaps in the data."""

from __future__ import annotations

import re
from pathlib import Path

from cjm_ml.features.coverage import profile_events
from cjm_ml.profiling.report import build_page, write_page
from tests.features.test_coverage import two_customers


def test_the_page_shows_each_task_its_weak_features_and_the_gaps() -> None:
    report = profile_events(two_customers(with_booking=False))
    page = build_page(report, "events <june>.parquet")
    assert "<title>Data coverage: events &lt;june&gt;.parquet</title>" in page
    assert report.summary in page
    assert (
        "<span class='tag bad'>cannot be built: no_show: the events hold no booking "
        "(appointment_set, service_appointment_set, appointment_rescheduled)</span>"
    ) in page
    lead = report.tasks[0]
    assert f"{len(lead.issues)} of 24</td>" in page
    for issue in lead.issues:
        assert f"<tr><td><code>{issue.feature}</code></td><td>{issue.label}</td>" in page
    assert "<td>Earlier repair orders</td><td>constant (always 0)</td>" in page
    assert "<td class='num'>absent</td>" in page  # touchpoints with no event
    assert page.count("<tr class='absent'>") == sum(len(s.absent) for s in report.stages)
    # June: rt-01 only; July: rt-02 only; an empty cell is a gap.
    assert page.count("<td class='num gap'></td>") == 2
    assert "<script" not in page and not re.search(r"(src|href)=['\"]?(https?:)?//", page)


def test_write_page_writes_the_file_whole(tmp_path: Path) -> None:
    report = profile_events(two_customers())
    out = write_page(report, tmp_path / "site" / "coverage.html", "events.parquet")
    assert out.read_text(encoding="utf-8") == build_page(report, "events.parquet")
    assert [p.name for p in out.parent.iterdir()] == ["coverage.html"]
