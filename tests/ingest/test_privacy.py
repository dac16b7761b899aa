"""Nothing in clear after a whole ingest: every raw export of a simulated group loaded with
``cjm ingest --source``, the events put in the serving store and turned into feature tables;
then no fake email, phone (as written, or its digits) or name of the exports appears in any
file under the data folder (Parquet read back as values), in the store (every row of every
table), in what the commands printed, or in the logs."""

from __future__ import annotations

import io
import logging
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from cjm_ml.cli.main import app
from cjm_ml.events import load_events
from cjm_ml.features.pipeline import build_feature_table
from cjm_ml.ingest.adf import read_adf
from cjm_ml.ingest.mapping import SHIPPED_MAPPINGS
from cjm_ml.logs import configure_logging
from cjm_ml.params import TASKS
from cjm_ml.serving.store import SqliteEventStore
from cjm_ml.simulation import SimulationConfig, simulate
from cjm_ml.simulation.exports import write_raw_exports

SALT = "privacy-test-salt-0123456789"
PERSONAL = ("first_name", "last_name", "email", "phone")


def _fake_contact_details(raw: Path) -> set[str]:
    """Every email, phone (as written and as its digits) and name in the exports."""
    frames = [
        pd.read_csv(path, dtype=str, keep_default_na=False)
        for path in raw.glob("*.csv")
        if path.name != "rooftops.csv"
    ]
    adf = read_adf(sorted((raw / "adf").glob("*.xml"))).astype("string")
    frames.append(adf.rename(columns=lambda c: c.replace("contact_", "")))
    values: set[str] = set()
    for frame in frames:
        for column in set(PERSONAL) & set(frame.columns):
            values |= {v for v in frame[column].dropna() if v}
        if {"first_name", "last_name"} <= set(frame.columns):
            full = frame["first_name"].fillna("") + " " + frame["last_name"].fillna("")
            values |= set(full.str.strip())
    phones = {v for v in values if re.search(r"\d{3}.*\d{4}$", v)}
    values |= {re.sub(r"\D", "", v) for v in phones}
    return {v for v in values if len(v) >= 4}


def _found(values: set[str], text: str) -> list[str]:
    """The values that stand in ``text`` as a whole (not inside a longer word or number)."""
    alternatives = "|".join(re.escape(v) for v in sorted(values, key=len, reverse=True))
    pattern = re.compile(rf"(?<![A-Za-z0-9])(?:{alternatives})(?![A-Za-z0-9])")
    return sorted(set(pattern.findall(text)))


def _parquet_text(path: Path) -> str:
    table = pq.read_table(path)
    parts = [repr(table.schema.metadata)]
    parts += ["\n".join(map(str, column.to_pylist())) for column in table.columns]
    return "\n".join(parts)


def _sqlite_text(path: Path) -> str:
    with sqlite3.connect(path) as db:
        return "\n".join(db.iterdump())


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    group = simulate(SimulationConfig(rooftops=6, customers=400, seed=5))
    return write_raw_exports(group, tmp_path_factory.mktemp("raw") / "raw")["rooftops"].parent


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    """Every record of cjm_ml's loggers, at DEBUG (a handler of its own: the command line
    replaces the root logger's handlers)."""
    text = io.StringIO()
    handler = logging.StreamHandler(text)
    logging.getLogger("cjm_ml").addHandler(handler)
    yield text
    logging.getLogger("cjm_ml").removeHandler(handler)
    configure_logging()  # off the command runner's closed stream


def test_no_contact_detail_is_in_clear_after_a_whole_ingest(
    raw: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, logs: io.StringIO
) -> None:
    monkeypatch.setenv("CJM_PII_SALT", SALT)
    data = tmp_path / "data"
    printed = []
    for source, (_, export) in SHIPPED_MAPPINGS.items():
        args = ["--log-level", "DEBUG", "ingest", "--source", source, str(raw / export)]
        result = CliRunner().invoke(app, [*args, "--data-dir", str(data)])
        assert result.exit_code == 0, result.output
        printed.append(result.output)
    events = load_events(data / "events")
    with SqliteEventStore(tmp_path / "store.db") as store:
        store.append(events, file="ingested")
    for task in TASKS:
        build_feature_table(events, task).to_parquet(data / f"features_{task}.parquet")

    files = sorted(p for p in data.rglob("*") if p.is_file())
    assert {p.parent.name for p in files} >= {"events", "identity", "data"}
    texts = {str(p): _parquet_text(p) for p in files if p.suffix == ".parquet"}
    texts |= {str(p): p.read_text() for p in files if p.suffix in (".json", ".txt", ".csv")}
    assert len(texts) == len(files), "every file under the data folder is read back"
    texts["store"] = _sqlite_text(tmp_path / "store.db")
    texts["printed"] = "\n".join(printed)
    texts["logs"] = logs.getvalue()
    assert "identity map dg-01" in texts["logs"]
    fake = _fake_contact_details(raw)
    assert len(fake) > 1_000
    assert any("@example." in v for v in fake)
    assert _found(fake, f"as written: {sorted(fake)[0]}.") == [sorted(fake)[0]]
    for where, text in texts.items():
        found = _found(fake, text)
        assert not found, f"{where}: {found[:5]}"
