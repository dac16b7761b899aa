"""Dealer groups as tenants: their rooftops, API keys (hashed at rest) and CRM webhook.

The tenants file (JSON or TOML) lists each dealer group::

    {"dealer_groups": [{
        "dealer_group_id": "dg-01",
        "rooftops": ["rt-01", "rt-02"],
        "api_keys": [
            {"key_id": "dg01-crm", "hash": "sha256:<64 hex>"},
            {"key_id": "dg01-lakeside-bdc", "hash": "sha256:<64 hex>", "rooftops": ["rt-02"]}
        ],
        "crm": {"url": "https://crm.example.com/hooks/cjm", "secret_env": "CJM_DG01_CRM_SECRET",
                "timeout_s": 10}
    }]}

API keys look like ``cjm.<key_id>.<secret>``: the key id is public and finds the entry, the
secret is 256 random bits. Only ``sha256:`` of the whole key is stored. A slow password hash
(scrypt, bcrypt) protects guessable passwords; a 256-bit random key cannot be guessed, so
SHA-256 is as safe here and keeps every request's check to microseconds. Digests are compared
with ``hmac.compare_digest``; unknown key ids are compared against a dummy digest so a refusal
takes the same time either way. Keys never appear in logs, errors or reprs.

A key sees its dealer group's rooftops, or the subset listed on the key (a rooftop's BDC).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import pandas as pd
from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from cjm_ml.io import write_json_atomic
from cjm_ml.serving.outbox import WebhookTarget

log = logging.getLogger(__name__)

KEY_PREFIX = "cjm"
KEY_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
_HASH_PATTERN = r"^sha256:[0-9a-f]{64}$"
#: Compared against when a key id is unknown, so refusals take the same time.
_DUMMY_HASH = "sha256:" + "0" * 64


class TenantConfigError(ValueError):
    """The tenants file is missing, unreadable or breaks a rule; names file and field."""


class AccessDenied(PermissionError):
    """A key asked for rooftops, customers or events outside its scope (HTTP 403).

    ``details`` holds one line per refused item, safe to return to the caller: it names only
    what the caller sent, never what another dealer group holds.
    """

    def __init__(self, details: list[str]) -> None:
        self.details = details
        super().__init__("; ".join(details))


class ApiKey(BaseModel):
    """One API key of a dealer group: its public id, the hash of the key, optional rooftops."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key_id: str = Field(pattern=KEY_ID_PATTERN)
    hash: str = Field(pattern=_HASH_PATTERN, repr=False)
    rooftops: tuple[str, ...] | None = None


class CrmWebhook(BaseModel):
    """Where a dealer group's CRM takes risk updates, the signing secret and the timeout."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: AnyHttpUrl
    secret: SecretStr | None = None
    secret_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    timeout_s: float = Field(default=10.0, gt=0, le=120)

    @model_validator(mode="after")
    def _one_secret(self) -> Self:
        if (self.secret is None) == (self.secret_env is None):
            raise ValueError("give exactly one of secret (the value) or secret_env (a variable)")
        if self.secret is not None and len(self.secret.get_secret_value()) < 16:
            raise ValueError("secret must be at least 16 characters")
        return self


class Tenant(BaseModel):
    """A dealer group: its id, rooftops, API keys and CRM webhook."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    dealer_group_id: str = Field(min_length=1)
    rooftops: tuple[str, ...] = Field(min_length=1)
    api_keys: tuple[ApiKey, ...] = ()
    crm: CrmWebhook | None = None

    @field_validator("rooftops")
    @classmethod
    def _distinct_rooftops(cls, rooftops: tuple[str, ...]) -> tuple[str, ...]:
        if any(not r.strip() for r in rooftops):
            raise ValueError("rooftop ids must not be empty")
        if len(set(rooftops)) != len(rooftops):
            raise ValueError("rooftops are listed twice")
        return rooftops

    @model_validator(mode="after")
    def _keys_within_group(self) -> Self:
        for key in self.api_keys:
            outside = sorted(set(key.rooftops or ()) - set(self.rooftops))
            if outside:
                raise ValueError(
                    f"api key {key.key_id!r} names rooftops outside the group: {outside}"
                )
            if key.rooftops is not None and not key.rooftops:
                raise ValueError(f"api key {key.key_id!r} has an empty rooftops list")
        return self


