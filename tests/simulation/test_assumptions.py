"""The simulator's assumptions file: typed, complete, refused when wrong, and actually used."""

from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path

import pandas as pd
import pytest

from cjm_ml.simulation import SimulatedGroup, SimulationConfig, simulate
from cjm_ml.simulation.assumptions import default_assumptions_path, load_assumptions

#: sha256 of the events and truth tables (CSV) of ``SimulationConfig(customers=500, seed=7)``,
#: as of issue 15 (leads booked in the first contact, CRM closures, outcomes recorded late, the
#: vehicle and buyer profile at delivery and its defection terms). A change here is a change of
#: the simulated group: every figure in the README depends on it.
FINGERPRINT_500 = "ae23e1c995cb87923d5bd829efc4a597bba14e41bacc894ed6a5b316a1a370a7"


def _fingerprint(group: SimulatedGroup) -> str:
    digest = hashlib.sha256(group.events.to_csv(index=False).encode())
    for truth in group.truth.values():
        digest.update(truth.to_csv(index=False).encode())
    return digest.hexdigest()


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "simulation.toml"
    path.write_text(text)
    return path


def test_the_group_is_the_one_the_simulator_always_made() -> None:
    assert _fingerprint(simulate(SimulationConfig(customers=500, seed=7))) == FINGERPRINT_500


def test_the_embedded_file_loads_with_the_documented_figures() -> None:
    a = load_assumptions()
    assert a is load_assumptions()  # read once
    assert a.customers.distance_unknown_share == 0.12
    assert a.customers.preferred_channel_unknown_share == 0.08
    assert a.leads.untracked_share == 0.06
    assert a.leads.misattributed_share == 0.05
    assert a.research.campaign_tracked_share == 0.9
    assert (a.leads.call_log_odds, a.leads.chat_log_odds) == (-0.3, 0.2)
    assert a.deliveries.low_csi_max_score == 6
    assert a.leads.hour_weights[-1] == (24, 0.8)
    assert a.research.search_results == (5, 400)


def test_an_explicit_path_reads_that_file(tmp_path: Path) -> None:
    text = (
        default_assumptions_path()
        .read_text()
        .replace("walk_in_share = 0.15", "walk_in_share = 0.4")
    )
    assert load_assumptions(_write(tmp_path, text)).leads.walk_in_share == 0.4


def test_an_unknown_key_is_refused_by_name(tmp_path: Path) -> None:
    text = default_assumptions_path().read_text() + "\n[engagement_extra]\nx = 1\n"
    path = _write(tmp_path, text)
    with pytest.raises(ValueError, match="engagement_extra") as err:
        load_assumptions(path)
    assert str(path) in str(err.value)


def test_a_missing_key_is_refused_by_name(tmp_path: Path) -> None:
    text = default_assumptions_path().read_text().replace("used_share = 0.4\n", "")
    with pytest.raises(ValueError, match=r"deliveries\.used_share"):
        load_assumptions(_write(tmp_path, text))


def test_a_share_above_one_and_an_inverted_range_are_refused(tmp_path: Path) -> None:
    base = default_assumptions_path().read_text()
    with pytest.raises(ValueError, match="walk_in_share"):
        load_assumptions(
            _write(tmp_path, base.replace("walk_in_share = 0.15", "walk_in_share = 1.5"))
        )
    inverted = base.replace("csi_days = [1, 3]", "csi_days = [3, 1]")
    with pytest.raises(ValueError, match="low end above its high end"):
        load_assumptions(_write(tmp_path, inverted))


def test_a_missing_or_broken_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="assumptions file not found"):
        load_assumptions(tmp_path / "none.toml")
    with pytest.raises(ValueError, match="not valid TOML"):
        load_assumptions(_write(tmp_path, "[customers\n"))


def test_every_key_of_the_file_is_a_field_and_back() -> None:
    raw = tomllib.loads(default_assumptions_path().read_text())
    a = load_assumptions()
    assert list(raw) == list(type(a).model_fields)
    for name, values in raw.items():
        assert set(values) == set(type(getattr(a, name)).model_fields), name


def test_the_config_override_is_used_and_the_same_values_change_nothing() -> None:
    config = SimulationConfig(rooftops=3, customers=400, seed=2)
    base = simulate(config)
    a = load_assumptions()
    same = simulate(config.model_copy(update={"assumptions": a.model_copy()}))
    pd.testing.assert_frame_equal(base.events, same.events)
    fewer_used = a.model_copy(
        update={"deliveries": a.deliveries.model_copy(update={"used_share": 0.0})}
    )
    changed = simulate(config.model_copy(update={"assumptions": fewer_used}))
    deliveries = changed.events[changed.events["event_type"] == "vehicle_delivery"]
    assert len(deliveries) > 0
    assert deliveries["attributes"].str.contains('"condition": "new"').all()
