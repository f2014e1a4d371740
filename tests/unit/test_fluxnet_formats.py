"""FLUXNET daily file formats: each accepted format, written to its documented naming and column
set, reads into the same tidy tables as the FLUXNET2015 FULLSET file it was made from; any other
file name or header is a one-line error naming the file and the accepted formats."""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import pandas as pd
import pytest
from test_fluxnet import FLUX_NAME, SHARED_FLUXNET, SITE, flux_frame, needs_shared, write_inputs

from lue_spie.data import fluxnet, io
from lue_spie.data.fluxnet_formats import (
    AMERIFLUX_FLUXNET,
    FLUXNET2015_FULLSET,
    FLUXNET2015_SUBSET,
    FORMATS,
    ICOS_ETC_L2_FLUXNET,
    ONEFLUX_SUBSET_VARIABLES,
    FluxFormatError,
    detect_format,
    looks_like_daily_flux_file,
)

#: FULLSET-only columns (not in ONEFlux's VARIABLE_LIST_SUB), with values the reader must not
#: use: a SUBSET written from the FULLSET table drops them and must read the same.
FULLSET_ONLY = ("TA_F_MDS", "TA_F_MDS_QC", "TA_ERA", "TA_F_NIGHT", "TA_F_DAY", "SW_IN_F_MDS",
                "SW_IN_ERA", "LW_IN_JSB", "VPD_F_MDS", "VPD_ERA", "PA_ERA", "P_ERA", "WS_ERA",
                "NEE_CUT_REF", "NEE_CUT_REF_QC", "NEE_VUT_USTAR50", "GPP_NT_CUT_REF",
                "GPP_NT_VUT_USTAR50", "GPP_NT_VUT_MEAN", "NEE_VUT_REF_JOINTUNC", "EBC_CF_N")

#: Name of the same site-years in each format (the FULLSET's is FLUX_NAME).
NAMES = {
    "fluxnet2015-subset": "FLX_DE-Tst_FLUXNET2015_SUBSET_DD_2008-2009_1-4.csv",
    "fluxnet2015-fullset-beta": "FLX_DE-Tst_FLUXNET2015_FULLSET_DD_2008-2009_beta-3.csv",
    "ameriflux-fullset": "AMF_DE-Tst_FLUXNET_FULLSET_DD_2008-2009_3-5.csv",
    "ameriflux-subset": "AMF_DE-Tst_FLUXNET_SUBSET_DD_2008-2009_3-5.csv",
    "icos-l2": "ICOSETC_DE-Tst_FLUXNET_DD_L2.csv",
    "icos-interim-l2": "ICOSETC_DE-Tst_FLUXNET_DD_INTERIM_L2.csv",
}
#: The format each name must be detected as, and whether the file holds only the SUBSET columns.
CASES = {
    "fluxnet2015-subset": (FLUXNET2015_SUBSET, True),
    "fluxnet2015-fullset-beta": (FLUXNET2015_FULLSET, False),
    "ameriflux-fullset": (AMERIFLUX_FLUXNET, False),
    "ameriflux-subset": (AMERIFLUX_FLUXNET, True),
    "icos-l2": (ICOS_ETC_L2_FLUXNET, False),
    "icos-interim-l2": (ICOS_ETC_L2_FLUXNET, False),
}


def fullset_frame() -> pd.DataFrame:
    """The synthetic FULLSET_DD table of test_fluxnet with the FULLSET's QC, SW_IN_POT and
    FULLSET-only columns added (the latter deliberately wrong for the reader's variables)."""
    df = flux_frame()
    rng = np.random.default_rng(1)
    n = len(df)
    dates = pd.to_datetime(df["TIMESTAMP"], format="%Y%m%d")
    df.insert(2, "TA_F_QC", rng.uniform(0.85, 1.0, n))
    df.insert(3, "SW_IN_POT", fluxnet.solar.sw_in_pot(50.0, dates.dt.day_of_year.to_numpy()))
    df.insert(5, "SW_IN_F_QC", rng.uniform(0.85, 1.0, n))
    df["VPD_F_QC"] = rng.uniform(0.85, 1.0, n)
    df["CO2_F_MDS_QC"] = np.where(df["CO2_F_MDS"] == -9999, 0.0, 1.0)
    df["WS_F"] = 2.0
    df["NETRAD"] = df["SW_IN_F"] * 0.6
    df["NEE_VUT_REF"] = -df["GPP_NT_VUT_REF"] + 2.0
    df["GPP_DT_VUT_REF"] = df["GPP_NT_VUT_REF"] * 1.1
    for i, c in enumerate(FULLSET_ONLY):
        df[c] = 1000.0 + i                              # implausible for every reader variable
    return df


