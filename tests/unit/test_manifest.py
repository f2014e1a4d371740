"""The data manifest: the real file loads, bad entries fail clearly, checksums are verified."""

from __future__ import annotations

import hashlib
import inspect
from pathlib import Path

import pytest
import yaml

from lue_spie.data import manifest

ROOT = Path(__file__).resolve().parents[2]
SHARED_FLUXNET = ROOT.parent / "shared" / "fluxnet"

REQUIRED_IDS = {
    "fluxnet2015", "modis_mcd15a3h", "modis_mod13q1", "modis_mcd43a4", "landsat_c2_l2",
    "noaa_gml_co2", "worldclim_bioclim", "global_aridity_pet_v3", "koeppen_geiger",
    "np_deposition", "soilgrids2", "virtual_fluxnet", "fluxnet2015_realism_reference",
}


def _entry(**override):
    e = {
        "id": "demo", "description": "d", "citation": "c", "source_url": "https://example.org",
        "doi": "10.1000/xyz", "licence": "CC-BY-4.0", "version": "1",
        "files": [{"name": "a.csv", "sha256": None}],
        "variables": [{"name": "x", "unit": "m", "description": "x"}],
        "obtain": "download", "reader": "lue_spie.data.io.load_dataset",
    }
    e.update(override)
    return e


def _write(tmp_path, entries, version=1):
    p = tmp_path / "m.yml"
    p.write_text(yaml.safe_dump({"manifest_version": version, "datasets": entries}))
    return p


def test_real_manifest_loads_and_readers_exist():
    man = manifest.load()
    assert man.path.resolve() == (ROOT / "data_manifest.yml").resolve()
    assert REQUIRED_IDS <= set(man.ids)
    for e in man.entries:
        assert callable(e.resolve_reader()), e.id
        assert e.files and e.variables
    assert man["fluxnet2015"].doi == "10.1038/s41597-020-0534-3"
    assert man["soilgrids2"].doi == "10.5194/soil-7-217-2021"
    with pytest.raises(KeyError, match="no dataset 'nope'"):
        man["nope"]


def test_virtual_fluxnet_entry_matches_the_generator():
    from lue_spie.data import virtual

    gen = manifest.load()["virtual_fluxnet"].generator
    assert gen["module"] == "lue_spie.data.virtual"
    assert gen["version"] == virtual.GENERATOR_VERSION
    defaults = inspect.signature(virtual.generate).parameters
    assert gen["default_seed"] == defaults["seed"].default
    assert (gen["n_sites"], gen["n_years"]) == (196, 10)
    assert defaults["n_sites"].default == 196 and defaults["n_years"].default == 10


def test_packaged_copy_is_the_root_file():
    packaged = ROOT / "lue_spie" / "data" / "data_manifest.yml"
    assert packaged.read_bytes() == (ROOT / "data_manifest.yml").read_bytes()
    assert manifest.load(packaged).ids == manifest.load().ids


def test_env_override(tmp_path, monkeypatch):
    p = _write(tmp_path, [_entry()])
    monkeypatch.setenv("LUE_SPIE_MANIFEST", str(p))
    assert manifest.load().ids == ["demo"]


