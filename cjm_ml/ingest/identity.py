"""Identity and privacy at the edge: contact details hashed, one ``customer_id`` per person.

**Normalisation** (vectorised over pandas or pyarrow string columns; a value that cannot be
one of its kind becomes missing):

- ``normalise_email``: trimmed and lower-cased, nothing more. Provider rules (Gmail ignoring
  dots and ``+tags``) are not guessed: ``j.doe@gmail.com`` and ``jdoe@gmail.com`` stay two
  keys, a missed join rather than a wrong one.
- ``normalise_phone``: E.164 (``+15551234567``). ``+`` or ``00`` starts an international
  number; otherwise the default country code is added (NANP: 10 digits, or 11 starting with 1;
  elsewhere one trunk ``0`` is dropped). Extensions (``x12``, ``ext. 12``) are dropped.
- ``normalise_name``: accents and case removed, apostrophes dropped, other punctuation and
  runs of whitespace made one space (``"  Zoë  O'Brien-Lee"`` -> ``"zoe obrien lee"``).

**Hashing**: ``hash_pii`` gives the hex HMAC-SHA256 of ``kind`` and the normalised value under
the secret salt ``CJM_PII_SALT`` (``pii_salt``), so an email and a phone never share a hash and
nobody without the salt can test a guess. Nothing in clear is logged or put in an error message:
errors name the row and column, never the value.

**The identity map** (``IdentityMap``, one Parquet file per dealer group under
``data/identity/``, written atomically) gives each record a ``customer_id``: records sharing a
key are one customer (the union of matches), ids already in the map are reused, and new ids
(``cu-00000001``, a counter, nothing derived from personal data) are issued otherwise. A record
that joins two existing customers merges them into the older id and the merge is reported
(which keys joined which ids); the merged id stays in the map, pointing at the survivor. A map
belongs to one dealer group and refuses any other group's records.

**The VIN rule.** Email, phone, DMS customer number, web visitor id and source-system id are
strong keys: they join unconditionally. A VIN is weak, because cars are sold on: it never joins
two records that carry strong keys of their own (two owners of one car stay two customers
however close their visits; the VIN is remembered on both). Records whose sole key is a VIN
chain by VIN (consecutive sightings within ``vin_window``, default 365 days), and each chain
joins the customer seen with that VIN nearest to it in time, within the window; otherwise the
chain is a new customer. A VIN-only record must carry its time (``ts``).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeAlias

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from cjm_ml.config import Settings
from cjm_ml.io import read_parquet_metadata, write_parquet_atomic

log = logging.getLogger(__name__)

PiiKind = Literal["email", "phone", "name"]
StringValues: TypeAlias = pd.Series | pa.Array | pa.ChunkedArray
#: The shortest salt accepted: anything shorter is a placeholder, not a secret.
MIN_SALT_LENGTH = 16
#: Key columns a batch may carry; all but ``vin`` are strong (see the module docstring).
STRONG_KEYS: tuple[str, ...] = (
    "email_hash",
    "phone_hash",
    "dms_customer_number",
    "web_visitor_id",
    "source_id",
)
KEY_KINDS: tuple[str, ...] = (*STRONG_KEYS, "vin")
#: The map's ``key_kind`` of a merged-away customer id (its ``key_value``; the survivor's id
#: is in ``customer_id``).
MERGED = "merged_customer_id"
MAP_COLUMNS: tuple[str, ...] = ("key_kind", "key_value", "customer_id", "first_seen", "last_seen")
CUSTOMER_ID_PREFIX = "cu-"
DEFAULT_VIN_WINDOW = pd.Timedelta(days=365)
#: How many rows an error message names before it counts the rest.
ERROR_ROWS = 5
_LARGE = pa.large_string()
_ARROW_STRINGS = {pa.string(): pd.StringDtype("pyarrow"), _LARGE: pd.StringDtype("pyarrow")}
_GROUP_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


class IdentityError(ValueError):
    """A batch or map the identity step refuses; the message never holds personal data."""


class MissingSaltError(IdentityError):
    """``CJM_PII_SALT`` is missing or too short to be a secret."""


class CrossGroupError(IdentityError):
    """Records of one dealer group offered to another group's identity map."""


