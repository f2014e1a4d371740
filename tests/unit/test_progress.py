"""Progress reports: a bar in a terminal, plain lines (no carriage return) anywhere else."""

from __future__ import annotations

import io

import pytest

from lue_spie.progress import LineProgress, progress_bar, progress_mode


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_gets_plain_lines_every_tenth(monkeypatch):
    monkeypatch.delenv("LUE_SPIE_PROGRESS", raising=False)
    monkeypatch.delenv("LUE_SPIE_PROGRESS_EVERY", raising=False)
    log = io.StringIO()
    assert progress_mode(log) == "lines"
    with progress_bar(total=50, desc="CMA-ES", unit="gen", file=log) as bar:
        for _ in range(50):
            bar.update(1)
            bar.set_postfix(active=3)
    text = log.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    # 10 %, 20 %, ..., 90 %, then the closing line at 100 %.
    assert len(lines) == 10
    assert lines[0].startswith("CMA-ES:  10% (5/50 gen)")
    assert lines[-1].startswith("CMA-ES: 100% (50/50 gen)") and " done" in lines[-1]
    assert lines[-1].endswith("active=3")


def test_a_resumed_run_counts_from_where_it_stopped(monkeypatch):
    monkeypatch.delenv("LUE_SPIE_PROGRESS", raising=False)
    log = io.StringIO()
    bar = LineProgress(total=10, initial=6, desc="SPIE", unit="epoch", file=log)
    for _ in range(4):
        bar.update()
    bar.close()
    bar.close()
    assert [ln.split("%")[0].split()[-1] for ln in log.getvalue().splitlines()] == [
        "70", "80", "90", "100"]


def test_wrapping_an_iterable_and_turning_it_off(monkeypatch):
    monkeypatch.delenv("LUE_SPIE_PROGRESS", raising=False)
    log = io.StringIO()
    assert list(progress_bar(["a", "b"], desc="sites", file=log)) == ["a", "b"]
    assert log.getvalue().splitlines()[-1].startswith("sites: 100% (2/2 it)")
    quiet = io.StringIO()
    assert list(progress_bar(["a"], enabled=False, file=quiet)) == ["a"]
    assert quiet.getvalue() == ""


def test_a_terminal_gets_a_bar_and_the_environment_decides_when_set(monkeypatch):
    monkeypatch.delenv("LUE_SPIE_PROGRESS", raising=False)
    assert progress_mode(_Tty()) == "bar"
    monkeypatch.setenv("LUE_SPIE_PROGRESS", "lines")
    assert progress_mode(_Tty()) == "lines"
    monkeypatch.setenv("LUE_SPIE_PROGRESS", "off")
    out = io.StringIO()
    with progress_bar(total=3, file=out) as bar:
        bar.update(3)
    assert out.getvalue() == ""
    monkeypatch.setenv("LUE_SPIE_PROGRESS", "sometimes")
    with pytest.raises(ValueError, match="LUE_SPIE_PROGRESS='sometimes'"):
        progress_mode(io.StringIO())


def test_a_bad_step_is_named(monkeypatch):
    monkeypatch.delenv("LUE_SPIE_PROGRESS", raising=False)
    monkeypatch.setenv("LUE_SPIE_PROGRESS_EVERY", "0")
    with pytest.raises(ValueError, match="LUE_SPIE_PROGRESS_EVERY='0'"):
        progress_bar(total=3, file=io.StringIO())