def test_small_valid_manifest(tmp_path):
    man = manifest.load(_write(tmp_path, [_entry(), _entry(id="other", doi=None)]))
    assert man.ids == ["demo", "other"] and man.manifest_version == 1
    assert man["other"].doi is None
    assert man["demo"].files[0].exact


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"licence": None}, r"\(id 'demo'\): key 'licence' must be str"),
        ({"doi": "doi.org/10.1/x"}, r"key 'doi' must look like 10.NNNN"),
        ({"source_url": "ftp.example"}, r"key 'source_url' must be an http\(s\) URL"),
        ({"reader": "not a function"}, r"key 'reader' must be a dotted function name"),
        ({"files": [{"name": "a.csv", "sha256": "ABC"}]},
         r"files\[0\]: key 'sha256' must be 64 lowercase hex digits"),
        ({"files": [{"name": "a.csv", "sha256": "g" * 64}]}, r"64 lowercase hex digits"),
        ({"files": [{"name": "a.csv"}]}, r"files\[0\]: missing key 'sha256'"),
        ({"files": [{"pattern": "*.csv", "sha256": "a" * 64}]}, r"needs an exact 'name'"),
        ({"files": [{"name": "a", "pattern": "b", "sha256": None}]}, r"exactly one of"),
        ({"files": []}, r"key 'files' is empty"),
        ({"variables": [{"name": "x"}]}, r"variables\[0\]: expected keys name, unit"),
        ({"colour": "red"}, r"unknown key\(s\) \['colour'\]"),
        ({"id": "Bad-Id"}, r"lower_snake_case"),
        ({"generator": {"module": "m", "version": "1"}}, r"generator: missing key 'default_seed'"),
    ],
)
def test_bad_entry_fails_clearly(tmp_path, override, message):
    p = _write(tmp_path, [_entry(**override)])
    with pytest.raises(ValueError, match=message) as err:
        manifest.load(p)
    assert str(p) in str(err.value)


def test_missing_key_names_entry(tmp_path):
    e = _entry()
    del e["obtain"]
    with pytest.raises(ValueError, match=r"datasets\[0\] \(id 'demo'\): missing required key "
                                         r"'obtain'"):
        manifest.load(_write(tmp_path, [e]))


def test_file_level_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        manifest.load(tmp_path / "none.yml")
    bad = tmp_path / "bad.yml"
    bad.write_text("datasets: [unclosed")
    with pytest.raises(ValueError, match="not valid YAML"):
        manifest.load(bad)
    bad.write_text("datasets: []\n")
    with pytest.raises(ValueError, match="missing top-level key 'manifest_version'"):
        manifest.load(bad)
    with pytest.raises(ValueError, match=r"duplicate dataset id\(s\) \['demo'\]"):
        manifest.load(_write(tmp_path, [_entry(), _entry()]))


def test_verify_match_mismatch_absent(tmp_path):
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    good = data / "good.csv"
    good.write_text("a,b\n1,2\n")
    bad = data / "sub" / "bad.csv"
    bad.write_text("changed\n")
    (data / "x_1.tif").write_text("r")
    (data / "x_2.tif").write_text("r")
    sha_good = hashlib.sha256(good.read_bytes()).hexdigest()
    entries = [
        _entry(id="one", files=[{"name": "good.csv", "sha256": sha_good},
                                {"name": "bad.csv", "sha256": "0" * 64},
                                {"name": "missing.csv", "sha256": "1" * 64}]),
        _entry(id="two", files=[{"pattern": "x_*.tif", "sha256": None},
                                {"pattern": "*.nc", "sha256": None}]),
    ]
    man = manifest.load(_write(tmp_path, entries))
    report = manifest.verify(man, data)
    status = {(c.dataset, c.path.name if c.path else c.pattern): c.status for c in report.checks}
    assert status == {("one", "good.csv"): "ok", ("one", "bad.csv"): "mismatch",
                      ("one", "missing.csv"): "absent", ("two", "x_1.tif"): "present",
                      ("two", "x_2.tif"): "present", ("two", "*.nc"): "absent"}
    assert not report.ok and len(report.mismatches) == 1
    assert report.mismatches[0].actual == hashlib.sha256(b"changed\n").hexdigest()
    text = report.format()
    assert "mismatch" in text and "1 ok, 1 mismatch, 2 present, 2 absent" in text
    with pytest.raises(ValueError, match=r"bad.csv: sha256 .* does not match the manifest entry "
                                         r"'one'"):
        manifest.verify(man, data, strict=True)
    assert manifest.verify(man, data, datasets=["two"]).ok
    with pytest.raises(FileNotFoundError):
        manifest.verify(man, tmp_path / "nowhere")


@pytest.mark.realdata
@pytest.mark.skipif(not SHARED_FLUXNET.is_dir(), reason="../shared/fluxnet absent")
def test_shared_fluxnet_files_match_manifest():
    report = manifest.verify(manifest.load(), SHARED_FLUXNET, datasets=["fluxnet2015_test_subset"])
    assert [c.status for c in report.checks] == ["ok"] * 4