def subset_of(full: pd.DataFrame) -> pd.DataFrame:
    """What ONEFlux writes as SUBSET: the FULLSET table restricted, in its order, to
    VARIABLE_LIST_SUB (oneflux/pipeline/site_data_product.py)."""
    return full[[c for c in ONEFLUX_SUBSET_VARIABLES if c in full.columns]]


def one_line(text: str) -> bool:
    return "\n" not in text.strip()


def cli_error(stderr: str) -> str:
    """The command's error message: exactly one line of stderr (beside a progress bar)."""
    lines = [line for line in stderr.splitlines() if "error:" in line]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("lue-spie data fluxnet: error: ")  # the command as typed
    return lines[0]


@pytest.fixture(scope="module")
def baseline(tmp_path_factory) -> fluxnet.FluxnetTables:
    """The tidy tables of the FULLSET file."""
    tmp = tmp_path_factory.mktemp("fullset")
    src, fapar, sites = write_inputs(tmp, flux=fullset_frame())
    assert fluxnet.find_fluxnet_files(src)[SITE].format is FLUXNET2015_FULLSET
    return fluxnet.read_fluxnet_dataset(src, fapar, sites)


# --------------------------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------------------------

def test_registry_patterns_match_the_documented_names():
    documented = {
        # Pastorello et al. 2020, Table 1 (FLX_US-Ha1_FLUXNET2015_FULLSET_DD_1992-2012_1-3.csv)
        "FLX_US-Ha1_FLUXNET2015_FULLSET_DD_1992-2012_1-3.csv": FLUXNET2015_FULLSET,
        "FLX_CH-Lae_FLUXNET2015_SUBSET_DD_2004-2014_1-3.csv": FLUXNET2015_SUBSET,
        "FLX_FI-Hyy_FLUXNET2015_FULLSET_DD_1996-2018_beta-3.csv": FLUXNET2015_FULLSET,
        # AmeriFlux FLUXNET data product README
        "AMF_US-Ha1_FLUXNET_FULLSET_DD_1992-2020_3-5.csv": AMERIFLUX_FLUXNET,
        "AMF_US-Me2_FLUXNET_SUBSET_DD_2002-2020_3-5.csv": AMERIFLUX_FLUXNET,
        # ICOS ETC L2 archives (final, interim, and two-digit processing versions)
        "ICOSETC_DE-Hai_FLUXNET_DD_L2.csv": ICOS_ETC_L2_FLUXNET,
        "ICOSETC_DE-Hai_FLUXNET_DD_INTERIM_L2.csv": ICOS_ETC_L2_FLUXNET,
        "ICOSETC_DE-Hai_FLUXNET_DD_01.csv": ICOS_ETC_L2_FLUXNET,
    }
    for name, fmt in documented.items():
        found, m = detect_format(name)
        assert found is fmt, name
        assert looks_like_daily_flux_file(name)
        assert m["site"] == name.split("_")[1]
    # Other resolutions, auxiliary products and metadata: no format, and not candidates.
    for name in ("FLX_US-Ha1_FLUXNET2015_FULLSET_HH_1992-2012_1-3.csv",
                 "FLX_US-Ha1_FLUXNET2015_ERAI_DD_1989-2014_1-3.csv",
                 "FLX_US-Ha1_FLUXNET2015_AUXNEE_1992-2012_1-3.csv",
                 "AMF_US-Ha1_FLUXNET_FULLSET_HR_1992-2020_3-5.csv",
                 "AMF_US-Ha1_FLUXNET_ERA5_DD_1992-2020_3-5.csv",
                 "ICOSETC_DE-Hai_FLUXNET_HH_L2.csv",
                 "ICOSETC_DE-Hai_VARINFO_FLUXNET_DD_L2.csv",
                 "sites.csv", "fapar_CH-Lae_MCD15A3H_2010-2012.csv", "README.md"):
        assert not looks_like_daily_flux_file(name), name
        with pytest.raises(FluxFormatError):
            detect_format(name)
    # Every format's error label carries its pattern, and the patterns are distinct.
    assert len({f.file_pattern for f in FORMATS}) == len(FORMATS)
    assert FLUXNET2015_FULLSET.file_pattern == "FLX_<SITE>_FLUXNET2015_FULLSET_DD_<y0>-<y1>_<v>.csv"
    assert fluxnet.FILE_PATTERN is FLUXNET2015_FULLSET.pattern