# --- normalisation -------------------------------------------------------------------------


def _arrow(values: StringValues) -> pa.ChunkedArray:
    if isinstance(values, pd.Series):
        values = pa.array(values.astype("string[pyarrow]").array)
    chunked = values if isinstance(values, pa.ChunkedArray) else pa.chunked_array([values])
    return pc.cast(chunked, _LARGE)


def _series(arr: pa.ChunkedArray, like: StringValues) -> pd.Series:
    index = like.index if isinstance(like, pd.Series) else None
    name = like.name if isinstance(like, pd.Series) else None
    return pd.Series(pd.arrays.ArrowStringArray(arr), index=index, name=name)


def _where(mask: pa.ChunkedArray, arr: pa.ChunkedArray) -> pa.ChunkedArray:
    return pc.if_else(mask, arr, pa.scalar(None, _LARGE))


def _join(*parts: pa.ChunkedArray | str) -> pa.ChunkedArray:
    args = [pa.scalar(p, _LARGE) if isinstance(p, str) else p for p in parts]
    return pc.binary_join_element_wise(*args, pa.scalar("", _LARGE))


def normalise_email(values: StringValues) -> pd.Series:
    """Emails trimmed and lower-cased; missing where a value is not ``local@domain.tld``."""
    arr = pc.utf8_lower(pc.utf8_trim_whitespace(_arrow(values)))
    return _series(
        _where(pc.match_substring_regex(arr, r"^[^@\s]+@[^@\s]+\.[^@\s.]+$"), arr), values
    )


def normalise_phone(values: StringValues, country_code: str = "1") -> pd.Series:
    """Phones as E.164 (``+15551234567``), ``country_code`` for national numbers; missing where
    a value has fewer than 8 or more than 15 digits. Refuses a country code that is not 1-3
    digits."""
    if not re.fullmatch(r"[1-9]\d{0,2}", country_code):
        raise ValueError(f"country_code must be 1 to 3 digits, not {country_code!r}")
    arr = pc.utf8_lower(pc.utf8_trim_whitespace(_arrow(values)))
    arr = pc.replace_substring_regex(arr, r"\s*(?:ext\.?|x|#)\s*\d+$", "")
    double_zero = pc.starts_with(arr, "00")
    international = pc.or_(pc.starts_with(arr, "+"), double_zero)
    digits = pc.replace_substring_regex(arr, r"\D", "")
    digits = pc.if_else(double_zero, pc.utf8_slice_codeunits(digits, 2), digits)
    if country_code == "1":
        n = pc.utf8_length(digits)
        eleven = pc.and_(pc.equal(n, 11), pc.starts_with(digits, "1"))
        national = pc.if_else(pc.equal(n, 10), _join("1", digits), _where(eleven, digits))
    else:
        national = _join(country_code, pc.replace_substring_regex(digits, r"^0", ""))
    e164 = pc.if_else(international, digits, national)
    n = pc.utf8_length(e164)
    valid = pc.fill_null(pc.and_(pc.greater_equal(n, 8), pc.less_equal(n, 15)), False)
    return _series(_where(valid, _join("+", e164)), values)


def normalise_name(values: StringValues) -> pd.Series:
    """Names without accents, case, apostrophes or extra whitespace; missing where empty."""
    arr = pc.replace_substring_regex(pc.utf8_normalize(_arrow(values), form="NFKD"), r"\pM+", "")
    arr = pc.replace_substring_regex(pc.utf8_lower(arr), r"['’`]", "")
    arr = pc.utf8_trim_whitespace(pc.replace_substring_regex(arr, r"[^\pL\pN]+", " "))
    return _series(_where(pc.greater(pc.utf8_length(arr), 0), arr), values)


# --- hashing -------------------------------------------------------------------------------


