"""Dealer-group tenants: the API key matrix, rooftop/customer scope, config errors, no leaks."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from cjm_ml.serving.outbox import WebhookTarget
from cjm_ml.serving.store import SqliteEventStore
from cjm_ml.serving.tenants import (
    AccessDenied,
    CustomerAccess,
    Principal,
    TenantConfigError,
    TenantRegistry,
    add_api_key,
    generate_api_key,
    hash_api_key,
    load_tenants,
)

SECRET_VALUE = "dg02-webhook-secret-0123456789"
ENV = {"CJM_DG01_CRM_SECRET": "dg01-webhook-secret-abcdefghij"}


@pytest.fixture
def keys() -> dict[str, str]:
    """Plaintext keys by key id (what the dealer groups were handed)."""
    return {}


@pytest.fixture
def tenants_file(tmp_path: Path, keys: dict[str, str]) -> Path:
    entries = {}
    for key_id, rooftops in [
        ("dg01-crm", None),
        ("dg01-lakeside-bdc", ["rt-02"]),
        ("dg02-crm", None),
    ]:
        keys[key_id], entry = generate_api_key(key_id, rooftops)
        entries[key_id] = entry.model_dump(exclude_none=True)
    config = {
        "dealer_groups": [
            {
                "dealer_group_id": "dg-01",
                "rooftops": ["rt-01", "rt-02", "rt-03"],
                "api_keys": [entries["dg01-crm"], entries["dg01-lakeside-bdc"]],
                "crm": {"url": "https://crm.example.com/hooks/cjm",
                        "secret_env": "CJM_DG01_CRM_SECRET", "timeout_s": 4},
            },
            {
                "dealer_group_id": "dg-02",
                "rooftops": ["rt-51"],
                "api_keys": [entries["dg02-crm"]],
                "crm": {"url": "http://127.0.0.1:9/hooks", "secret": SECRET_VALUE},
            },
        ]
    }  # fmt: skip
    path = tmp_path / "tenants.json"
    path.write_text(json.dumps(config))
    return path


@pytest.fixture
def registry(tenants_file: Path) -> TenantRegistry:
    return load_tenants(tenants_file, environ=ENV)


@pytest.mark.parametrize(
    ("presented", "group", "rooftops"),
    [
        ("dg01-crm", "dg-01", {"rt-01", "rt-02", "rt-03"}),
        ("dg01-lakeside-bdc", "dg-01", {"rt-02"}),
        ("dg02-crm", "dg-02", {"rt-51"}),
        ("wrong-secret", None, None),
        ("unknown-key-id", None, None),
        ("missing", None, None),
        ("empty", None, None),
        ("garbage", None, None),
        ("hash-as-key", None, None),
    ],
)
def test_api_key_matrix(
    registry: TenantRegistry,
    keys: dict[str, str],
    presented: str,
    group: str | None,
    rooftops: set[str] | None,
) -> None:
    real = keys["dg01-crm"]
    offered: str | None = {
        "wrong-secret": real[:-4] + ("AAAA" if not real.endswith("AAAA") else "BBBB"),
        "unknown-key-id": real.replace("dg01-crm", "dg09-crm"),
        "missing": None,
        "empty": "",
        "garbage": "not a key at all",
        "hash-as-key": hash_api_key(real),
    }.get(presented, keys.get(presented))
    principal = registry.authenticate(offered)
    if group is None:
        assert principal is None
    else:
        assert principal is not None
        assert (principal.dealer_group_id, set(principal.rooftops)) == (group, rooftops)
        assert principal.key_id == presented


def test_a_key_never_reaches_another_groups_rooftops(
    registry: TenantRegistry, keys: dict[str, str]
) -> None:
    dg01 = registry.authenticate(keys["dg01-crm"])
    bdc = registry.authenticate(keys["dg01-lakeside-bdc"])
    assert dg01 is not None and bdc is not None
    dg01.check_rooftops(["rt-01", "rt-03"])
    with pytest.raises(AccessDenied) as err:
        dg01.check_rooftops(["rt-01", "rt-51"])
    assert err.value.details == ["rooftop 'rt-51' is not one of this key's rooftops"]
    assert dg01.may_see_rooftop("rt-03") and not bdc.may_see_rooftop("rt-03")
    with pytest.raises(AccessDenied, match="rooftop 'rt-01' is not one of this key's rooftops"):
        bdc.check_rooftops(["rt-01"])


def test_events_of_another_group_or_rooftop_are_refused_by_row(
    registry: TenantRegistry, keys: dict[str, str]
) -> None:
    bdc = registry.authenticate(keys["dg01-lakeside-bdc"])
    assert bdc is not None
    events = pd.DataFrame(
        {
            "dealer_group_id": ["dg-01", "dg-02", "dg-01", "dg-01"],
            "rooftop_id": ["rt-02", "rt-51", "rt-01", "rt-02"],
        }
    )
    with pytest.raises(AccessDenied) as err:
        bdc.check_events(events)
    assert err.value.details == [
        "row 2: dealer_group_id 'dg-02' is not this key's dealer group",
        "row 3: rooftop_id 'rt-01' is not one of this key's rooftops",
    ]
    bdc.check_events(events.iloc[[0, 3]])


def test_customers_are_allowed_forbidden_or_unknown(
    registry: TenantRegistry, keys: dict[str, str], tmp_path: Path
) -> None:
    def event(i: int, group: str, rooftop: str, customer: str) -> dict[str, Any]:
        return {
            "event_id": f"e-{i}", "dealer_group_id": group, "rooftop_id": rooftop,
            "customer_id": customer, "ts": "2025-03-01T10:00:00Z", "event_type": "lead_form",
        }  # fmt: skip

    with SqliteEventStore(tmp_path / "events.db") as store:
        store.append(
            pd.DataFrame(
                [
                    event(1, "dg-01", "rt-01", "c-ours"),
                    event(2, "dg-01", "rt-03", "c-ours"),
                    event(3, "dg-01", "rt-01", "c-store-one"),
                    event(4, "dg-02", "rt-51", "c-theirs"),
                    event(5, "dg-02", "rt-51", "c-both"),
                    event(6, "dg-01", "rt-02", "c-both"),
                ]
            )
        )
        asked = ["c-ours", "c-theirs", "c-store-one", "c-both", "c-nobody"]
        holdings = store.customer_rooftops(asked)
    dg01 = registry.authenticate(keys["dg01-crm"])
    bdc = registry.authenticate(keys["dg01-lakeside-bdc"])
    dg02 = registry.authenticate(keys["dg02-crm"])
    assert dg01 is not None and bdc is not None and dg02 is not None
    assert dg01.check_customers(holdings, asked) == CustomerAccess(
        allowed=("c-ours", "c-store-one", "c-both"),
        forbidden=("c-theirs",),
        unknown=("c-nobody",),
    )
    assert bdc.check_customers(holdings, asked) == CustomerAccess(
        allowed=("c-both",),
        forbidden=("c-ours", "c-theirs", "c-store-one"),
        unknown=("c-nobody",),
    )
    assert dg02.check_customers(holdings, asked).allowed == ("c-theirs", "c-both")


def test_keys_are_stored_only_as_hashes_and_never_logged(
    tenants_file: Path, keys: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="cjm_ml")
    text = tenants_file.read_text()
    assert all(k not in text for k in keys.values())
    new_key = add_api_key(tenants_file, "dg-02", "dg02-service", rooftops=["rt-51"])
    assert new_key.startswith("cjm.dg02-service.") and new_key not in tenants_file.read_text()
    assert hash_api_key(new_key) in tenants_file.read_text()

    registry = load_tenants(tenants_file, environ=ENV)
    principal = registry.authenticate(new_key)
    assert principal is not None and principal.dealer_group_id == "dg-02"
    assert registry.authenticate(new_key + "x") is None
    shown = repr(principal) + repr(registry.tenants) + str(registry.webhook_targets())
    logged = caplog.text
    for secret in [*keys.values(), new_key, SECRET_VALUE, ENV["CJM_DG01_CRM_SECRET"]]:
        assert secret not in shown
        assert secret not in logged
    assert hash_api_key(new_key) not in shown


def test_add_api_key_refuses_a_used_key_id_and_unknown_group(tenants_file: Path) -> None:
    before = tenants_file.read_text()
    with pytest.raises(TenantConfigError, match="key_id used twice: \\['dg01-crm'\\]"):
        add_api_key(tenants_file, "dg-02", "dg01-crm")
    with pytest.raises(TenantConfigError, match="no dealer group 'dg-07'"):
        add_api_key(tenants_file, "dg-07", "dg07-crm")
    with pytest.raises(TenantConfigError, match="rooftops outside the group: \\['rt-01'\\]"):
        add_api_key(tenants_file, "dg-02", "dg02-x", rooftops=["rt-01"])
    assert tenants_file.read_text() == before
    with pytest.raises(ValueError, match="key_id 'Bad Id' must be"):
        generate_api_key("Bad Id")


def test_webhook_targets_resolve_secrets_from_the_environment(registry: TenantRegistry) -> None:
    assert registry.webhook_targets() == {
        "dg-01": WebhookTarget(
            "https://crm.example.com/hooks/cjm", ENV["CJM_DG01_CRM_SECRET"], timeout_s=4.0
        ),
        "dg-02": WebhookTarget("http://127.0.0.1:9/hooks", SECRET_VALUE, timeout_s=10.0),
    }


def test_toml_tenants_file(tmp_path: Path) -> None:
    key, entry = generate_api_key("dg01-crm")
    path = tmp_path / "tenants.toml"
    path.write_text(
        '[[dealer_groups]]\ndealer_group_id = "dg-01"\nrooftops = ["rt-01"]\n'
        f'[[dealer_groups.api_keys]]\nkey_id = "dg01-crm"\nhash = "{entry.hash}"\n'
    )
    principal = load_tenants(path, environ={}).authenticate(key)
    assert isinstance(principal, Principal) and principal.rooftops == frozenset({"rt-01"})


def _config(**crm: Any) -> dict[str, Any]:
    return {"dealer_groups": [{"dealer_group_id": "dg-01", "rooftops": ["rt-01"], "crm": crm}]}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "tenants.json: not valid JSON: Expecting property name"),
        (
            json.dumps(_config(url="https://x.example", secret="s" * 20, secret_env="CJM_S")),
            "dealer_groups.0.crm: Value error, give exactly one of secret",
        ),
        (
            json.dumps(_config(url="not a url", secret="short")),
            "dealer_groups.0.crm.url: Input should be a valid URL",
        ),
        (
            json.dumps(_config(url="https://x.example", secret="short")),
            "secret must be at least 16 characters",
        ),
        (
            json.dumps({"dealer_groups": [{"dealer_group_id": "dg-01", "rooftops": []}]}),
            "dealer_groups.0.rooftops: Tuple should have at least 1 item",
        ),
        (
            json.dumps(
                {"dealer_groups": [{"dealer_group_id": "dg-01", "rooftops": ["rt-01"],
                                    "api_keys": [{"key_id": "k", "hash": "md5:abc"}]}]}
            ),
            "dealer_groups.0.api_keys.0.hash: String should match pattern",
        ),
        (
            json.dumps({"dealer_groups": [{"dealer_group_id": "dg-01", "rooftops": ["rt-01"]},
                                          {"dealer_group_id": "dg-01", "rooftops": ["rt-02"]}]}),
            "dealer_group_id listed twice: ['dg-01']",
        ),
        (
            json.dumps(_config(url="https://x.example", secret_env="CJM_NOT_SET")),
            "dg-01: crm.secret_env CJM_NOT_SET is not set",
        ),
    ],
)  # fmt: skip
def test_config_errors_name_the_field_and_never_echo_secrets(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "tenants.json"
    path.write_text(content)
    with pytest.raises(TenantConfigError) as err:
        load_tenants(path, environ={})
    assert message in str(err.value)
    assert "short" not in str(err.value) and "s" * 20 not in str(err.value)


def test_missing_tenants_file(tmp_path: Path) -> None:
    with pytest.raises(TenantConfigError, match="no such tenants file"):
        load_tenants(tmp_path / "nope.json")
    (tmp_path / "t.yaml").write_text("x")
    with pytest.raises(TenantConfigError, match=r"unsupported file type '\.yaml'"):
        load_tenants(tmp_path / "t.yaml")
