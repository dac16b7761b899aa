"""The round trip a simulated group allows: its raw exports, ingested, against its own events.

The simulator knows each raw id's canonical id (``truth_identity.parquet`` beside the raw
exports, ``cjm simulate --raw-exports``). That lets the instances built from ingested events be
named by the instances built from the simulator's canonical events:

- ``canonical_instance_ids`` translates ingested instance ids (an appointment id of the
  scheduler, or an ingested event id ``<source>:<row key>:<rule>`` of a lead or delivery) into
  the simulator's ids;
- ``compare_instances`` says, per task, how many instances both sides have, which only one
  side has, and whether labels and customers agree (one ingested customer per simulated one);
- ``truth_for`` re-keys the simulator's truth by the ingested instance ids, so training on
  ingested events still reports the truth ceiling and the planted-friction checks still hold.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

#: An ingested event id: ``<source>:<row key>:<rule>`` (the row key may itself hold colons).
_EVENT_ID = r"^[^:]+:(?P<key>.*):[^:]+$"


def read_truth_identity(raw_exports: Path) -> pd.DataFrame:
    """The simulator's identity truth written beside its raw exports (raw id -> canonical id);
    raises FileNotFoundError naming the file when the folder has none."""
    path = raw_exports / "truth_identity.parquet"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no identity truth (written by --raw-exports)")
    return pd.read_parquet(path)


def canonical_instance_ids(instance_ids: pd.Series, truth_identity: pd.DataFrame) -> pd.Series:
    """The simulator's id of each ingested instance id (missing where the exports do not say);
    aligned with ``instance_ids``."""
    ids = instance_ids.astype("string")
    known = truth_identity.dropna(subset=["canonical_id"]).drop_duplicates("raw_id")
    lookup = pd.Series(known["canonical_id"].to_numpy(), index=known["raw_id"].to_numpy())
    key = ids.str.extract(_EVENT_ID, expand=False)
    direct = ids.map(lookup)
    return direct.fillna(key.map(lookup)).astype("string").rename("canonical_id")


@dataclass(frozen=True)
class RoundTrip:
    """One task's instances from ingested exports against those from the canonical events."""

    canonical: int
    ingested: int
    matched: int
    only_canonical: tuple[str, ...]
    only_ingested: tuple[str, ...]
    label_differs: int
    split_customers: int
    joined_customers: int

    @property
    def exact(self) -> bool:
        """Every instance on both sides, with the same label and the same person."""
        return (
            self.matched == self.canonical == self.ingested
            and self.label_differs == 0
            and self.split_customers == 0
            and self.joined_customers == 0
        )

    def line(self) -> str:
        """One line a person reads."""
        verdict = "identical" if self.exact else "differs"
        return (
            f"{self.matched:,} of {self.canonical:,} instances matched ({verdict}); only "
            f"canonical {len(self.only_canonical):,}, only ingested {len(self.only_ingested):,}; "
            f"labels differ {self.label_differs:,}; customers split {self.split_customers:,}, "
            f"joined {self.joined_customers:,}"
        )


def compare_instances(
    canonical: pd.DataFrame, ingested: pd.DataFrame, truth_identity: pd.DataFrame
) -> RoundTrip:
    """Compare two feature tables (or instance tables: ``instance_id``, ``customer_id``,
    ``label``) of one task: the canonical one and the ingested one, named through
    ``truth_identity``. A simulated customer whose instances carry several ingested customer
    ids is *split*; an ingested customer holding several simulated ones is *joined*."""
    ing = ingested[["instance_id", "customer_id", "label"]].assign(
        canonical_id=canonical_instance_ids(ingested["instance_id"], truth_identity).to_numpy()
    )
    can = canonical[["instance_id", "customer_id", "label"]].astype({"instance_id": "string"})
    both = can.merge(
        ing.drop(columns="instance_id"),
        left_on="instance_id",
        right_on="canonical_id",
        suffixes=("", "_ingested"),
    )
    labels = both["label"].astype("Float64")
    label_differs = ~labels.eq(both["label_ingested"].astype("Float64")).fillna(
        labels.isna() & both["label_ingested"].isna()
    )
    return RoundTrip(
        canonical=len(can),
        ingested=len(ing),
        matched=len(both),
        only_canonical=tuple(sorted(set(can["instance_id"]) - set(both["instance_id"]))),
        only_ingested=tuple(
            sorted(ing.loc[~ing["canonical_id"].isin(both["instance_id"]), "instance_id"])
        ),
        label_differs=int(label_differs.sum()),
        split_customers=int(
            (both.groupby("customer_id")["customer_id_ingested"].nunique() > 1).sum()
        ),
        joined_customers=int(
            (both.groupby("customer_id_ingested")["customer_id"].nunique() > 1).sum()
        ),
    )


def truth_for(
    truth: pd.DataFrame, instance_ids: pd.Series, truth_identity: pd.DataFrame
) -> pd.DataFrame:
    """The simulator's truth of one task, keyed by the ingested ``instance_ids`` (the
    simulator's id kept as ``canonical_id``); instances the exports do not name are left out."""
    names = pd.DataFrame(
        {
            "instance_id": instance_ids.astype("string").to_numpy(),
            "canonical_id": canonical_instance_ids(instance_ids, truth_identity).to_numpy(),
        }
    ).dropna(subset=["canonical_id"])
    keyed = truth.astype({"instance_id": "string"}).rename(columns={"instance_id": "canonical_id"})
    return names.merge(keyed, on="canonical_id", how="inner")