def pii_salt(settings: Settings) -> str:
    """The salt from ``CJM_PII_SALT``; refuses to go on without one (or with a short one)."""
    secret = settings.pii_salt.get_secret_value() if settings.pii_salt else ""
    return _checked_salt(secret)


def _checked_salt(salt: str) -> str:
    if len(salt) < MIN_SALT_LENGTH:
        state = "is not set" if not salt else f"is shorter than {MIN_SALT_LENGTH} characters"
        raise MissingSaltError(
            f"CJM_PII_SALT {state}: ingest replaces emails, phones and names with salted hashes "
            f"and will not run without a secret salt. Set CJM_PII_SALT (environment or .env) to "
            f"a random string of at least {MIN_SALT_LENGTH} characters, and keep it: another "
            "salt gives every customer new hashes."
        )
    return salt


def _normaliser(kind: PiiKind, country_code: str) -> Callable[[StringValues], pd.Series]:
    if kind == "email":
        return normalise_email
    if kind == "phone":
        return lambda values: normalise_phone(values, country_code)
    if kind == "name":
        return normalise_name
    raise ValueError(f"unknown personal-data kind {kind!r}: expected email, phone or name")


def hash_pii(
    values: StringValues, kind: PiiKind, salt: str, *, country_code: str = "1"
) -> pd.Series:
    """Hex HMAC-SHA256 of each value, normalised as ``kind``, under ``salt`` and ``kind``;
    missing where a value does not normalise. Refuses a missing or short salt."""
    normalised = _normaliser(kind, country_code)(values)
    keyed = hmac.new(_checked_salt(salt).encode(), f"{kind}\x1f".encode(), hashlib.sha256)
    codes, uniques = pd.factorize(normalised)
    digests = []
    for value in uniques:
        h = keyed.copy()
        h.update(value.encode())
        digests.append(h.hexdigest())
    hashed = pd.array([*digests, None], dtype="string[pyarrow]")
    return pd.Series(hashed.take(codes), index=normalised.index, name=normalised.name)


def pseudonymise(
    frame: pd.DataFrame,
    columns: Mapping[str, PiiKind],
    salt: str,
    *,
    country_code: str = "1",
    on_invalid: Literal["raise", "drop"] = "raise",
) -> pd.DataFrame:
    """``frame`` with each of ``columns`` replaced by ``<column>_hash`` (see ``hash_pii``).

    A value present but not a valid email/phone/name is refused (``on_invalid="raise"``: the
    error names the column and 1-based rows, never the value) or left missing with a warning
    that counts it (``"drop"``). Refuses a column that is not in ``frame``."""
    out = frame.copy()
    for column, kind in columns.items():
        if column not in out.columns:
            raise IdentityError(f"column {column!r} ({kind}) is not in the input")
        hashed = hash_pii(out[column], kind, salt, country_code=country_code)
        given = out[column].notna() & (out[column].astype("string").str.strip() != "")
        bad = np.flatnonzero((given & hashed.isna()).to_numpy(dtype=bool))
        if len(bad):
            where = _rows(bad)
            if on_invalid == "raise":
                raise IdentityError(f"column {column!r}: not a valid {kind} in {where}")
            log.warning(
                "column %r: %d value(s) not a valid %s, left missing (%s)",
                column,
                len(bad),
                kind,
                where,
            )
        position = out.columns.get_loc(column)
        out = out.drop(columns=column)
        out.insert(position, f"{column}_hash", hashed)
    return out


def _rows(positions: np.ndarray) -> str:
    """``row 3`` / ``rows 3, 7 and 12 more``: 1-based, the first ``ERROR_ROWS``."""
    shown = ", ".join(str(int(p) + 1) for p in positions[:ERROR_ROWS])
    more = f" and {len(positions) - ERROR_ROWS:,} more" if len(positions) > ERROR_ROWS else ""
    return f"row{'s' if len(positions) > 1 else ''} {shown}{more}"


# --- the identity map ----------------------------------------------------------------------


