"""Tests of the results store: atomic writes and provenance records."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from lue_spie import store
from lue_spie.errors import DataError, OutputError, UsageError


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


# --- Results verified before they are trusted (issue 23) ---------------------------------

def _table(tmp_path, name="table.parquet", inputs=None):
    df = pd.DataFrame({"site": ["A", "B", "C"], "x": [1.0, 2.0, 3.0]})
    prov = store.make_provenance("test.step", inputs=inputs or {})
    return df, store.write_parquet(df, tmp_path / name, prov)


def test_verify_trusts_only_a_file_that_matches_its_record(tmp_path):
    _, path = _table(tmp_path)
    assert store.verify(path, columns=["site", "x"]) is None
    assert "lacks column" in store.verify(path, columns=["y"])
    assert store.verify(tmp_path / "nothing.parquet") == "missing"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # truncated
    assert "checksum differs" in store.verify(path)
    # Without a checksum to compare, a truncated table is still found unreadable.
    store.provenance_path(path).unlink()
    assert "no provenance record" in store.verify(path)
    assert "not a readable parquet" in store.verify(path, require_record=False)


def test_read_parquet_names_a_damaged_table_in_one_line(tmp_path):
    _, path = _table(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[:-20])
    with pytest.raises(DataError, match=r"table.parquet: its checksum differs") as info:
        store.read_parquet(path)
    assert "\n" not in str(info.value)
    store.provenance_path(path).unlink()
    with pytest.raises(DataError, match=r"table.parquet: not a readable parquet file"):
        store.read_parquet(path)


def test_an_invalid_provenance_record_is_named(tmp_path):
    _, path = _table(tmp_path)
    store.provenance_path(path).write_text('{"step": "x", ', encoding="utf-8")
    with pytest.raises(DataError, match=r"table.provenance.json: not a valid provenance "
                                              r"record \(invalid JSON"):
        store.read_provenance(path)
    assert "provenance record table.provenance.json is unreadable" in store.verify(path)


def test_a_calibration_of_another_dataset_is_refused(tmp_path):
    from lue_spie.layout import DataFiles

    def dataset(folder, value):
        files = DataFiles(tmp_path / folder)
        for p in files.inputs().values():
            store.write_parquet(pd.DataFrame({"v": [value]}), p)
        return files

    a, b = dataset("a", 1.0), dataset("b", 2.0)
    _, cal = _table(tmp_path, "calibration.parquet", inputs=a.inputs())
    store.check_calibration_of(cal, a)  # its own dataset: fine
    with pytest.raises(DataError, match=r"calibration.parquet: the site calibration was "
                                              r"computed from other data than .*b \("):
        store.check_calibration_of(cal, b)


def test_output_places_are_refused_before_any_work(tmp_path, monkeypatch):
    import os

    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match=r"--out .*file: exists and is a file"):
        store.check_output_folder(tmp_path / "file")
    with pytest.raises(UsageError, match=r"file is a file, so no folder can be made"):
        store.check_output_folder(tmp_path / "file" / "sub", "--results")
    real = os.statvfs

    def statvfs(path, *, flag=0, bavail=None):
        st = real(path)
        return os.statvfs_result((st.f_bsize, st.f_frsize, st.f_blocks, st.f_bfree,
                                  st.f_bavail if bavail is None else bavail, st.f_files,
                                  st.f_ffree, st.f_favail, st.f_flag | flag, st.f_namemax))

    monkeypatch.setattr(os, "statvfs", lambda p: statvfs(p, flag=os.ST_RDONLY))
    with pytest.raises(UsageError, match=r"--out .*new: on a read-only file system"):
        store.check_output_folder(tmp_path / "new")
    monkeypatch.setattr(os, "statvfs", lambda p: statvfs(p, bavail=0))
    with pytest.raises(UsageError, match=r"--out .*new: only 0 KiB free"):
        store.check_output_folder(tmp_path / "new")
    monkeypatch.setattr(os, "statvfs", real)
    assert store.check_output_folder(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"


def test_a_failed_write_is_one_line_naming_the_file_and_leaves_nothing(tmp_path, monkeypatch):
    import errno
    import os

    _, path = _table(tmp_path)
    before = path.read_bytes()

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OutputError, match=r"table.parquet: cannot write \(No space left "
                                                r"on device\); no space left") as info:
        store.write_parquet(pd.DataFrame({"site": ["Z"]}), path)
    assert str(info.value).count("\n") == 0
    assert path.read_bytes() == before  # the finished file stays as it was
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_tidy_output_folder_removes_only_what_a_failed_run_left(tmp_path):
    out = tmp_path / "out"
    (out / "kept").mkdir(parents=True)
    existed = store.folders_under(out)
    (out / "new" / "empty").mkdir(parents=True)
    (out / "made").mkdir()
    (out / "made" / "result.parquet").write_bytes(b"x")
    (out / ".result.parquet.abcd1234.tmp").write_bytes(b"half")
    store.tidy_output_folder(out, keep=existed)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == \
        ["kept", "made", "made/result.parquet"]
