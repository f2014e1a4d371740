"""Schema of the tidy data contract: constants, coercion and validation errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lue_spie.data import schema


def make_site_day(n_sites: int = 2, n_days: int = 10, start: str = "2010-01-01") -> pd.DataFrame:
    rng = np.random.default_rng(1)
    frames = [pd.DataFrame({"site": f"S{i}", "date": pd.date_range(start, periods=n_days)})
              for i in range(n_sites)]
    df = pd.concat(frames, ignore_index=True)
    n = len(df)
    df["T"] = rng.uniform(-5, 25, n)
    df["VPD"] = rng.uniform(0, 2000, n)
    df["CO2"] = 390.0
    df["W"] = rng.uniform(0, 1, n)
    df["PAR"] = rng.uniform(1, 12, n)
    df["FAPAR"] = rng.uniform(0.1, 0.9, n)
    df["CI"] = rng.uniform(0, 1, n)
    df["GPP_obs"] = rng.uniform(0, 10, n)
    df["SW_IN"] = rng.uniform(20, 300, n)
    df["SW_IN_POT"] = 350.0
    df["P"] = rng.exponential(2, n)
    df["PA"] = 95.0
    df["PPFD"] = rng.uniform(50, 600, n)
    df["NDVI"] = rng.uniform(0.2, 0.8, n)
    df["TMIN"] = np.nan
    df["TMAX"] = np.nan
    for q in schema.QC_COLUMNS:
        df[q] = 1.0
    return schema.coerce_site_day(df)


def make_sites(n_sites: int = 2) -> pd.DataFrame:
    df = pd.DataFrame({
        "site": [f"S{i}" for i in range(n_sites)],
        "PFT": ["ENF", "DBF", "GRA", "CRO"][:n_sites],
        "koeppen": ["Dfb", "Cfb", "BSk", "Csa"][:n_sites],
        "koeppen_main": ["D", "C", "B", "C"][:n_sites],
        "lat": 45.0, "lon": 8.0, "elevation": 500.0, "whc": 150.0,
        "first_year": 2010, "last_year": 2010, "source": "virtual",
    })
    for c in schema.FEATURE_COLUMNS:
        df[c] = np.nan
    return schema.coerce_sites(df)


def test_constants_match_the_contract():
    from lue_spie.model import FORCING_KEYS

    assert schema.PFTS == ("CRO", "CSH", "DBF", "EBF", "ENF", "GRA", "MF", "OSH", "SAV", "WET",
                           "WSA")
    assert len(schema.KOEPPEN_TYPES) == 14 and "ET" in schema.KOEPPEN_TYPES
    assert schema.FORCING_COLUMNS == tuple(FORCING_KEYS)
    assert len(schema.BIO_COLUMNS) == 19 and schema.BIO_COLUMNS[-1] == "BIO19"
    assert schema.AI_COLUMNS == ("AI1", "AI2")
    assert len(schema.VIF_COLUMNS) == 11
    assert schema.NPDEP_COLUMNS == ("NdepNHX", "NdepNOY", "Pdep")
    assert len(schema.SOIL_COLUMNS) == 17
    assert all(c.startswith("soil_") for c in schema.SOIL_COLUMNS)
    assert len(schema.FEATURE_COLUMNS) == 19 + 2 + 11 + 3 + 17
    assert len(set(schema.SITES_COLUMN_NAMES)) == len(schema.SITES_COLUMN_NAMES)
    for c in (*schema.FORCING_COLUMNS, *schema.EXTRA_COLUMNS, *schema.QC_COLUMNS, "GPP_obs"):
        assert c in schema.SITE_DAY_SPEC
    assert schema.unit("VPD") == "Pa" and schema.unit("soil_clay") == "%"
    with pytest.raises(KeyError, match="nope"):
        schema.unit("nope")


def test_every_spec_documents_unit_and_description():
    for spec in schema.SITE_DAY_COLUMNS + schema.SITES_COLUMNS:
        assert spec.description
        if spec.dtype == "float":
            assert spec.unit, spec.name
    with pytest.raises(ValueError, match="dtype"):
        schema.ColumnSpec("x", "complex", "-", None, None, True, "bad")


def test_valid_tables_pass_and_coerce_gives_contract_dtypes():
    sd = make_site_day()
    assert str(sd["date"].dtype) == "datetime64[ns]"
    assert schema.validate_site_day(sd) is sd
    st = make_sites()
    assert st["first_year"].dtype == np.int64
    schema.validate_sites(st)


def test_missing_column_names_source_and_column():
    sd = make_site_day().drop(columns=["VPD"])
    with pytest.raises(ValueError, match=r"my/file.parquet: missing column\(s\) \['VPD'\]"):
        schema.validate_site_day(sd, source="my/file.parquet")


def test_wrong_dtype():
    sd = make_site_day()
    sd["T"] = sd["T"].astype(str)
    with pytest.raises(ValueError, match="column 'T': expected a float dtype"):
        schema.validate_site_day(sd)
    sd = make_site_day()
    sd["date"] = sd["date"].astype("datetime64[us]")
    with pytest.raises(ValueError, match=r"column 'date': expected dtype datetime64\[ns\]"):
        schema.validate_site_day(sd)
    st = make_sites()
    st["first_year"] = st["first_year"].astype(float)
    with pytest.raises(ValueError, match="column 'first_year': expected an integer dtype"):
        schema.validate_sites(st)


def test_out_of_range_reports_count_and_first_example():
    sd = make_site_day()
    sd.loc[3, "VPD"] = 25.0e3
    sd.loc[7, "VPD"] = -1.0
    with pytest.raises(ValueError) as err:
        schema.validate_site_day(sd, source="x.parquet")
    msg = str(err.value)
    assert "x.parquet: column 'VPD': 2 values outside the valid range [0.0, 10000.0] (Pa)" in msg
    assert "first at row 3 (site S0, date 2010-01-04): 25000" in msg


def test_a_dimensionless_column_is_named_so_in_messages():
    sd = make_site_day()
    sd.loc[2, "FAPAR"] = 1.5
    with pytest.raises(ValueError, match=r"column 'FAPAR': 1 values outside the valid range "
                                         r"\[0.0, 1.0\] \(dimensionless\)"):
        schema.validate_site_day(sd, source="x.parquet")


def test_nan_allowed_where_nullable_but_not_inf():
    sd = make_site_day()
    sd.loc[0, "GPP_obs"] = np.nan
    schema.validate_site_day(sd)
    sd.loc[1, "T"] = np.inf
    with pytest.raises(ValueError, match="column 'T': 1 infinite values"):
        schema.validate_site_day(sd)


def test_missing_identifier_is_an_error():
    sd = make_site_day()
    sd.loc[2, "site"] = None
    with pytest.raises(ValueError, match="column 'site': 1 missing values"):
        schema.validate_site_day(sd)


def test_duplicate_site_date():
    sd = make_site_day()
    sd = pd.concat([sd.iloc[:5], sd.iloc[4:]], ignore_index=True)
    with pytest.raises(ValueError, match=r"1 duplicate \(site, date\) rows, first at row 5: "
                                         r"site S0, date 2010-01-05"):
        schema.validate_site_day(sd)


def test_dates_out_of_order_and_sites_not_sorted():
    sd = make_site_day()
    swapped = sd.copy()
    swapped.iloc[[2, 3]] = sd.iloc[[3, 2]].to_numpy()
    swapped = schema._coerce(swapped, schema.SITE_DAY_COLUMNS)
    with pytest.raises(ValueError, match="dates out of order within a site"):
        schema.validate_site_day(swapped)
    rev = sd.iloc[::-1].reset_index(drop=True)
    with pytest.raises(ValueError, match="not sorted by site"):
        schema.validate_site_day(rev)


def test_dates_must_be_midnight():
    sd = make_site_day()
    sd.loc[4, "date"] = sd.loc[4, "date"] + pd.Timedelta(hours=12)
    with pytest.raises(ValueError, match="not at midnight"):
        schema.validate_site_day(sd)


def test_sites_unknown_pft_and_koeppen():
    st = make_sites()
    st.loc[1, "PFT"] = "BSV"
    with pytest.raises(ValueError, match=r"column 'PFT': 1 values not in .* unknown \['BSV'\]"):
        schema.validate_sites(st, source="sites.parquet")
    st = make_sites()
    st.loc[0, "koeppen"] = "Dfd"
    with pytest.raises(ValueError, match=r"column 'koeppen'.*unknown \['Dfd'\]"):
        schema.validate_sites(st)


def test_sites_consistency_checks():
    st = make_sites()
    st.loc[0, "koeppen_main"] = "C"
    with pytest.raises(ValueError, match="koeppen_main.*inconsistent with 'koeppen'.*S0"):
        schema.validate_sites(st)
    st = make_sites()
    st.loc[1, "site"] = "S0"
    with pytest.raises(ValueError, match="1 duplicate site ids"):
        schema.validate_sites(st)
    st = make_sites()
    st.loc[0, "first_year"] = 2012
    with pytest.raises(ValueError, match="first_year > last_year"):
        schema.validate_sites(st)
    st = make_sites()
    st.loc[0, "lat"] = np.nan
    with pytest.raises(ValueError, match="column 'lat': 1 missing values"):
        schema.validate_sites(st)
    st = make_sites()
    st.loc[0, "soil_clay"] = 120.0
    with pytest.raises(ValueError, match="column 'soil_clay'.*outside the valid range"):
        schema.validate_sites(st)


def test_sites_missing_feature_column():
    st = make_sites().drop(columns=["soil_cn"])
    with pytest.raises(ValueError, match=r"missing column\(s\) \['soil_cn'\]"):
        schema.validate_sites(st)


def test_not_a_dataframe():
    with pytest.raises(ValueError, match="expected a pandas DataFrame"):
        schema.validate_site_day({"site": []})