@dataclass(frozen=True)
class Resolution:
    """What one batch resolved to.

    ``customer_ids`` is aligned with the batch's index; ``conflicts`` has one row per batch key
    that matched an existing customer in a merge: ``customer_id`` (the id the key matched),
    ``merged_into`` (the surviving id), ``key_kind``, ``key_value`` (hashed or an id, never a
    clear contact detail) and ``first_row`` (1-based, the first batch row carrying the key)."""

    customer_ids: pd.Series
    new_customers: int
    merged_customers: int
    conflicts: pd.DataFrame


@dataclass(frozen=True)
class _Keys:
    """A batch's keys, long: one row per (record, key) present."""

    row: np.ndarray
    kind: np.ndarray
    value: pd.Series
    #: The record's time, UTC without zone (``NaT`` where unknown).
    ts: np.ndarray


class IdentityMap:
    """One dealer group's persistent map from keys to ``customer_id``; see the module docstring.

    Open it with ``IdentityMap.open``; ``assign`` resolves a batch and writes the map."""

    def __init__(
        self,
        path: Path,
        dealer_group_id: str,
        table: pd.DataFrame,
        *,
        vin_window: pd.Timedelta = DEFAULT_VIN_WINDOW,
    ) -> None:
        self.path = path
        self.dealer_group_id = dealer_group_id
        self.table = table
        self.vin_window = vin_window

    @classmethod
    def open(
        cls,
        data_dir: Path,
        dealer_group_id: str,
        *,
        vin_window: pd.Timedelta = DEFAULT_VIN_WINDOW,
    ) -> IdentityMap:
        """The map of ``dealer_group_id`` under ``data_dir/identity/`` (empty if none yet).

        Refuses a group id that is not a plain name and a file written for another group."""
        if not _GROUP_ID.fullmatch(dealer_group_id):
            raise IdentityError(f"dealer group id {dealer_group_id!r} is not a plain name")
        path = data_dir / "identity" / f"{dealer_group_id}.parquet"
        if not path.exists():
            return cls(path, dealer_group_id, _empty_table(), vin_window=vin_window)
        owner = read_parquet_metadata(path).get("dealer_group_id")
        if owner != dealer_group_id:
            raise CrossGroupError(
                f"{path} is the identity map of group {owner!r}, not {dealer_group_id!r}"
            )
        table = pd.read_parquet(path)
        return cls(path, dealer_group_id, _typed(table), vin_window=vin_window)

    def assign(self, batch: pd.DataFrame) -> Resolution:
        """Each record's ``customer_id``, the map updated and written (only if it changed).

        ``batch`` carries ``dealer_group_id`` and any of ``KEY_KINDS`` (``source_id`` with its
        ``source``), and ``ts`` (UTC) for VINs. Refuses another group's rows, a record with no
        key, and a VIN-only record without ``ts``; errors name rows and columns only."""
        keys = _batch_keys(batch, self.dealer_group_id)
        n = len(batch)
        labels, customers = self._components(keys, n)
        labels = self._attach_by_vin(keys, labels, customers, n)
        ids, survivors, new = self._customer_ids(labels, customers)
        conflicts = _conflicts(keys, self.table, survivors)
        table = self._updated(keys, ids, survivors)
        if not table.equals(self.table):
            write_parquet_atomic(table, self.path, {"dealer_group_id": self.dealer_group_id})
            self.table = table
        if len(survivors):
            log.warning(
                "identity map %s: %d customer(s) merged into others by shared keys (%s)",
                self.dealer_group_id,
                len(survivors),
                ", ".join(sorted(set(conflicts["key_kind"]))),
            )
        log.info("identity map %s: %d record(s), %d new customer(s)", self.dealer_group_id, n, new)
        return Resolution(
            customer_ids=ids.set_axis(batch.index).rename("customer_id"),
            new_customers=new,
            merged_customers=len(survivors),
            conflicts=conflicts,
        )

    def _next_number(self) -> int:
        ids = pd.concat(
            [
                self.table["customer_id"],
                self.table.loc[self.table["key_kind"] == MERGED, "key_value"],
            ]
        )
        numbers = pd.to_numeric(ids.str.removeprefix(CUSTOMER_ID_PREFIX), errors="coerce")
        return int(numbers.max()) + 1 if numbers.notna().any() else 1

    def _components(self, keys: _Keys, n: int) -> tuple[np.ndarray, pd.DataFrame]:
        """Record labels after joining on strong keys (with the map's customers as nodes),
        and the map customers involved (``customer_id``, ``label``, ``number``)."""
        table = self.table
        src: list[np.ndarray] = []
        dst: list[np.ndarray] = []
        matched: list[pd.Series] = []
        offset = n
        for code, kind in enumerate(STRONG_KEYS):
            sel = keys.kind == code
            if not sel.any():
                continue
            codes, uniques = pd.factorize(keys.value[sel])
            src.append(keys.row[sel])
            dst.append(offset + codes)
            known = table[table["key_kind"] == kind]
            hit = pd.Index(known["key_value"]).get_indexer(uniques)
            found = np.flatnonzero(hit >= 0)
            matched.append(
                pd.Series(
                    known["customer_id"].to_numpy()[hit[found]], index=offset + found, dtype=object
                )
            )
            offset += len(uniques)
        vins = keys.value[keys.kind == KEY_KINDS.index("vin")]
        vin_rows = table[(table["key_kind"] == "vin") & _isin(table["key_value"], vins)]
        key_to_customer = pd.concat(matched) if matched else pd.Series(dtype=object)
        ids = pd.unique(
            np.concatenate(
                [
                    key_to_customer.to_numpy(dtype=object),
                    vin_rows["customer_id"].to_numpy(dtype=object),
                ]
            )
        )
        customer_node = pd.Series(offset + np.arange(len(ids)), index=ids)
        src.append(key_to_customer.index.to_numpy())
        dst.append(customer_node.loc[key_to_customer.to_numpy()].to_numpy())
        total = offset + len(ids)
        u, v = np.concatenate(src).astype(np.int64), np.concatenate(dst).astype(np.int64)
        graph = coo_matrix((np.ones(len(u), dtype=np.int8), (u, v)), shape=(total, total))
        _, labels = connected_components(graph, directed=False)
        numbers = pd.to_numeric(
            pd.Series(ids, dtype="string").str.removeprefix(CUSTOMER_ID_PREFIX), errors="coerce"
        )
        customers = pd.DataFrame(
            {
                "customer_id": pd.Series(ids, dtype=object),
                "label": labels[customer_node.to_numpy()],
                "number": numbers.to_numpy(),
            }
        )
        return labels[:n], customers

    def _attach_by_vin(
        self, keys: _Keys, labels: np.ndarray, customers: pd.DataFrame, n: int
    ) -> np.ndarray:
        """Labels with VIN-only records attached by the VIN rule (module docstring): they
        chain by VIN (consecutive sightings within the window), and each chain joins the
        customer seen with its VIN nearest in time, within the window, or stays a customer of
        its own."""
        is_vin = keys.kind == KEY_KINDS.index("vin")
        strong = np.bincount(keys.row[~is_vin], minlength=n) > 0
        vin = pd.DataFrame(
            {
                "row": keys.row[is_vin],
                "vin": keys.value[is_vin].to_numpy(dtype=object),
                "ts": keys.ts[is_vin],
            }
        )
        weak = vin[~strong[vin["row"].to_numpy()]].sort_values(["vin", "ts", "row"])
        if weak.empty:
            return labels
        starts = (weak["vin"] != weak["vin"].shift()) | (weak["ts"].diff() > self.vin_window)
        weak = weak.assign(chain=starts.cumsum().to_numpy() - 1)
        chains = weak.groupby("chain", sort=True).agg(
            vin=("vin", "first"), first=("ts", "min"), last=("ts", "max"), head=("row", "first")
        )
        sightings = self._vin_sightings(vin, strong, labels, customers)
        near = chains.reset_index().merge(sightings, on="vin", suffixes=("", "_seen"))
        after, before = near["first"] - near["last_seen"], near["first_seen"] - near["last"]
        distance = np.maximum(after, before)
        near = near.assign(distance=np.maximum(distance, pd.Timedelta(0)))
        near = near[near["distance"] <= self.vin_window]
        near = near.sort_values(["chain", "distance", "label"]).drop_duplicates("chain")
        chain_label = labels[chains["head"].to_numpy()]
        chain_label[near["chain"].to_numpy()] = near["label"].to_numpy()
        labels = labels.copy()
        labels[weak["row"].to_numpy()] = chain_label[weak["chain"].to_numpy()]
        return labels

    def _vin_sightings(
        self, vin: pd.DataFrame, strong: np.ndarray, labels: np.ndarray, customers: pd.DataFrame
    ) -> pd.DataFrame:
        """Per VIN and customer label, the first and last time it was seen: in this batch on
        records with strong keys, and in the map."""
        seen = vin[strong[vin["row"].to_numpy()] & vin["ts"].notna()]
        seen = seen.assign(label=labels[seen["row"].to_numpy()])
        seen = seen.groupby(["vin", "label"], as_index=False).agg(
            first=("ts", "min"), last=("ts", "max")
        )
        known = self.table[self.table["key_kind"] == "vin"].merge(customers, on="customer_id")
        known = pd.DataFrame(
            {
                "vin": known["key_value"].to_numpy(dtype=object),
                "label": known["label"].to_numpy(),
                "first": known["first_seen"].dt.tz_localize(None).to_numpy(),
                "last": known["last_seen"].dt.tz_localize(None).to_numpy(),
            }
        )
        return pd.concat([seen, known.dropna(subset=["first", "last"])], ignore_index=True)

    def _customer_ids(
        self, labels: np.ndarray, customers: pd.DataFrame
    ) -> tuple[pd.Series, dict[str, str], int]:
        """Each record's id (by position), the merges (merged id -> survivor), and how many
        ids are new (numbered in the order of their first record)."""
        oldest = customers.sort_values("number").drop_duplicates("label")
        by_label = pd.Series(oldest["customer_id"].to_numpy(), index=oldest["label"].to_numpy())
        survivor = customers["label"].map(by_label)
        moved = customers["customer_id"] != survivor
        merges = dict(zip(customers.loc[moved, "customer_id"], survivor[moved], strict=True))
        codes, components = pd.factorize(labels)  # in order of first record
        names = pd.Series(components).map(by_label).to_numpy(dtype=object)
        fresh = np.flatnonzero(pd.isna(names))
        start = self._next_number()
        names[fresh] = [f"{CUSTOMER_ID_PREFIX}{start + i:08d}" for i in range(len(fresh))]
        ids = pa.chunked_array([pa.array(names, _LARGE).take(codes)])
        return pd.Series(pd.arrays.ArrowStringArray(ids)), merges, len(fresh)

    def _updated(self, keys: _Keys, ids: pd.Series, merges: dict[str, str]) -> pd.DataFrame:
        """The map with merges applied and this batch's keys added (first and last seen)."""
        old = self.table
        if merges:
            old = old.assign(customer_id=old["customer_id"].replace(merges))
        merged = pd.DataFrame(
            {"key_kind": MERGED, "key_value": list(merges), "customer_id": list(merges.values())}
        )
        kinds = pd.Categorical.from_codes(keys.kind, categories=list(KEY_KINDS))
        batch = pd.DataFrame(
            {
                "key_kind": kinds,
                "key_value": keys.value.array,
                "customer_id": ids.array.take(keys.row),
                "first_seen": keys.ts,
                "last_seen": keys.ts,
            }
        )
        parts = [pa.Table.from_pandas(_typed(t), preserve_index=False) for t in (merged, batch)]
        combined = pa.concat_tables([pa.Table.from_pandas(old, preserve_index=False), *parts])
        ordered = _first_and_last_seen(combined).sort_by(
            [("key_kind", "ascending"), ("key_value", "ascending"), ("customer_id", "ascending")]
        )
        return _typed(ordered.to_pandas(types_mapper=_ARROW_STRINGS.get))


