"""Ten-fold cross-validation over sites with PFT and climate coverage (paper section 2.2).

The sites are split at random into ``n_folds`` groups of (nearly) equal size. Each method is
fitted on all groups but one and predicts the held-out group, so every site is predicted by a
model that never saw it. Rule (SPEC section 3): every PFT and every Koeppen main climate type
(A-E) that has at least two sites must appear in every training set, i.e. its sites must not
all fall into one fold. A split that breaks the rule is drawn again, at most ``max_draws``
times (a clear error after that). A type with a single site cannot be in the training set of
its own fold: such sites are listed (:attr:`FoldSplit.single_type_sites`) and the grouping
methods fall back to all training sites for them.

The split depends only on the sites table (ids, PFT, Koeppen type), the number of folds and
the seed: the sites are sorted by id first, so the order of the table does not matter, and
the same seed gives the same split on every machine. It is written to the results folder
(``extrapolation/folds.parquet``) and every later step reads it from there.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from lue_spie import store
from lue_spie.layout import ExtrapolationFiles
from lue_spie.params import koeppen_main_group

__all__ = ["FoldSplit", "make_folds", "write_folds", "read_folds", "TooFewSites", "FOLD_COLUMNS"]


class TooFewSites(ValueError):
    """The dataset has fewer sites than the requested folds (or no site at all)."""


@dataclasses.dataclass(frozen=True)
class FoldSplit:
    """A site split for cross-validation.

    Attributes:
        table: One row per site: ``site``, ``PFT``, ``koeppen``, ``main_group``, ``fold``
            (0 .. n_folds - 1) and ``single_type`` (the site's PFT or main group has no other
            site, so it is absent from this site's training set: ``"PFT"``, ``"main group"``,
            ``"PFT, main group"`` or ``""``).
        n_folds: Number of folds.
        seed: Seed of the draw.
        draws: Draws needed until the coverage rule held.
    """

    table: pd.DataFrame
    n_folds: int
    seed: int
    draws: int

    @property
    def sites(self) -> list[str]:
        """Site ids (sorted)."""
        return self.table["site"].tolist()

    def test_sites(self, fold: int) -> list[str]:
        """The held-out sites of ``fold``."""
        self._check_fold(fold)
        return self.table.loc[self.table["fold"] == fold, "site"].tolist()

    def train_sites(self, fold: int) -> list[str]:
        """The training sites of ``fold`` (every site of the other folds)."""
        self._check_fold(fold)
        return self.table.loc[self.table["fold"] != fold, "site"].tolist()

    def folds(self) -> Iterator[tuple[int, list[str], list[str]]]:
        """``(fold, train_sites, test_sites)`` for every fold."""
        for k in range(self.n_folds):
            yield k, self.train_sites(k), self.test_sites(k)

    @property
    def single_type_sites(self) -> pd.DataFrame:
        """Sites whose PFT or main group has no other site (``site``, ``single_type``)."""
        return self.table.loc[self.table["single_type"] != "", ["site", "PFT", "koeppen",
                                                                "single_type"]]

    def checksum(self) -> str:
        """sha256 of the assignment (site -> fold), for provenance and resume checks."""
        blob = "\n".join(f"{s}:{f}" for s, f in zip(self.table["site"], self.table["fold"],
                                                      strict=True))
        return hashlib.sha256(blob.encode()).hexdigest()

    def _check_fold(self, fold: int) -> None:
        if not 0 <= int(fold) < self.n_folds:
            raise ValueError(f"fold {fold}: expected 0 .. {self.n_folds - 1}")


def _coverage_ok(fold: np.ndarray, groups: list[np.ndarray]) -> bool:
    # A type with >= 2 sites is in every training set iff its sites span >= 2 folds.
    return all(len(np.unique(fold[g])) >= 2 for g in groups)


def make_folds(sites: pd.DataFrame, n_folds: int = 10, seed: int = 0, *,
               max_draws: int = 10_000) -> FoldSplit:
    """Split sites into ``n_folds`` folds with PFT and main-climate coverage (module docstring).

    Args:
        sites: The sites table (``site``, ``PFT``, ``koeppen``).
        n_folds: Number of folds (at least 2, at most the number of sites).
        seed: Random seed.
        max_draws: Most draws before giving up.

    Returns:
        The split.

    Raises:
        TooFewSites: fewer sites than folds.
        ValueError: bad arguments, or no split within ``max_draws`` draws (naming the types
            that kept breaking the rule).
    """
    missing = [c for c in ("site", "PFT", "koeppen") if c not in sites.columns]
    if missing:
        raise ValueError(f"make_folds: the sites table lacks column(s) {missing}")
    if int(n_folds) != n_folds or n_folds < 2:
        raise ValueError(f"make_folds: n_folds must be an integer >= 2, got {n_folds!r}")
    n_folds = int(n_folds)
    if sites["site"].duplicated().any():
        raise ValueError("make_folds: duplicate site ids in the sites table")
    n = len(sites)
    if n < n_folds:
        raise TooFewSites(f"{n} site(s) cannot be split into {n_folds} folds: use at least "
                          f"{n_folds} sites or fewer folds (--folds)")
    t = sites[["site", "PFT", "koeppen"]].astype(str).sort_values("site", kind="stable")
    t = t.reset_index(drop=True)
    t["main_group"] = koeppen_main_group(list(t["koeppen"]))
    groups: list[np.ndarray] = []
    counts: dict[str, pd.Series] = {}
    for col in ("PFT", "main_group"):
        counts[col] = t[col].value_counts()
        for value, c in counts[col].items():
            if c >= 2:
                groups.append(np.flatnonzero(t[col].to_numpy() == value))
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), n, n_folds]))
    base = np.arange(n) % n_folds  # balanced fold sizes
    draw = 0
    for draw in range(1, max_draws + 1):  # noqa: B007 (the count is reported)
        fold = base[rng.permutation(n)]
        if _coverage_ok(fold, groups):
            break
    else:
        bad = sorted({f"{col}={t[col].iloc[g[0]]}" for col in ("PFT", "main_group")
                      for g in groups if t[col].iloc[g[0]] == t[col].iloc[g[-1]]
                      and len(np.unique(fold[g])) < 2})
        raise ValueError(f"make_folds: no split of {n} sites into {n_folds} folds kept every "
                         f"type with >= 2 sites in every training set within {max_draws} "
                         f"draws (last failing: {bad}); use fewer folds")
    single = []
    for p, m in zip(t["PFT"], t["main_group"], strict=True):
        why = [name for name, col, v in (("PFT", "PFT", p), ("main group", "main_group", m))
               if counts[col][v] == 1]
        single.append(", ".join(why))
    t["fold"] = fold.astype(np.int64)
    t["single_type"] = single
    return FoldSplit(table=t[["site", "PFT", "koeppen", "main_group", "fold", "single_type"]],
                     n_folds=n_folds, seed=int(seed), draws=draw)


def _files(results: ExtrapolationFiles | str | Path) -> ExtrapolationFiles:
    return results if isinstance(results, ExtrapolationFiles) \
        else ExtrapolationFiles(Path(results))


def write_folds(split: FoldSplit, results: ExtrapolationFiles | str | Path) -> Path:
    """Write the split into an extrapolation folder (atomically, with provenance)."""
    prov = store.make_provenance("cv", settings={"n_folds": split.n_folds, "draws": split.draws,
                                                 "checksum": split.checksum()},
                                 seed=split.seed)
    return store.write_parquet(split.table, _files(results).folds, prov)


#: The columns of a split's table (``folds.parquet``).
FOLD_COLUMNS: tuple[str, ...] = ("site", "PFT", "koeppen", "main_group", "fold", "single_type")


def read_folds(results: ExtrapolationFiles | str | Path) -> FoldSplit:
    """Read the split of a results folder.

    Raises:
        FileNotFoundError: when the folder has no split yet.
    """
    path = _files(results).folds
    table = store.read_parquet(path, columns=list(FOLD_COLUMNS))
    prov = store.read_provenance(path)
    settings = prov.get("settings", {})
    return FoldSplit(table=table, n_folds=int(settings.get("n_folds", table["fold"].max() + 1)),
                     seed=int(prov.get("seed") or 0), draws=int(settings.get("draws", 0)))
