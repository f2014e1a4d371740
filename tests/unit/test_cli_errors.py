"""The command line's one rule for errors a user can cause (lue_spie.cli.main, issue 23):
one line naming what is wrong and what to do, exit 2 (usage) or 1 (data), a traceback only
with --debug or LUE_SPIE_DEBUG=1, output places checked before any work starts."""

from __future__ import annotations

import errno

import pytest

from lue_spie import cli
from lue_spie.errors import DataError, UsageError


def _run(capsys, argv):
    rc = cli.main(argv)
    err = capsys.readouterr().err
    return rc, err


def test_an_output_folder_that_is_a_file_is_one_line_and_exit_2(tmp_path, capsys):
    (tmp_path / "taken").write_text("x")
    for argv in (["data", "synth", "--sites", "2", "--years", "1"],
                 ["calibrate", "--data", str(tmp_path / "d")],
                 ["assess", "--results", str(tmp_path)]):
        rc, err = _run(capsys, [*argv, "--out", str(tmp_path / "taken")])
        assert rc == 2, argv
        assert err.count("\n") == 1 and "Traceback" not in err
        assert f"--out {tmp_path / 'taken'}: exists and is a file" in err


@pytest.mark.parametrize(("raised", "code", "text"), [
    (UsageError("--x: bad; give another"), 2, "--x: bad; give another"),
    (DataError("f.parquet: damaged; rerun"), 1, "f.parquet: damaged; rerun"),
    (FileNotFoundError(errno.ENOENT, "No such file or directory", "/no/where"), 2,
     "/no/where: No such file or directory; check the path"),
    (PermissionError(errno.EACCES, "Permission denied", "/ro/x"), 1,
     "/ro/x: Permission denied; no permission to write there"),
    (RuntimeError("boom"), 1, "internal error (RuntimeError: boom); run the command again "
                              "with --debug"),
])
def test_every_error_is_one_line_with_its_exit_status(tmp_path, capsys, monkeypatch, raised,
                                                      code, text):
    def fail(args):
        raise raised

    monkeypatch.setattr(cli, "_info", fail)
    monkeypatch.delenv("LUE_SPIE_DEBUG", raising=False)
    parser = cli.build_parser
    monkeypatch.setattr(cli, "build_parser", lambda: _with_info(parser(), fail))
    rc, err = _run(capsys, ["info"])
    assert rc == code
    assert err.startswith(f"lue-spie info: error: {text}")
    assert err.count("\n") == 1 and "Traceback" not in err


def _with_info(parser, func):
    for action in parser._actions:
        if hasattr(action, "choices") and isinstance(action.choices, dict) and \
                "info" in action.choices:
            action.choices["info"].set_defaults(func=func)
    return parser


def test_a_traceback_only_with_debug(capsys, monkeypatch):
    def fail(args):
        raise DataError("f.parquet: damaged")

    parser = cli.build_parser
    monkeypatch.setattr(cli, "build_parser", lambda: _with_info(parser(), fail))
    monkeypatch.delenv("LUE_SPIE_DEBUG", raising=False)
    with pytest.raises(DataError):
        cli.main(["info", "--debug"])
    monkeypatch.setenv("LUE_SPIE_DEBUG", "1")
    with pytest.raises(DataError):
        cli.main(["info"])
    monkeypatch.setenv("LUE_SPIE_DEBUG", "0")
    assert cli.main(["info"]) == 1


def test_a_bad_option_is_one_line_and_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["calibrate", "--no-such-option"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "required: --data, --out" in err and "`lue-spie calibrate --help`" in err