def _first_and_last_seen(table: pa.Table) -> pa.Table:
    """One row per (key_kind, key_value, customer_id): the earliest first and latest last seen.

    Grouped on one integer made of the three columns' dictionary codes: several times faster
    than grouping on the three strings."""
    codes = [
        pc.dictionary_encode(table[c]).combine_chunks().indices.to_numpy().astype(np.int64)
        for c in ("key_kind", "key_value", "customer_id")
    ]
    if max(int(c.max(initial=0)) for c in codes) >= 1 << 30:
        raise IdentityError("the identity map has more than 2**30 keys or customers")
    key = (codes[0] << 60) | (codes[1] << 30) | codes[2]
    grouped = (
        pa.table(
            {
                "key": key,
                "row": np.arange(len(key)),
                "first_seen": table["first_seen"],
                "last_seen": table["last_seen"],
            }
        )
        .group_by("key")
        .aggregate([("row", "min"), ("first_seen", "min"), ("last_seen", "max")])
    )
    names = table.select(["key_kind", "key_value", "customer_id"]).take(grouped["row_min"])
    return pa.table(
        {
            **{c: names[c] for c in names.column_names},
            "first_seen": grouped["first_seen_min"],
            "last_seen": grouped["last_seen_max"],
        }
    )


def _isin(values: pd.Series, among: pd.Series) -> np.ndarray:
    """Which of ``values`` are in ``among`` (pyarrow: pandas' ``isin`` loops in Python here)."""
    found = pc.is_in(_arrow(values), value_set=pc.unique(_arrow(among)))
    return np.asarray(pc.fill_null(found, False))