def test_no_format_lacks_a_variable_the_reader_uses():
    reader = (*fluxnet.REQUIRED_FLUX_COLUMNS, *fluxnet.OPTIONAL_FLUX_COLUMNS)
    # ONEFlux's SUBSET keeps every column the reader reads (FULLSET is a superset of it).
    assert [c for c in reader if c not in ONEFLUX_SUBSET_VARIABLES] == []
    assert all(f.lacks == () and f.renames == () for f in FORMATS)
    assert all(f.timestamp == "TIMESTAMP" and f.missing_value == -9999 for f in FORMATS)
    # ... and the SUBSET written in the tests is a true reduction of the FULLSET table.
    full = fullset_frame()
    assert set(full.columns) - set(subset_of(full).columns) == set(FULLSET_ONLY)


# --------------------------------------------------------------------------------------------
# Each format reads into the FULLSET's tidy tables
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("case", list(CASES))
def test_each_format_reads_into_the_fullset_tables(tmp_path, baseline, case):
    fmt, subset = CASES[case]
    full = fullset_frame()
    src, fapar, sites = write_inputs(tmp_path, flux=subset_of(full) if subset else full,
                                     name=NAMES[case])
    found = fluxnet.find_fluxnet_files(src)[SITE]
    assert found.format is fmt and found.path.name == NAMES[case]
    with warnings.catch_warnings():
        warnings.simplefilter("error", fluxnet.TruncatedFileWarning)
        t = fluxnet.read_fluxnet_dataset(src, fapar, sites)
    pd.testing.assert_frame_equal(t.site_day, baseline.site_day)
    pd.testing.assert_frame_equal(t.sites, baseline.sites)
    notes = t.notes[SITE]
    if fmt is FLUXNET2015_FULLSET:
        assert notes == baseline.notes[SITE]
    else:
        assert notes[0].startswith(f"flux file format: {fmt.name}")
        assert notes[1:] == baseline.notes[SITE]


@pytest.mark.parametrize("case", ["fluxnet2015-subset", "ameriflux-subset", "icos-l2"])
def test_build_and_cli_write_the_fullset_tables(tmp_path, baseline, case, capsys):
    from lue_spie.cli import main

    fmt, subset = CASES[case]
    full = fullset_frame()
    src, fapar, sites = write_inputs(tmp_path, flux=subset_of(full) if subset else full,
                                     name=NAMES[case])
    out = fluxnet.build_fluxnet_dataset(src, fapar, sites, tmp_path / "built")
    built = io.load_dataset(out)
    rc = main(["data", "fluxnet", "--src", str(src), "--fapar", str(fapar), "--sites",
               str(sites), "--out", str(tmp_path / "cli")])
    assert rc == 0 and "site-days" in capsys.readouterr().out
    cli = io.load_dataset(tmp_path / "cli")
    for ds in (built, cli):
        pd.testing.assert_frame_equal(ds.site_day, baseline.site_day)
        pd.testing.assert_frame_equal(ds.sites, baseline.sites)


