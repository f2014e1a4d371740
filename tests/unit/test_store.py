"""Tests of the results store: atomic writes and provenance records."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from lue_spie import store


def test_write_parquet_with_provenance(tmp_path):
    df = pd.DataFrame({"site": ["A", "B"], "x": [1.0, 2.0]})
    inp = tmp_path / "input.txt"
    inp.write_text("hello")
    prov = store.make_provenance("test.step", settings={"k": 1}, inputs={"inp": inp}, seed=3)
    path = store.write_parquet(df, tmp_path / "out" / "table.parquet", prov)
    pd.testing.assert_frame_equal(store.read_parquet(path), df)
    rec = store.read_provenance(path)
    assert rec["step"] == "test.step" and rec["seed"] == 3 and rec["settings"] == {"k": 1}
    assert rec["inputs"]["inp"]["sha256"] == store.sha256_file(inp)
    assert rec["output"] == {"file": "table.parquet", "sha256": store.sha256_file(path),
                             "rows": 2}
    assert "torch" in rec["versions"]
    assert store.provenance_path(path).name == "table.provenance.json"
    assert path.stat().st_mode & 0o777 == 0o644  # readable by others, like any output file
    assert store.provenance_path(path).stat().st_mode & 0o777 == 0o644


def test_failed_write_leaves_previous_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "t.parquet"
    store.write_parquet(pd.DataFrame({"a": [1]}), path)
    before = path.read_bytes()

    def boom(self, *args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        store.write_parquet(pd.DataFrame({"a": [2]}), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["t.parquet"]  # no temporary left behind


def test_atomic_json_and_errors(tmp_path):
    import numpy as np

    p = store.atomic_write_json(tmp_path / "a.json", {"x": np.float64(1.5), "p": tmp_path})
    assert json.loads(p.read_text()) == {"x": 1.5, "p": str(tmp_path)}
    with pytest.raises(FileNotFoundError, match="no such results file"):
        store.read_parquet(tmp_path / "missing.parquet")
    store.write_parquet(pd.DataFrame({"a": [1]}), tmp_path / "b.parquet")
    with pytest.raises(ValueError, match=r"missing column\(s\) \['zz'\]"):
        store.read_parquet(tmp_path / "b.parquet", columns=["a", "zz"])


def test_provenance_never_records_an_absolute_path(tmp_path, monkeypatch):
    f = tmp_path / "sub" / "x.parquet"
    store.write_parquet(pd.DataFrame({"a": [1]}), f)
    monkeypatch.chdir(tmp_path)
    inside = store.make_provenance("t", inputs={"x": f})
    assert inside["inputs"]["x"]["path"] == "sub/x.parquet"
    assert inside["inputs"]["x"]["sha256"] == store.sha256_file(f)
    monkeypatch.chdir(tmp_path / "sub")
    other = tmp_path / "elsewhere.parquet"
    store.write_parquet(pd.DataFrame({"a": [2]}), other)
    outside = store.make_provenance("t", inputs={"y": other})
    assert outside["inputs"]["y"]["path"] == "elsewhere.parquet"
    assert str(tmp_path) not in json.dumps(outside)


def test_write_table_writes_parquet_with_provenance_and_csv(tmp_path):
    df = pd.DataFrame({"site": ["A", "B"], "nse": [0.5, 0.75]}, index=[3, 7])
    pq, csv = store.write_table(df, tmp_path, "scores", {"step": "test"})
    assert (pq, csv) == (tmp_path / "scores.parquet", tmp_path / "scores.csv")
    pd.testing.assert_frame_equal(store.read_parquet(pq), df.reset_index(drop=True))
    pd.testing.assert_frame_equal(pd.read_csv(csv), df.reset_index(drop=True))
    assert store.read_provenance(pq)["output"]["rows"] == 2