def _empty_table() -> pd.DataFrame:
    return _typed(pd.DataFrame({c: [] for c in MAP_COLUMNS}))


def _typed(table: pd.DataFrame) -> pd.DataFrame:
    """The map's columns in its fixed order and dtypes (missing times added as NaT)."""
    columns: dict[str, pd.Series] = {}
    for column in MAP_COLUMNS:
        if column.endswith("_seen"):
            seen = table[column] if column in table else pd.Series(pd.NaT, index=table.index)
            columns[column] = pd.to_datetime(seen, utc=True).astype("datetime64[us, UTC]")
        else:
            columns[column] = table[column].astype("string[pyarrow]")
        columns[column].index = pd.RangeIndex(len(table))
    return pd.DataFrame(columns).reset_index(drop=True)


def _batch_keys(batch: pd.DataFrame, dealer_group_id: str) -> _Keys:
    """The batch's keys, long; refuses another group's rows, keyless records, and VIN-only
    records without a time."""
    if "dealer_group_id" not in batch:
        raise IdentityError("the batch has no 'dealer_group_id' column")
    other = np.flatnonzero(
        (batch["dealer_group_id"].astype("string") != dealer_group_id)
        .fillna(True)
        .to_numpy(dtype=bool)
    )
    if len(other):
        raise CrossGroupError(
            f"column 'dealer_group_id', {_rows(other)}: not {dealer_group_id!r},"
            " whose identity map this is; identities never cross groups"
        )
    ts = _batch_times(batch)
    rows, kinds, values = [], [], []
    for code, kind in enumerate(KEY_KINDS):
        if kind not in batch:
            continue
        value = batch[kind].astype("string[pyarrow]").str.strip()
        if kind == "source_id":
            value = _with_source(batch, value)
        present = np.flatnonzero(value.fillna("").ne("").to_numpy(dtype=bool))
        rows.append(present)
        kinds.append(np.full(len(present), code, dtype=np.int8))
        values.append(value.iloc[present])
    if not rows:
        raise IdentityError(f"the batch has none of the key columns {', '.join(KEY_KINDS)}")
    row = np.concatenate(rows)
    kind_codes = np.concatenate(kinds)
    _refuse_keyless(row, kind_codes, ts, len(batch))
    value_series = pd.concat(values, ignore_index=True).astype("string[pyarrow]")
    return _Keys(
        row=row,
        kind=kind_codes,
        value=value_series,
        ts=ts[row],
    )