def test_years_in_subset_and_ameriflux_names_are_checked(tmp_path):
    flux = subset_of(fullset_frame())                       # rows 2008-2009
    for name in ("FLX_DE-Tst_FLUXNET2015_SUBSET_DD_2007-2012_1-4.csv",
                 "AMF_DE-Tst_FLUXNET_SUBSET_DD_2007-2012_3-5.csv"):
        src = tmp_path / name[:3]
        src.mkdir()
        flux.to_csv(src / name, index=False)
        with pytest.warns(fluxnet.TruncatedFileWarning, match="missing years 2007, 2010-2012"):
            fluxnet.read_fluxnet_site(src / name, site=SITE, lat=50.0, elevation=500.0,
                                      whc=150.0)


# --------------------------------------------------------------------------------------------
# Anything else: one line naming the file and the accepted formats
# --------------------------------------------------------------------------------------------

def _assert_lists_formats(message: str) -> None:
    assert one_line(message)
    for fmt in FORMATS:
        assert f"{fmt.name} ({fmt.file_pattern})" in message


def test_unknown_daily_file_name_is_a_one_line_error(tmp_path, capsys):
    from lue_spie.cli import main

    src, fapar, sites = write_inputs(tmp_path, flux=fullset_frame())
    # The other resolutions, auxiliary products and tables beside it are left alone.
    for other in ("FLX_DE-Tst_FLUXNET2015_FULLSET_HH_2008-2009_1-4.csv",
                  "FLX_DE-Tst_FLUXNET2015_ERAI_DD_1989-2014_1-4.csv", "README.md"):
        (src / other).write_text("TIMESTAMP_START,TA_F\n")
    assert list(fluxnet.find_fluxnet_files(src)) == [SITE]
    # A daily FLUXNET file of no accepted format (here the 2026 ONEFlux naming) is an error,
    # not silently left out.
    unknown = "ICOSETC_DE-Tst_FLUXNET_FLUXMET_DD_2008-2009_v1.3_r1.csv"
    fullset_frame().to_csv(src / unknown, index=False)
    with pytest.raises(FluxFormatError, match="matches no accepted format") as err:
        fluxnet.find_fluxnet_files(src)
    assert unknown in str(err.value)
    _assert_lists_formats(str(err.value))
    rc = main(["data", "fluxnet", "--src", str(src), "--fapar", str(fapar), "--sites",
               str(sites), "--out", str(tmp_path / "o")])
    message = cli_error(capsys.readouterr().err)
    assert rc == 1 and unknown in message  # data that cannot be read: exit 1
    _assert_lists_formats(message)
    assert not (tmp_path / "o").exists()
    # A file read directly by a name of no format.
    odd = tmp_path / "flux.csv"
    fullset_frame().to_csv(odd, index=False)
    with pytest.raises(FluxFormatError, match="flux.csv: the file name matches no accepted") as e:
        fluxnet.read_fluxnet_site(odd, site=SITE, lat=50.0, elevation=500.0, whc=150.0)
    _assert_lists_formats(str(e.value))


@pytest.mark.parametrize("columns, why", [
    (["TIMESTAMP_START", "TIMESTAMP_END"], "header has TIMESTAMP_START/TIMESTAMP_END"),
    (["date"], r"header has no TIMESTAMP column \(first columns \['date'"),
])
def test_header_of_no_daily_format_is_a_one_line_error(tmp_path, capsys, columns, why):
    from lue_spie.cli import main

    flux = subset_of(fullset_frame()).drop(columns=["TIMESTAMP"])
    for i, c in enumerate(columns):
        flux.insert(i, c, flux_frame()["TIMESTAMP"] + ("0000" if "START" in c else ""))
    name = NAMES["fluxnet2015-subset"]
    src, fapar, sites = write_inputs(tmp_path, flux=flux, name=name)
    out = tmp_path / "out"
    with pytest.raises(FluxFormatError, match=why) as err:
        fluxnet.build_fluxnet_dataset(src, fapar, sites, out)
    assert name in str(err.value) and "FLUXNET2015 SUBSET daily file" in str(err.value)
    _assert_lists_formats(str(err.value))
    assert not out.exists()
    rc = main(["data", "fluxnet", "--src", str(src), "--fapar", str(fapar), "--sites",
               str(sites), "--out", str(out)])
    message = cli_error(capsys.readouterr().err)
    assert rc == 1 and name in message and not out.exists()
    _assert_lists_formats(message)


