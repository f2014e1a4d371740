"""A chapter rerun by hand takes what it does not give from the results folder's run record."""

from __future__ import annotations

import json

import pytest

from lue_spie.book.rerun import given_parameters, settle_parameters, write_run_record
from lue_spie.layout import Layout

INJECTED = "# Parameters\nresults = \"results/demo\"\nseed = 7\n"


def _namespace(results) -> dict:
    # A chapter's variables after its parameters cell (the ci profile's defaults).
    return {"results": str(results), "seed": 42, "twin_enabled": True, "assess_n_groups": 200,
            "Path": object()}


def test_the_injected_cell_names_the_given_parameters():
    own_cell = "# Parameters (papermill replaces this cell's values).\nseed = 42\n"
    assert given_parameters([own_cell, "x = 1", INJECTED]) == {"results", "seed"}
    assert given_parameters([own_cell]) == set()


def test_a_rerun_takes_the_recorded_settings_it_does_not_give(tmp_path, capsys):
    write_run_record(tmp_path, profile="demo", overrides={},
                     parameters={"results": "results/demo", "seed": 42,
                                 "twin_enabled": False, "assess_n_groups": 200,
                                 "data_n_sites": 196})
    ns = _namespace(tmp_path)
    ns["seed"] = 7  # what the injected cell set
    out = settle_parameters(ns, history=[INJECTED])
    assert ns["twin_enabled"] is False          # from the record
    assert ns["seed"] == 7                       # given
    assert ns["results"] == str(tmp_path)        # where to work is never taken
    assert "data_n_sites" not in ns              # not a parameter of this chapter
    assert out.profile == "demo" and out.differ == {"twin_enabled": False}
    line = capsys.readouterr().out.strip()
    assert line.count("\n") == 0
    assert "profile demo" in line and "twin_enabled=False" in line and "seed" in line


def test_the_book_build_gives_everything(tmp_path, capsys):
    write_run_record(tmp_path, profile="ci", overrides={},
                     parameters={"seed": 42, "twin_enabled": True, "assess_n_groups": 200})
    ns = _namespace(tmp_path)
    injected = ("# Parameters\nseed = 42\ntwin_enabled = True\nassess_n_groups = 200\n"
                "results = 'r'\n")
    settle_parameters(ns, history=[injected])
    assert capsys.readouterr().out.strip() == (
        "Parameters: profile ci, all given by the book build.")


def test_without_a_record_the_defaults_stay(tmp_path, capsys):
    ns = _namespace(tmp_path)
    before = dict(ns)
    out = settle_parameters(ns, history=[])
    assert ns == before and out.record is None
    assert "no run record" in capsys.readouterr().out


def test_a_broken_record_is_named(tmp_path):
    Layout(tmp_path).run_record.write_text("{not json")
    with pytest.raises(ValueError, match="run.json: not a readable run record"):
        settle_parameters(_namespace(tmp_path), history=[], quiet=True)


def test_the_record_is_written_atomically_without_the_location(tmp_path):
    path = write_run_record(tmp_path, profile="demo", overrides={"seed": 7},
                            parameters={"results": "results/demo", "seed": 7})
    record = json.loads(path.read_text())
    assert record == {"profile": "demo", "overrides": {"seed": 7}, "parameters": {"seed": 7}}
    assert not list(tmp_path.glob("*.tmp*"))