class TenantsConfig(BaseModel):
    """The whole tenants file: every dealer group the service serves."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    dealer_groups: tuple[Tenant, ...]

    @model_validator(mode="after")
    def _unique_ids(self) -> Self:
        groups = [t.dealer_group_id for t in self.dealer_groups]
        if len(set(groups)) != len(groups):
            raise ValueError(f"dealer_group_id listed twice: {_repeated(groups)}")
        keys = [k.key_id for t in self.dealer_groups for k in t.api_keys]
        if len(set(keys)) != len(keys):
            raise ValueError(f"key_id used twice: {_repeated(keys)}")
        return self


@dataclass(frozen=True)
class CustomerAccess:
    """Requested customers sorted by what this key may do with them."""

    allowed: tuple[str, ...]
    #: held by another dealer group, or only at rooftops this key does not cover (403)
    forbidden: tuple[str, ...]
    #: no events anywhere in the store (404)
    unknown: tuple[str, ...]


@dataclass(frozen=True)
class Principal:
    """Who a request is from: the dealer group, the key id and the rooftops it may touch."""

    tenant: Tenant
    key_id: str
    rooftops: frozenset[str]

    @property
    def dealer_group_id(self) -> str:
        """The key's dealer group."""
        return self.tenant.dealer_group_id

    def may_see_rooftop(self, rooftop_id: str) -> bool:
        """Whether this key covers ``rooftop_id``."""
        return rooftop_id in self.rooftops

    def check_rooftops(self, rooftops: Iterable[str]) -> None:
        """Raise ``AccessDenied`` naming each rooftop this key does not cover."""
        refused = sorted(set(rooftops) - self.rooftops)
        if refused:
            raise AccessDenied(
                [f"rooftop {r!r} is not one of this key's rooftops" for r in refused]
            )

    def check_events(self, events: pd.DataFrame) -> None:
        """Raise ``AccessDenied`` naming each row (1-based) of another group or rooftop."""
        groups = events["dealer_group_id"].astype("string")
        rooftops = events["rooftop_id"].astype("string")
        other_group = (groups != self.dealer_group_id).fillna(False).to_numpy(bool)
        other_rooftop = (~rooftops.isin(self.rooftops)).to_numpy(bool) & ~other_group
        refused = [
            (i, f"dealer_group_id {groups.iloc[i]!r} is not this key's dealer group")
            for i in other_group.nonzero()[0].tolist()
        ] + [
            (i, f"rooftop_id {rooftops.iloc[i]!r} is not one of this key's rooftops")
            for i in other_rooftop.nonzero()[0].tolist()
        ]
        if refused:
            raise AccessDenied([f"row {i + 1}: {why}" for i, why in sorted(refused)])

    def check_customers(
        self, holdings: Iterable[tuple[str, str, str]], customer_ids: Iterable[str]
    ) -> CustomerAccess:
        """Sort ``customer_ids`` into allowed, forbidden and unknown for this key.

        ``holdings`` is ``EventStore.customer_rooftops(customer_ids)``: the (customer, dealer
        group, rooftop) triples where each customer has events. A customer is allowed when it
        has an event in this key's group at one of the key's rooftops (its events at the
        group's other rooftops come with it).
        """
        ids = list(dict.fromkeys(customer_ids))
        known: set[str] = set()
        allowed_set: set[str] = set()
        for customer, group, rooftop in holdings:
            known.add(customer)
            if group == self.dealer_group_id and rooftop in self.rooftops:
                allowed_set.add(customer)
        return CustomerAccess(
            allowed=tuple(c for c in ids if c in allowed_set),
            forbidden=tuple(c for c in ids if c in known and c not in allowed_set),
            unknown=tuple(c for c in ids if c not in known),
        )


