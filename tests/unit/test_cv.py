"""Ten-fold site split with PFT and climate coverage (lue_spie.extrapolate.cv)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lue_spie.data import virtual
from lue_spie.extrapolate import cv


def _sites(n: int, seed: int = 0) -> pd.DataFrame:
    return virtual.make_tables(n, 1, seed).sites[["site", "PFT", "koeppen"]]


@pytest.mark.parametrize("n_sites, n_folds", [(12, 10), (24, 10), (196, 10), (40, 5)])
def test_every_type_with_two_sites_is_in_every_training_set(n_sites, n_folds):
    sites = _sites(n_sites)
    split = cv.make_folds(sites, n_folds, seed=3)
    t = split.table
    assert sorted(t["site"]) == sorted(sites["site"]) and t["site"].is_unique
    sizes = t["fold"].value_counts()
    assert len(sizes) == n_folds and sizes.max() - sizes.min() <= 1  # balanced
    for col in ("PFT", "main_group"):
        counts = t[col].value_counts()
        for k, train, test in split.folds():
            assert set(train).isdisjoint(test) and len(train) + len(test) == n_sites
            present = set(t.set_index("site").loc[train, col])
            for value, c in counts.items():
                if c >= 2:
                    assert value in present, (col, value, k)
    # Sites whose type has no second site are listed, with the reason.
    single = split.single_type_sites
    for _, row in single.iterrows():
        why = []
        if (t["PFT"] == row["PFT"]).sum() == 1:
            why.append("PFT")
        if (t["main_group"] == t.set_index("site").loc[row["site"], "main_group"]).sum() == 1:
            why.append("main group")
        assert row["single_type"] == ", ".join(why)


def test_same_seed_same_split_whatever_the_row_order():
    sites = _sites(30)
    a = cv.make_folds(sites, 10, seed=1)
    b = cv.make_folds(sites.sample(frac=1.0, random_state=4), 10, seed=1)
    pd.testing.assert_frame_equal(a.table, b.table)
    assert a.checksum() == b.checksum()
    c = cv.make_folds(sites, 10, seed=2)
    assert a.checksum() != c.checksum()


def test_too_few_sites_or_impossible_split_is_a_clear_error():
    with pytest.raises(cv.TooFewSites, match="3 site.*10 folds"):
        cv.make_folds(_sites(3), 10)
    # Two sites of one PFT and only 2 folds... each fold must hold one of them: possible;
    # but a draw budget of 1 with a rule that the first draw breaks must fail clearly.
    sites = pd.DataFrame({"site": [f"S{i}" for i in range(4)], "PFT": ["ENF"] * 2 + ["GRA"] * 2,
                          "koeppen": ["Dfb", "Dfb", "Cfb", "Cfb"]})
    ok = cv.make_folds(sites, 2, seed=0, max_draws=1000)
    assert ok.table.groupby("PFT")["fold"].nunique().min() == 2
    failures = 0
    for seed in range(20):
        try:
            cv.make_folds(sites, 2, seed=seed, max_draws=1)
        except ValueError as err:
            assert "within 1 draws" in str(err) and "fewer folds" in str(err)
            failures += 1
    assert failures > 0
    with pytest.raises(ValueError, match="n_folds"):
        cv.make_folds(sites, 1)
    with pytest.raises(ValueError, match="lacks column"):
        cv.make_folds(sites.drop(columns=["PFT"]), 2)


def test_split_round_trips_through_the_results_folder(tmp_path):
    split = cv.make_folds(_sites(24), 10, seed=5)
    path = cv.write_folds(split, tmp_path)
    assert path.name == "folds.parquet" and path.with_name("folds.provenance.json").is_file()
    back = cv.read_folds(tmp_path)
    pd.testing.assert_frame_equal(back.table, split.table)
    assert (back.n_folds, back.seed) == (10, 5) and back.checksum() == split.checksum()
    assert np.array_equal(sorted(back.test_sites(0) + back.train_sites(0)), sorted(split.sites))
    with pytest.raises(ValueError, match="fold 10"):
        back.test_sites(10)
