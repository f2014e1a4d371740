"""FLUXNET daily flux-file formats: detected from the file name, confirmed by the header.

:mod:`lue_spie.data.fluxnet` reads one kind of content, the daily (DD) output of the ONEFlux
processing pipeline in FLUXNET2015 conventions (``TIMESTAMP`` as YYYYMMDD, -9999 for missing,
FLUXNET units and variable names such as TA_F, VPD_F, SW_IN_F, GPP_NT_VUT_REF), which reaches
users under several file names. Each accepted format is one :class:`FluxnetFormat`: its file-name
pattern, the header it must have, the mapping of its column names onto the reader's, and the
reader's variables it lacks (with how the reader fills them). :data:`FORMATS` lists them in the
order they are tried; a daily FLUXNET-family file that none of them matches, or whose header does
not fit, is a one-line :class:`FluxFormatError` naming the file and the accepted formats.

Sources, by format (what each says about naming and columns):

- FLUXNET2015 FULLSET and SUBSET (``FLX_<SITE>_FLUXNET2015_<FULLSET|SUBSET>_DD_<y0>-<y1>_<v>``):
  file naming in Pastorello et al. (2020), "The FLUXNET2015 dataset and the ONEFlux processing
  pipeline for eddy covariance data", Scientific Data 7:225, Table 1 (``FLX_[SITE_ID]_FLUXNET2015_
  [DATA_PRODUCT]_[RESOLUTION]_[FIRST_YEAR]-[LAST_YEAR]_[SITE_VERSION]-[CODE_VERSION].[EXT]``),
  https://doi.org/10.1038/s41597-020-0534-3; variables on the FLUXNET2015 "FULLSET Data
  Product" and "SUBSET Data Product" pages (https://fluxnet.org/data/fluxnet2015-dataset/
  fullset-data-product/ and .../subset-data-product/). The exact column lists are those of the
  code that writes the files, ONEFlux (https://github.com/fluxnet/ONEFlux,
  ``oneflux/pipeline/variables_codes.py``: ``VARIABLE_LIST_FULL`` and ``VARIABLE_LIST_SUB``,
  identical in v0.4.1 and master of January 2026 apart from RECO_SR): the SUBSET file is the FULLSET
  table restricted, in that order, to ``VARIABLE_LIST_SUB`` (``site_data_product.py``), daily
  files carry ``TIMESTAMP`` (YYYYMMDD; weekly and finer files carry ``TIMESTAMP_START`` and
  ``TIMESTAMP_END``) and missing values are written as -9999. The SUBSET keeps every variable
  this reader uses (TA_F, TA_F_QC, SW_IN_F, SW_IN_F_QC, SW_IN_POT, LW_IN_F, VPD_F, VPD_F_QC,
  PA_F, P_F, PPFD_IN, CO2_F_MDS, CO2_F_MDS_QC, SWC_F_MDS_n, SWC_F_MDS_n_QC, NEE_VUT_REF_QC,
  GPP_NT_VUT_REF) and drops only what it does not use: the _MDS and _ERA inputs of the
  consolidated _F variables (TA_F_MDS, TA_ERA, VPD_F_MDS, SW_IN_F_MDS, PA, P, ...), the _NIGHT
  and _DAY aggregates, LW_IN_JSB, the CUT variants, USTAR50/MEAN/SE and the 05/16/84/95
  percentiles, the _JOINTUNC and RANDUNC_METHOD/_N columns and EBC_CF_N/METHOD. The ICOS
  Drought 2018 and Warm Winter 2020 releases in FLUXNET2015 format carry a ``beta-<n>`` version
  (e.g. ``FLX_FI-Hyy_FLUXNET2015_FULLSET_DD_1996-2018_beta-3.csv``); that spelling is taken
  from file names in public analysis code, not from a release document.
- AmeriFlux FLUXNET (``AMF_<SITE>_FLUXNET_<FULLSET|SUBSET>_DD_<y0>-<y1>_<v>``): the "AmeriFlux
  FLUXNET data product README (last changed on 20211116)" shipped with each AmeriFlux FLUXNET
  download (https://ameriflux.lbl.gov/): names ``[PUBLISHER]_[SITE_ID]_FLUXNET_[GROUPING]_
  [RESOLUTION]_[FIRST_YEAR]-[LAST_YEAR]_[SITE_VERSION]-[CODE_VERSION].[EXT]`` (e.g.
  ``AMF_US-Ha1_FLUXNET_FULLSET_DD_1992-2020_3-5.csv``), made with ONEFlux and "compatible with
  the FLUXNET2015 dataset", SUBSET a subset of FULLSET, ``TIMESTAMP`` in daily files, -9999 for
  missing, same variable roots and qualifiers (the ERA-Interim downscaling replaced by ERA5,
  which changes values of the _ERA-filled days, not names). ONEFlux writes ``AMF`` when run with
  ``MODE_ISSUER = 'AMF'`` (``oneflux/local_settings_template.py``).
- ICOS ETC L2 FLUXNET (``ICOSETC_<SITE>_FLUXNET_DD_<L2|INTERIM_L2|NN>``): the ICOS Carbon Portal
  collections "Ecosystem final quality (L2) product in ETC-Archive format" (release 2019-1,
  https://doi.org/10.18160/NNAD-PN5W; INTERIM release 2021-2, https://doi.org/10.18160/6RCS-434F,
  and later ones), whose per-site archives ``ICOSETC_<SITE>_ARCHIVE_L2.zip`` hold
  ``ICOSETC_<SITE>_FLUXNET_DD_L2.csv`` (``..._INTERIM_L2.csv`` in interim releases) beside
  ``..._FLUXNET_HH_L2.csv`` and VARINFO/SITEINFO files. The 2019-1 release named its files with
  a two-digit processing version instead (``ICOSETC_CC-###_FLUXES_VP.csv``), and daily files
  named ``ICOSETC_<SITE>_FLUXNET_DD_01.csv`` appear in public analysis code of ICOS interim
  releases: the two-digit ``NN`` is accepted for them. The content follows the FLUXNET
  (ONEFlux) conventions of Pastorello et al. (2020), with variable descriptions in the archive's
  VARINFO files. That the daily file has ``TIMESTAMP`` (not ``TIMESTAMP_START``) and -9999 for
  missing is confirmed only through public code that reads these files (it reads
  ``TIMESTAMP`` as YYYYMMDD next to AmeriFlux FULLSET_DD files and masks values below -9000),
  not through an ETC document; the header check below enforces it. The ETC release 2026-1
  also publishes files in the new ONEFlux naming (e.g.
  ``ICOSETC_DE-Gwg_FLUXNET_FLUXMET_HH_2023-2025_v1.3_r1.zip``; ONEFlux master,
  ``oneflux/pipeline/common.py``: ``<ISSUER>_<SITE>_FLUXNET_FLUXMET_<RES>_<y0>-<y1>_v<code>_r
  <data>``); that format is not accepted here (its daily file could not be checked) and gives
  the unknown-format error.

Column mapping: all four formats use the ONEFlux variable names, so the mapping onto the
reader's names is the identity and the tidy tables are the same for the same data whatever the
format. Lacking variables: per the ONEFlux lists, none of the four lacks a variable the reader
uses. A single site's file may still lack one (a variable that was not measured, e.g. PPFD_IN,
SWC_F_MDS_1 or CO2_F_MDS; or files reduced by hand); the reader then applies its documented
fallbacks (:mod:`lue_spie.data.fluxnet`), whatever the format.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lue_spie.constants import FLUXNET_MISSING
from lue_spie.errors import DataError

__all__ = [
    "AMERIFLUX_FLUXNET", "FLUXNET2015_FULLSET", "FLUXNET2015_SUBSET", "FORMATS",
    "ICOS_ETC_L2_FLUXNET", "ONEFLUX_SUBSET_VARIABLES", "FluxFormatError", "FluxnetFormat",
    "accepted_formats", "detect_format", "format_of", "looks_like_daily_flux_file",
    "unknown_format_message",
]

#: FLUXNET site id CC-SSS (two-letter country code, three-character site code).
_SITE = r"(?P<site>[A-Z]{2}-[A-Za-z0-9]{3})"
_YEARS = r"(?P<y0>\d{4})-(?P<y1>\d{4})"


class FluxFormatError(DataError):
    """A flux file of no accepted format, or whose header does not fit its format (one line)."""


@dataclass(frozen=True)
class FluxnetFormat:
    """One accepted FLUXNET daily file format.

    Attributes:
        key: Short identifier (``"fluxnet2015-fullset"``), used in notes and tests.
        name: Human name (``"FLUXNET2015 FULLSET"``).
        template: The file name without its extension, with ``<SITE>``, ``<y0>``, ``<y1>`` and
            ``<v>`` (version) placeholders.
        pattern: The full file-name regular expression, with groups ``site`` and ``version``
            and, when the name carries them, ``y0`` and ``y1``.
        source: Where the naming and columns are documented (see the module docstring).
        extension: The file extension.
        timestamp: The date column (YYYYMMDD) the header must have.
        renames: Pairs (column in the file, column the reader uses) for names that differ.
        lacks: Pairs (reader column, how it is filled) for variables the documented format
            does not have.
        missing_value: The number that marks a missing value.
    """

    key: str
    name: str
    template: str
    pattern: re.Pattern[str]
    source: str
    extension: str = "csv"
    timestamp: str = "TIMESTAMP"
    renames: tuple[tuple[str, str], ...] = ()
    lacks: tuple[tuple[str, str], ...] = ()
    missing_value: float = FLUXNET_MISSING

    @property
    def file_pattern(self) -> str:
        """The file-name pattern as a reader would write it."""
        return f"{self.template}.{self.extension}"

    @property
    def label(self) -> str:
        """``name (file pattern)``, as the error messages list the formats."""
        return f"{self.name} ({self.file_pattern})"

    def match(self, name: str) -> re.Match[str] | None:
        """The file-name match of ``name`` (a base name), or None."""
        return self.pattern.match(name)

    def check_header(self, columns: Sequence[str], path: str | Path) -> None:
        """Raise :class:`FluxFormatError` when the header is not this format's daily header.

        Only what tells a daily file of this kind from another file is checked here (the date
        column); the reader reports missing variables itself, naming them.
        """
        cols = [str(c).strip() for c in columns]
        if self.timestamp in cols:
            return
        if "TIMESTAMP_START" in cols:
            why = (f"its header has TIMESTAMP_START/TIMESTAMP_END, as half-hourly, hourly and "
                   f"weekly files do, not the {self.timestamp} (YYYYMMDD) column of a "
                   f"{self.name} daily file")
        else:
            why = (f"its header has no {self.timestamp} column (first columns {cols[:5]}), so "
                   f"it is not a {self.name} daily file")
        raise FluxFormatError(unknown_format_message(path, why))

    def reader_columns(self, columns: Sequence[str]) -> list[str]:
        """The file's column names mapped onto the reader's (identity except ``renames``)."""
        mapping = dict(self.renames)
        return [mapping.get(c, c) for c in columns]


_ONEFLUX = ("ONEFlux (github.com/fluxnet/ONEFlux) oneflux/pipeline/variables_codes.py "
            "VARIABLE_LIST_FULL/VARIABLE_LIST_SUB")
_FLX_VERSION = r"(?P<version>[0-9]+-[0-9]+|beta-[0-9]+)"

FLUXNET2015_FULLSET = FluxnetFormat(
    key="fluxnet2015-fullset",
    name="FLUXNET2015 FULLSET",
    template="FLX_<SITE>_FLUXNET2015_FULLSET_DD_<y0>-<y1>_<v>",
    pattern=re.compile(rf"^FLX_{_SITE}_FLUXNET2015_FULLSET_DD_{_YEARS}_{_FLX_VERSION}\.csv$"),
    source=("Pastorello et al. 2020, Sci. Data 7:225, Table 1; fluxnet.org FULLSET Data "
            f"Product page; {_ONEFLUX}"),
)

FLUXNET2015_SUBSET = FluxnetFormat(
    key="fluxnet2015-subset",
    name="FLUXNET2015 SUBSET",
    template="FLX_<SITE>_FLUXNET2015_SUBSET_DD_<y0>-<y1>_<v>",
    pattern=re.compile(rf"^FLX_{_SITE}_FLUXNET2015_SUBSET_DD_{_YEARS}_{_FLX_VERSION}\.csv$"),
    source=("Pastorello et al. 2020, Sci. Data 7:225, Table 1; fluxnet.org SUBSET Data "
            f"Product page; {_ONEFLUX} (SUBSET = FULLSET restricted to VARIABLE_LIST_SUB)"),
)

AMERIFLUX_FLUXNET = FluxnetFormat(
    key="ameriflux-fluxnet",
    name="AmeriFlux FLUXNET (ONEFlux)",
    template="AMF_<SITE>_FLUXNET_<FULLSET|SUBSET>_DD_<y0>-<y1>_<v>",
    pattern=re.compile(rf"^AMF_{_SITE}_FLUXNET_(?P<grouping>FULLSET|SUBSET)_DD_{_YEARS}"
                       r"_(?P<version>[0-9]+-[0-9]+)\.csv$"),
    source=("AmeriFlux FLUXNET data product README (last changed on 20211116), "
            f"ameriflux.lbl.gov; {_ONEFLUX}"),
)

ICOS_ETC_L2_FLUXNET = FluxnetFormat(
    key="icos-etc-l2-fluxnet",
    name="ICOS ETC L2 FLUXNET",
    template="ICOSETC_<SITE>_FLUXNET_DD_<L2|INTERIM_L2|NN>",
    pattern=re.compile(rf"^ICOSETC_{_SITE}_FLUXNET_DD_(?P<version>L2|INTERIM_L2|[0-9]{{2}})"
                       r"\.csv$"),
    source=("ICOS Carbon Portal, Ecosystem final quality (L2) product in ETC-Archive format "
            "(doi:10.18160/NNAD-PN5W and later releases); FLUXNET conventions of Pastorello "
            "et al. 2020"),
)

#: The accepted formats, in the order they are tried.
FORMATS: tuple[FluxnetFormat, ...] = (FLUXNET2015_FULLSET, FLUXNET2015_SUBSET, AMERIFLUX_FLUXNET,
                                      ICOS_ETC_L2_FLUXNET)

_PERCENTILES = ("25", "50", "75")
_LAYERS = range(1, 20)

#: The SUBSET columns as ONEFlux writes them (``VARIABLE_LIST_SUB`` of
#: ``oneflux/pipeline/variables_codes.py``, in its order; a file holds those its FULLSET table
#: has; RECO_SR and RECO_SR_N were dropped from ONEFlux after v0.4.1).
ONEFLUX_SUBSET_VARIABLES: tuple[str, ...] = (
    "TIMESTAMP", "TIMESTAMP_START", "TIMESTAMP_END",
    "TA_F", "TA_F_QC", "SW_IN_POT", "SW_IN_F", "SW_IN_F_QC", "LW_IN_F", "LW_IN_F_QC",
    "VPD_F", "VPD_F_QC", "PA_F", "PA_F_QC", "P_F", "P_F_QC", "WS_F", "WS_F_QC",
    "WD", "WD_QC", "USTAR", "USTAR_QC", "RH", "RH_QC", "NETRAD", "NETRAD_QC",
    "PPFD_IN", "PPFD_IN_QC", "PPFD_DIF", "PPFD_DIF_QC", "PPFD_OUT", "PPFD_OUT_QC",
    "SW_DIF", "SW_DIF_QC", "SW_OUT", "SW_OUT_QC", "LW_OUT", "LW_OUT_QC",
    "CO2_F_MDS", "CO2_F_MDS_QC",
    *(f"TS_F_MDS_{n}" for n in _LAYERS), *(f"TS_F_MDS_{n}_QC" for n in _LAYERS),
    *(f"SWC_F_MDS_{n}" for n in _LAYERS), *(f"SWC_F_MDS_{n}_QC" for n in _LAYERS),
    "G_F_MDS", "G_F_MDS_QC", "LE_F_MDS", "LE_F_MDS_QC", "LE_CORR", "LE_CORR_25", "LE_CORR_75",
    "LE_RANDUNC", "H_F_MDS", "H_F_MDS_QC", "H_CORR", "H_CORR_25", "H_CORR_75", "H_RANDUNC",
    "NIGHT", "NEE_VUT_REF", "NEE_VUT_REF_QC", "NEE_VUT_REF_RANDUNC",
    *(f"NEE_VUT_{p}" for p in _PERCENTILES), *(f"NEE_VUT_{p}_QC" for p in _PERCENTILES),
    "RECO_NT_VUT_REF", *(f"RECO_NT_VUT_{p}" for p in _PERCENTILES),
    "GPP_NT_VUT_REF", *(f"GPP_NT_VUT_{p}" for p in _PERCENTILES),
    "RECO_DT_VUT_REF", *(f"RECO_DT_VUT_{p}" for p in _PERCENTILES),
    "GPP_DT_VUT_REF", *(f"GPP_DT_VUT_{p}" for p in _PERCENTILES),
)

#: Daily files of the FLUXNET family (``<ISSUER>_<SITE>_FLUXNET..._DD...``): one that no format
#: matches is an error rather than silently left out of the dataset.
_DAILY_FAMILY = re.compile(rf"^[A-Z]+_{_SITE}_FLUXNET[A-Za-z0-9]*_(?:[A-Za-z0-9]+_)*DD"
                           r"(?:_[^/]*)?\.csv$")
#: ... except the auxiliary products, which are no flux data: downscaled reanalysis meteo
#: (ERAI/ERA5), USTAR and partitioning details (AUXNEE), downscaling fits (AUXMETEO) and the
#: metadata tables.
_AUXILIARY = re.compile(r"_(?:ERA|ERAI|ERA5|AUXMETEO|AUXNEE|BIF|BIFVARINFO|VARINFO|SITEINFO)_")


def accepted_formats() -> str:
    """The accepted formats with their file-name patterns, on one line."""
    return "; ".join(f.label for f in FORMATS)


def unknown_format_message(path: str | Path, why: str) -> str:
    """The one-line error for a flux file this reader does not accept."""
    return f"{path}: {why}; accepted FLUXNET daily formats: {accepted_formats()}"


def format_of(name: str) -> tuple[FluxnetFormat, re.Match[str]] | None:
    """The format whose file-name pattern ``name`` (a base name) matches, with the match."""
    for fmt in FORMATS:
        m = fmt.match(name)
        if m is not None:
            return fmt, m
    return None


def looks_like_daily_flux_file(name: str) -> bool:
    """Whether ``name`` is a daily file of the FLUXNET family (accepted format or not).

    Other resolutions (HH, HR, WW, MM, YY), the auxiliary products (ERAI/ERA5, AUXMETEO,
    AUXNEE) and metadata files are not; neither is anything else in the folder (the site and
    FAPAR tables).
    """
    return bool(_DAILY_FAMILY.match(name)) and not _AUXILIARY.search(name)


def detect_format(path: str | Path) -> tuple[FluxnetFormat, re.Match[str]]:
    """The format of the flux file ``path`` from its name.

    Raises:
        FluxFormatError: one line naming the file and the accepted formats with their
            patterns, when no format's pattern matches.
    """
    found = format_of(Path(path).name)
    if found is None:
        raise FluxFormatError(unknown_format_message(
            path, "the file name matches no accepted FLUXNET daily file format"))
    return found