def _batch_times(batch: pd.DataFrame) -> np.ndarray:
    """The records' times, UTC without zone; refuses times without a zone."""
    if "ts" not in batch:
        return np.full(len(batch), np.datetime64("NaT", "us"))
    if not isinstance(batch["ts"].dtype, pd.DatetimeTZDtype):
        raise IdentityError(f"column 'ts' must hold times with a zone, not {batch['ts'].dtype}")
    utc = batch["ts"].dt.tz_convert("UTC").dt.tz_localize(None)
    return utc.to_numpy().astype("datetime64[us]")


def _with_source(batch: pd.DataFrame, source_id: pd.Series) -> pd.Series:
    """``source:id``, so one system's ids never meet another's; refuses an id without source."""
    source = (
        batch["source"].astype("string[pyarrow]").str.strip()
        if "source" in batch
        else pd.Series(pd.NA, index=batch.index, dtype="string[pyarrow]")
    )
    lacking = np.flatnonzero(
        (source_id.fillna("").ne("") & source.fillna("").eq("")).to_numpy(dtype=bool)
    )
    if len(lacking):
        raise IdentityError(f"column 'source', {_rows(lacking)}: a source_id needs its source")
    return source + ":" + source_id


def _refuse_keyless(row: np.ndarray, kind: np.ndarray, ts: np.ndarray, n: int) -> None:
    keyless = np.flatnonzero(np.bincount(row, minlength=n) == 0)
    if len(keyless):
        raise IdentityError(
            f"{_rows(keyless)}: none of the key columns ({', '.join(KEY_KINDS)}) is filled in"
        )
    strong = np.bincount(row[kind != KEY_KINDS.index("vin")], minlength=n) > 0
    untimed = np.flatnonzero(~strong & np.isnat(ts))
    if len(untimed):
        raise IdentityError(
            f"column 'ts', {_rows(untimed)}: a record known only by its VIN "
            "needs its time (the VIN rule joins within a window)"
        )