class TenantRegistry:
    """Every dealer group the service serves, with key lookup and resolved webhook secrets."""

    def __init__(self, config: TenantsConfig, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.config = config
        self._tenants = {t.dealer_group_id: t for t in config.dealer_groups}
        self._keys = {k.key_id: (t, k) for t in config.dealer_groups for k in t.api_keys}
        self._secrets: dict[str, SecretStr] = {}
        missing = []
        for t in config.dealer_groups:
            if t.crm is None:
                continue
            if t.crm.secret is not None:
                self._secrets[t.dealer_group_id] = t.crm.secret
            elif t.crm.secret_env in env:
                self._secrets[t.dealer_group_id] = SecretStr(env[str(t.crm.secret_env)])
            else:
                missing.append(f"{t.dealer_group_id}: crm.secret_env {t.crm.secret_env} is not set")
        if missing:
            raise TenantConfigError("; ".join(missing))

    @property
    def tenants(self) -> tuple[Tenant, ...]:
        """The dealer groups, in file order."""
        return self.config.dealer_groups

    def tenant(self, dealer_group_id: str) -> Tenant:
        """A dealer group by id; ``KeyError`` names an unknown one."""
        try:
            return self._tenants[dealer_group_id]
        except KeyError:
            raise KeyError(f"unknown dealer group {dealer_group_id!r}") from None

    def authenticate(self, api_key: str | None) -> Principal | None:
        """The principal a presented key stands for, or None when it is missing or wrong (401)."""
        if not api_key:
            return None
        parts = api_key.split(".")
        entry = self._keys.get(parts[1]) if len(parts) == 3 and parts[0] == KEY_PREFIX else None
        expected = entry[1].hash if entry is not None else _DUMMY_HASH
        matches = hmac.compare_digest(hash_api_key(api_key), expected)
        if entry is None or not matches:
            log.info("refused an API key")
            return None
        tenant, key = entry
        return Principal(
            tenant=tenant,
            key_id=key.key_id,
            rooftops=frozenset(key.rooftops if key.rooftops is not None else tenant.rooftops),
        )

    def webhook_targets(self) -> dict[str, WebhookTarget]:
        """Dealer group id -> CRM webhook with its secret resolved (groups with a CRM only)."""
        return {
            t.dealer_group_id: WebhookTarget(
                url=str(t.crm.url),
                secret=self._secrets[t.dealer_group_id].get_secret_value(),
                timeout_s=t.crm.timeout_s,
            )
            for t in self.config.dealer_groups
            if t.crm is not None
        }


def hash_api_key(api_key: str) -> str:
    """The stored form of a key: ``sha256:`` and the hex digest of the whole key."""
    return "sha256:" + hashlib.sha256(api_key.encode("utf-8")).hexdigest()


def generate_api_key(key_id: str, rooftops: Iterable[str] | None = None) -> tuple[str, ApiKey]:
    """A new key: the plaintext to hand over once, and the entry (hash only) to store."""
    if not re.fullmatch(KEY_ID_PATTERN, key_id):
        raise ValueError(
            f"key_id {key_id!r} must be 1-63 lowercase letters, digits or '-', "
            "starting with a letter or digit"
        )
    plaintext = f"{KEY_PREFIX}.{key_id}.{secrets.token_urlsafe(32)}"
    entry = ApiKey(
        key_id=key_id,
        hash=hash_api_key(plaintext),
        rooftops=tuple(rooftops) if rooftops is not None else None,
    )
    return plaintext, entry


def load_tenants(path: Path, environ: Mapping[str, str] | None = None) -> TenantRegistry:
    """Read and check a tenants file (.json or .toml); ``TenantConfigError`` names the problem."""
    return TenantRegistry(_parse(path, _read(path)), environ)


def add_api_key(
    path: Path, dealer_group_id: str, key_id: str, rooftops: Iterable[str] | None = None
) -> str:
    """Add a new key to a dealer group in a JSON tenants file (atomically); return the key.

    The plaintext is returned once and stored nowhere; only its hash goes into the file.
    """
    if path.suffix.lower() != ".json":
        raise TenantConfigError(
            f"{path}: keys can only be added to a .json tenants file; for TOML, add the "
            "entry from generate_api_key by hand"
        )
    raw = _read(path)
    config = _parse(path, raw)
    if dealer_group_id not in {t.dealer_group_id for t in config.dealer_groups}:
        raise TenantConfigError(f"{path}: no dealer group {dealer_group_id!r}")
    plaintext, entry = generate_api_key(key_id, rooftops)
    for group in raw["dealer_groups"]:
        if group.get("dealer_group_id") == dealer_group_id:
            group.setdefault("api_keys", []).append(entry.model_dump(exclude_none=True))
    _parse(path, raw)  # the new key must keep the file valid (unique key id, known rooftops)
    write_json_atomic(raw, path)
    log.info("added API key %s to dealer group %s", key_id, dealer_group_id)
    return plaintext


def _read(path: Path) -> dict[str, Any]:
    """The tenants file as a dict; unreadable or malformed files raise ``TenantConfigError``."""
    if not path.exists():
        raise TenantConfigError(f"{path}: no such tenants file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".json":
            raw = json.loads(path.read_text("utf-8"))
        elif suffix == ".toml":
            raw = tomllib.loads(path.read_text("utf-8"))
        else:
            raise TenantConfigError(f"{path}: unsupported file type {suffix!r}; use .json or .toml")
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise TenantConfigError(f"{path}: not valid {suffix[1:].upper()}: {exc}") from None
    if not isinstance(raw, dict):
        raise TenantConfigError(f"{path}: expected an object with a dealer_groups list")
    return raw


def _parse(path: Path, raw: dict[str, Any]) -> TenantsConfig:
    """Validate a tenants dict; errors name the field but never echo values (secrets)."""
    try:
        return TenantsConfig.model_validate(raw)
    except ValidationError as exc:
        lines = [
            f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors()
        ]
        raise TenantConfigError(f"{path}: " + "; ".join(lines)) from None


def _repeated(values: list[str]) -> list[str]:
    """Values that occur more than once, sorted."""
    return sorted({v for v in values if values.count(v) > 1})
