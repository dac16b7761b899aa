"""Identity and privacy at the edge: normalisation, salted hashes, the identity map."""

from __future__ import annotations

import hashlib
import hmac
import logging
import shutil
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from cjm_ml.config import Settings
from cjm_ml.ingest.identity import (
    MERGED,
    CrossGroupError,
    IdentityError,
    IdentityMap,
    MissingSaltError,
    hash_pii,
    normalise_email,
    normalise_name,
    normalise_phone,
    pii_salt,
    pseudonymise,
)

SALT = "test-salt-0123456789"
JAN = pd.Timestamp("2024-01-10", tz="UTC")


def _batch(**columns: list[object]) -> pd.DataFrame:
    size = len(next(iter(columns.values())))
    return pd.DataFrame({"dealer_group_id": ["g1"] * size, **columns})


def _times(*days: int) -> pd.Series:
    return pd.Series([JAN + pd.Timedelta(days=d) for d in days])


# --- normalisation and hashing -------------------------------------------------------------


def test_normalise_email_trims_and_lowercases_only() -> None:
    got = normalise_email(pd.Series(["  J.Doe+news@GMail.com ", "no-at-sign", None]))
    assert got.tolist() == ["j.doe+news@gmail.com", pd.NA, pd.NA]


def test_normalise_phone_to_e164() -> None:
    raw = pd.Series(["(555) 123-4567", "1-555-123-4567 ext. 12", "+44 7700 900123", "12345"])
    assert normalise_phone(raw).tolist() == ["+15551234567", "+15551234567", "+447700900123", pd.NA]
    uk = pa.array(["07700 900123", "0033 6 12 34 56 78", None])
    assert normalise_phone(uk, country_code="44").tolist() == [
        "+447700900123",
        "+33612345678",
        pd.NA,
    ]
    with pytest.raises(ValueError, match="country_code"):
        normalise_phone(uk, country_code="+44")


def test_normalise_name_removes_accents_case_and_punctuation() -> None:
    got = normalise_name(pd.Series(["  Zoë   O'Brien-Lee ", "ÉLODIE", " "]))
    assert got.tolist() == ["zoe obrien lee", "elodie", pd.NA]


def test_hash_pii_is_keyed_by_salt_and_kind() -> None:
    got = hash_pii(pd.Series(["Ann@Example.com ", "ann@example.com", None]), "email", SALT)
    expected = hmac.new(SALT.encode(), b"email\x1fann@example.com", hashlib.sha256).hexdigest()
    assert got.tolist() == [expected, expected, pd.NA]
    as_name = hash_pii(pd.Series(["ann"]), "name", SALT).iloc[0]
    as_name_other_salt = hash_pii(pd.Series(["ann"]), "name", SALT + "x").iloc[0]
    assert as_name == hmac.new(SALT.encode(), b"name\x1fann", hashlib.sha256).hexdigest()
    assert as_name != as_name_other_salt


