"""Data sources (lue_spie.data.sources): the registry, the two built-in sources writing what
the functions they wrap write, a source defined here, and the template."""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
from pathlib import Path

import pandas as pd
import pytest

from lue_spie.data import io, sources, virtual
from lue_spie.data.fluxnet import build_fluxnet_dataset
from lue_spie.data.sources import (
    DataSource,
    FluxnetFilesSource,
    VirtualFluxnetSource,
    get_source,
    registered_sources,
    source_from_dict,
)

# The tables of a dataset folder; provenance records hold timestamps and are compared apart.
TABLES = ("site_day.parquet", "sites.parquet", "truth.parquet", "truth.json")


def _sha256(folder: Path) -> dict[str, str]:
    return {name: hashlib.sha256((folder / name).read_bytes()).hexdigest()
            for name in TABLES if (folder / name).is_file()}


@pytest.fixture
def registry(monkeypatch):
    """A copy of the registry for this test, so that sources defined here do not stay."""
    monkeypatch.setattr(sources, "REGISTRY", sources.REGISTRY.copy())
    return sources.REGISTRY


def test_registry_lists_the_built_in_sources():
    found = registered_sources()
    assert list(found)[:2] == ["virtual", "fluxnet"]
    assert found["virtual"] is VirtualFluxnetSource and found["fluxnet"] is FluxnetFilesSource
    assert sources.source_class("fluxnet") is FluxnetFilesSource
    import lue_spie.data as data

    assert data.get_source is get_source and data.DataSource is DataSource


def test_unknown_name_and_setting_are_clear_errors():
    with pytest.raises(KeyError, match=r"unknown data source 'icos'.*'virtual', 'fluxnet'"):
        get_source("icos")
    with pytest.raises(ValueError, match=r"unknown setting\(s\) \['sites'\].*'n_sites'"):
        get_source("virtual", sites=4)


def test_virtual_source_defaults_are_the_generator_defaults():
    defaults = inspect.signature(virtual.generate).parameters
    for f in dataclasses.fields(VirtualFluxnetSource):
        assert f.default == defaults[f.name].default, f.name


def test_virtual_source_writes_the_files_of_generate(tmp_path):
    ref = virtual.generate(4, 1, 3, tmp_path / "ref", start_year=2010)
    src = get_source("virtual", n_sites=4, n_years=1, seed=3, start_year=2010)
    out = src.write(tmp_path / "src")
    assert out == tmp_path / "src"
    assert set(_sha256(out)) == set(TABLES)
    assert _sha256(out) == _sha256(ref)
    for name in ("site_day", "sites", "truth"):
        a = json.loads((ref / f"{name}.provenance.json").read_text())
        b = json.loads((out / f"{name}.provenance.json").read_text())
        assert a["step"] == b["step"] == "data.synth" and a["settings"] == b["settings"]
        assert a["seed"] == b["seed"] == 3
    assert src.to_dict() == {"source": "virtual", "settings": {
        "n_sites": 4, "n_years": 1, "seed": 3, "start_year": 2010, "structural_error": False,
        "world": "smooth"}}
    assert source_from_dict(json.loads(json.dumps(src.to_dict()))) == src


def test_fluxnet_source_writes_the_files_of_build_fluxnet_dataset(tmp_path):
    from test_fluxnet import write_inputs

    flux, fapar, sites_csv = write_inputs(tmp_path)
    ref = build_fluxnet_dataset(flux, fapar, sites_csv, tmp_path / "ref", years=[2009])
    src = get_source("fluxnet", src=flux, fapar=fapar, sites_csv=sites_csv, years=[2009])
    out = src.write(tmp_path / "src")
    assert _sha256(out) == _sha256(ref) and set(_sha256(out)) == {"site_day.parquet",
                                                                   "sites.parquet"}
    prov = json.loads((out / "site_day.provenance.json").read_text())
    assert prov["step"] == "data.fluxnet" and prov["settings"]["years"] == [2009]
    record = src.to_dict()
    assert record["source"] == "fluxnet" and record["settings"]["src"] == str(flux)
    assert source_from_dict(json.loads(json.dumps(record))).to_dict() == record
    # The book's convention: site and FAPAR tables found in the folder of the flux files.
    (flux / "sites.csv").write_bytes(sites_csv.read_bytes())
    with pytest.raises(ValueError, match=r"expected exactly one fapar\*\.csv"):
        FluxnetFilesSource.from_folder(flux)
    (flux / "fapar_x.csv").write_bytes(fapar.read_bytes())
    found = FluxnetFilesSource.from_folder(flux, years=[2009])
    assert found.sites_csv == flux / "sites.csv" and found.fapar == flux / "fapar_x.csv"
    with pytest.raises(FileNotFoundError, match="no such folder"):
        FluxnetFilesSource.from_folder(tmp_path / "nope")


def test_a_source_defined_here_is_found_and_its_folder_loads(tmp_path, registry):
    vf = virtual.make_tables(3, 1, 0)

    @dataclasses.dataclass(frozen=True)
    class Toy(DataSource, name="toy"):
        """The virtual tables of three sites, without their truth, written by write_dataset."""

        n_days: int = 40

        def write(self, out, *, progress=False):
            days = sorted(vf.site_day["date"].unique())[:self.n_days]
            site_day = vf.site_day[vf.site_day["date"].isin(days)].reset_index(drop=True)
            from lue_spie import store

            prov = store.make_provenance("data.toy", settings=self.settings())
            return io.write_dataset(out, site_day, vf.sites, provenance=prov)

    assert "toy" in registered_sources() and sources.source_class("toy") is Toy
    src = get_source("toy", n_days=30)
    ds = io.load_dataset(src.write(tmp_path / "toy"))
    assert len(ds.site_day) == 3 * 30 and list(ds.sites["site"]) == list(vf.sites["site"])
    assert ds.truth is None
    assert src.to_dict() == {"source": "toy", "settings": {"n_days": 30}}
    with pytest.raises(ValueError, match="registered twice"):
        class Other(Toy, name="toy"):
            pass


def test_a_source_must_implement_write(registry):
    with pytest.raises(TypeError, match=r"'half' .*does not implement write"):
        class Half(DataSource, name="half"):
            pass
    assert "half" not in registered_sources()


def test_template_registers_nothing_and_a_named_copy_works(tmp_path, registry):
    before = list(registered_sources())
    from lue_spie.data import _template_source as template

    assert list(registered_sources()) == before
    assert template._TemplateSource.name == ""

    class Copied(template._TemplateSource, name="tidy-csv"):
        pass

    vf = virtual.make_tables(2, 1, 1)
    vf.site_day.to_csv(tmp_path / "site_day.csv", index=False)
    vf.sites.to_csv(tmp_path / "sites.csv", index=False)
    src = get_source("tidy-csv", site_day_csv=tmp_path / "site_day.csv",
                     sites_csv=tmp_path / "sites.csv")
    ds = io.load_dataset(src.write(tmp_path / "out"))
    pd.testing.assert_frame_equal(ds.site_day, vf.site_day)
    pd.testing.assert_frame_equal(ds.sites, vf.sites)
    prov = json.loads((tmp_path / "out" / "sites.provenance.json").read_text())
    assert prov["step"] == "data.tidy-csv"
    assert prov["settings"]["sites_csv"] == str(tmp_path / "sites.csv")