def _conflicts(keys: _Keys, table: pd.DataFrame, merges: dict[str, str]) -> pd.DataFrame:
    """The batch's keys that matched a customer taking part in a merge (see ``Resolution``)."""
    columns = ["customer_id", "merged_into", "key_kind", "key_value", "first_row"]
    if not merges:
        return pd.DataFrame(
            {c: pd.Series(dtype="string[pyarrow]") for c in columns[:-1]}
            | {"first_row": pd.Series(dtype=np.int64)}
        )
    members = set(merges) | set(merges.values())
    known = table[table["customer_id"].isin(members) & table["key_kind"].isin(STRONG_KEYS)]
    batch = pd.DataFrame(
        {
            "key_kind": np.asarray(KEY_KINDS, dtype=object)[keys.kind],
            "key_value": keys.value.to_numpy(dtype=object),
            "row": keys.row,
        }
    )
    batch = batch.groupby(["key_kind", "key_value"], as_index=False)["row"].min()
    hits = known.astype({"key_kind": object, "key_value": object}).merge(
        batch, on=["key_kind", "key_value"]
    )
    report = pd.DataFrame(
        {
            "customer_id": hits["customer_id"].astype("string[pyarrow]"),
            "merged_into": hits["customer_id"]
            .map(lambda c: merges.get(c, c))
            .astype("string[pyarrow]"),
            "key_kind": hits["key_kind"].astype("string[pyarrow]"),
            "key_value": hits["key_value"].astype("string[pyarrow]"),
            "first_row": (hits["row"] + 1).astype(np.int64),
        }
    )
    return report.sort_values(
        ["merged_into", "customer_id", "key_kind", "key_value"], ignore_index=True
    )