def test_salt_is_required_and_named(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(MissingSaltError, match="CJM_PII_SALT is not set"):
        pii_salt(Settings(pii_salt=None))
    with pytest.raises(MissingSaltError, match="CJM_PII_SALT is shorter than 16"):
        hash_pii(pd.Series(["a@b.co"]), "email", "short")
    monkeypatch.setenv("CJM_PII_SALT", SALT)
    assert pii_salt(Settings()) == SALT
    assert SALT not in repr(Settings())


def test_pseudonymise_replaces_columns_and_names_rows_not_values(
    caplog: pytest.LogCaptureFixture,
) -> None:
    frame = pd.DataFrame({"email": ["a@b.co", "secret-not-an-email", None], "rooftop": [1, 2, 3]})
    with pytest.raises(IdentityError) as refused:
        pseudonymise(frame, {"email": "email"}, SALT)
    assert str(refused.value) == "column 'email': not a valid email in row 2"
    with caplog.at_level(logging.WARNING):
        out = pseudonymise(frame, {"email": "email"}, SALT, on_invalid="drop")
    assert list(out.columns) == ["email_hash", "rooftop"]
    assert out["email_hash"].isna().tolist() == [False, True, True]
    assert "secret-not-an-email" not in caplog.text
    assert "1 value(s) not a valid email" in caplog.text
    with pytest.raises(IdentityError, match="column 'phone' \\(phone\\) is not in the input"):
        pseudonymise(frame, {"phone": "phone"}, SALT)


# --- the identity map ----------------------------------------------------------------------


def test_records_sharing_a_key_are_one_customer(tmp_path: Path) -> None:
    identity = IdentityMap.open(tmp_path, "g1")
    batch = _batch(email_hash=["e1", None, "e2"], phone_hash=["p1", "p1", None])
    got = identity.assign(batch)
    assert got.customer_ids.tolist() == ["cu-00000001", "cu-00000001", "cu-00000002"]
    assert (got.new_customers, got.merged_customers, len(got.conflicts)) == (2, 0, 0)
    reopened = IdentityMap.open(tmp_path, "g1")
    assert reopened.table[["key_kind", "key_value", "customer_id"]].values.tolist() == [
        ["email_hash", "e1", "cu-00000001"],
        ["email_hash", "e2", "cu-00000002"],
        ["phone_hash", "p1", "cu-00000001"],
    ]


def test_later_loads_reuse_ids_and_issue_new_ones_after_the_last(tmp_path: Path) -> None:
    IdentityMap.open(tmp_path, "g1").assign(_batch(email_hash=["e1", "e2", "e3"]))
    later = IdentityMap.open(tmp_path, "g1").assign(
        _batch(
            email_hash=["e3", None, "e9"],
            source=["crm", "crm", None],
            source_id=["C-1", "C-2", None],
        )
    )
    assert later.customer_ids.tolist() == ["cu-00000003", "cu-00000004", "cu-00000005"]
    assert later.new_customers == 2


def test_a_record_joining_two_customers_merges_them_and_reports_it(tmp_path: Path) -> None:
    identity = IdentityMap.open(tmp_path, "g1")
    identity.assign(_batch(email_hash=["e1", "e2", "e3"], phone_hash=["p1", "p2", "p3"]))
    got = identity.assign(_batch(email_hash=["e2", "e3", None], phone_hash=["p1", "p9", "p2"]))
    assert got.customer_ids.tolist() == ["cu-00000001", "cu-00000003", "cu-00000001"]
    assert got.merged_customers == 1
    assert got.conflicts.values.tolist() == [
        ["cu-00000001", "cu-00000001", "phone_hash", "p1", 1],
        ["cu-00000002", "cu-00000001", "email_hash", "e2", 1],
        ["cu-00000002", "cu-00000001", "phone_hash", "p2", 3],
    ]
    table = identity.table
    assert table.loc[table["key_kind"] == MERGED, ["key_value", "customer_id"]].values.tolist() == [
        ["cu-00000002", "cu-00000001"]
    ]
    assert set(table.loc[table["key_value"] == "e2", "customer_id"]) == {"cu-00000001"}


def test_loading_the_same_batch_twice_changes_nothing(tmp_path: Path) -> None:
    identity = IdentityMap.open(tmp_path, "g1")
    batch = _batch(email_hash=["e1", "e2", None], vin=["V1", None, "V1"], ts=_times(0, 1, 2))
    first = identity.assign(batch)
    written = identity.path.read_bytes()
    stamp = identity.path.stat().st_mtime_ns
    again = IdentityMap.open(tmp_path, "g1").assign(batch)
    assert again.customer_ids.tolist() == first.customer_ids.tolist()
    assert again.new_customers == 0
    assert (identity.path.read_bytes(), identity.path.stat().st_mtime_ns) == (written, stamp)


def test_a_map_refuses_another_groups_records_and_files(tmp_path: Path) -> None:
    identity = IdentityMap.open(tmp_path, "g1")
    batch = _batch(email_hash=["e1", "e2", "e3"])
    batch.loc[2, "dealer_group_id"] = "g2"
    with pytest.raises(CrossGroupError, match="column 'dealer_group_id', row 3: not 'g1'"):
        identity.assign(batch)
    assert not identity.path.exists()
    identity.assign(_batch(email_hash=["e1"]))
    shutil.copy(identity.path, identity.path.with_name("g2.parquet"))
    with pytest.raises(CrossGroupError, match="identity map of group 'g1', not 'g2'"):
        IdentityMap.open(tmp_path, "g2")
    with pytest.raises(IdentityError, match="not a plain name"):
        IdentityMap.open(tmp_path, "../g1")


def test_a_vin_never_merges_two_owners_with_keys_of_their_own(tmp_path: Path) -> None:
    got = IdentityMap.open(tmp_path, "g1").assign(
        _batch(email_hash=["seller", "buyer", None], vin=["V1", "V1", "V1"], ts=_times(0, 30, 31))
    )
    # the VIN-only record goes to the nearest sighting in time: the buyer
    assert got.customer_ids.tolist() == ["cu-00000001", "cu-00000002", "cu-00000002"]


def test_a_vin_only_record_joins_within_the_window_only(tmp_path: Path) -> None:
    identity = IdentityMap.open(tmp_path, "g1", vin_window=pd.Timedelta(days=100))
    identity.assign(_batch(email_hash=["e1"], vin=["V1"], ts=_times(0)))
    got = identity.assign(_batch(vin=["V1", "V1", "V2"], ts=_times(90, 400, 400)))
    assert got.customer_ids.tolist() == ["cu-00000001", "cu-00000002", "cu-00000003"]
    chained = identity.assign(_batch(vin=["V2", "V2", "V2"], ts=_times(450, 520, 700)))
    assert chained.customer_ids.tolist() == ["cu-00000003", "cu-00000003", "cu-00000004"]


def test_records_without_a_usable_key_are_refused(tmp_path: Path) -> None:
    identity = IdentityMap.open(tmp_path, "g1")
    with pytest.raises(IdentityError, match=r"^rows 2, 3: none of the key columns"):
        identity.assign(_batch(email_hash=["e1", " ", None]))
    with pytest.raises(IdentityError, match=r"^column 'ts', row 2: a record known only by its VIN"):
        identity.assign(_batch(email_hash=["e1", None], vin=["V1", "V1"]))
    with pytest.raises(IdentityError, match=r"^column 'source', row 1: a source_id needs"):
        identity.assign(_batch(source_id=["C-1"]))
    with pytest.raises(IdentityError, match=r"^column 'ts' must hold times with a zone"):
        identity.assign(_batch(vin=["V1"], ts=[pd.Timestamp("2024-01-01")]))


def test_no_clear_contact_detail_is_written_or_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clear = {
        "email": ["Maria.Lopez@example.org", "  jkowalski@example.net", "not an email"],
        "phone": ["(212) 555-0147", "+1 646 555 0199", "917.555.0123"],
        "name": ["María López", "Jan Kowalski", "Zoë Ng"],
    }
    raw = pd.DataFrame({"dealer_group_id": ["g1"] * 3, **clear})
    kinds = {"email": "email", "phone": "phone", "name": "name"}
    caplog.set_level(logging.DEBUG)
    with pytest.raises(IdentityError) as refused:
        pseudonymise(raw, kinds, SALT)  # type: ignore[arg-type]
    hashed = pseudonymise(raw, kinds, SALT, on_invalid="drop")  # type: ignore[arg-type]
    identity = IdentityMap.open(tmp_path, "g1")
    identity.assign(hashed.drop(columns="name_hash"))
    joining = _batch(email_hash=[hashed["email_hash"][0]], phone_hash=[hashed["phone_hash"][1]])
    assert identity.assign(joining).merged_customers == 1
    written = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    said = (caplog.text + str(refused.value)).encode()
    assert "merged" in caplog.text and "not a valid email" in caplog.text
    needles = [
        *(v.strip() for values in clear.values() for v in values),
        *("maria.lopez@example.org", "jkowalski", "maria lopez", "López", "lopez", "kowalski"),
        *("jan kowalski", "zoe ng", "2125550147", "+12125550147", "6465550199", "9175550123"),
    ]
    for needle in needles:
        assert needle.encode() not in written, needle
        assert needle.encode() not in said, needle