def test_two_files_of_one_site_in_different_formats(tmp_path):
    src, fapar, sites = write_inputs(tmp_path, flux=fullset_frame())
    subset_of(fullset_frame()).to_csv(src / NAMES["fluxnet2015-subset"], index=False)
    with pytest.raises(ValueError, match=r"two daily flux \(FLUXNET2015 FULLSET and FLUXNET2015 "
                                         r"SUBSET\) files for site DE-Tst: .*; keep one"):
        fluxnet.read_fluxnet_dataset(src, fapar, sites)
    (src / FLUX_NAME).unlink()
    assert fluxnet.find_fluxnet_files(src)[SITE].format is FLUXNET2015_SUBSET


def test_no_flux_file_lists_the_accepted_formats(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "sites.csv").write_text("SITE_ID\n")
    with pytest.raises(FileNotFoundError, match="no FLUXNET2015 FULLSET daily files") as err:
        fluxnet.find_fluxnet_files(tmp_path / "src")
    _assert_lists_formats(str(err.value))


# --------------------------------------------------------------------------------------------
# The real CH-Lae FULLSET file written to each format (../shared/fluxnet)
# --------------------------------------------------------------------------------------------

REAL = "FLX_CH-Lae_FLUXNET2015_FULLSET_DD_2004-2014_1-4.csv"
REAL_NAMES = {
    "fluxnet2015-subset": "FLX_CH-Lae_FLUXNET2015_SUBSET_DD_2004-2014_1-4.csv",
    "ameriflux-subset": "AMF_CH-Lae_FLUXNET_SUBSET_DD_2004-2014_3-5.csv",
    "ameriflux-fullset": "AMF_CH-Lae_FLUXNET_FULLSET_DD_2004-2014_3-5.csv",
    "icos-l2": "ICOSETC_CH-Lae_FLUXNET_DD_L2.csv",
}


@pytest.mark.realdata
@needs_shared
def test_real_ch_lae_in_each_format_reads_like_its_fullset_file(tmp_path, capsys):
    from lue_spie.cli import main

    fapar = SHARED_FLUXNET / "fapar_CH-Lae_MCD15A3H_2010-2012.csv"
    sites = SHARED_FLUXNET / "sites.csv"
    ref = fluxnet.read_fluxnet_dataset(SHARED_FLUXNET, fapar, sites, site_ids=["CH-Lae"])
    real = pd.read_csv(SHARED_FLUXNET / REAL, dtype=str, keep_default_na=False)
    for case, name in REAL_NAMES.items():
        fmt, subset = CASES[case]
        src = tmp_path / case
        src.mkdir()
        shutil.copy(sites, src / "sites.csv")
        (subset_of(real) if subset else real).to_csv(src / name, index=False)
        assert fluxnet.find_fluxnet_files(src)["CH-Lae"].format is fmt
        t = fluxnet.read_fluxnet_dataset(src, fapar, src / "sites.csv")
        pd.testing.assert_frame_equal(t.site_day, ref.site_day)
        pd.testing.assert_frame_equal(t.sites, ref.sites)
        assert t.notes["CH-Lae"][1:] == ref.notes["CH-Lae"]
    # Through the command, from the ICOS-named copy.
    out = tmp_path / "cli"
    rc = main(["data", "fluxnet", "--src", str(tmp_path / "icos-l2"), "--fapar", str(fapar),
               "--sites", str(sites), "--out", str(out)])
    assert rc == 0 and "1096 site-days" in capsys.readouterr().out
    pd.testing.assert_frame_equal(io.load_dataset(out).site_day, ref.site_day)

