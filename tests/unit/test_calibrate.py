"""Site and pooled CMA-ES calibration: recovery, skipping, resume determinism, results files."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from lue_spie import calibrate, store
from lue_spie.calibrate import (
    CalibrationInterrupted,
    CalibrationSettings,
    CheckpointMismatch,
    ConvergenceRecorder,
    calibrate_pooled,
    calibrate_sites,
    write_results,
)
from lue_spie.data import virtual
from lue_spie.evaluate import evaluate_params, simulate_calibrated
from lue_spie.layout import Layout
from lue_spie.model import simulate
from lue_spie.parameter_skill import edge_flags_scaled as edge_flags
from lue_spie.params import PARAMETERS, apply_lag_mask, index, lag_mask, to_scaled

SHARED_FLUXNET = Path(__file__).resolve().parents[3] / "shared" / "fluxnet"

pytestmark = pytest.mark.usefixtures("one_thread")


@dataclasses.dataclass(frozen=True)
class Batch:
    """A ForcingBatch-like object built by hand (the data layer's class has the same fields)."""

    sites: list[str]
    dates: pd.DatetimeIndex
    forcing: dict[str, torch.Tensor]
    GPP_obs: torch.Tensor
    good: torch.Tensor
    koeppen: list[str]


def smooth_forcing(n_sites: int, n_days: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Seasonal forcing with weather noise, plausible ranges, some frost and dry spells."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_days)
    season = -np.cos(2 * np.pi * t / 365.25)
    S = (n_sites, n_days)
    mean_T = rng.uniform(2, 16, (n_sites, 1))
    T = mean_T + rng.uniform(6, 14, (n_sites, 1)) * season + rng.normal(0, 3, S)
    sw_pot = 260 + 120 * season
    sw = np.clip(sw_pot * rng.uniform(0.3, 0.95, S), 5, None)
    VPD = np.clip(700 + 60 * (T - mean_T) + rng.normal(0, 300, S), 0, None)
    VPD *= rng.uniform(0.7, 2.2, (n_sites, 1))
    W = 0.5 - 0.35 * season * rng.uniform(0.5, 1.0, (n_sites, 1)) + rng.normal(0, 0.05, S)
    f = {
        "T": T, "VPD": VPD, "CO2": np.broadcast_to(380 + 2.1 * t / 365 + 3 * season, S),
        "W": np.clip(W, 0.0, 1.0), "PAR": 0.48 * 0.0864 * sw,
        "FAPAR": np.clip(0.45 + 0.3 * season + rng.normal(0, 0.03, S), 0.05, 0.95),
        "CI": np.clip(1 - sw / sw_pot, 0, 1),
    }
    return {k: torch.as_tensor(np.ascontiguousarray(v), dtype=torch.float64)
            for k, v in f.items()}


# True vectors chosen to satisfy the ideal constraint (fW reaches ~1 on the Wf ramp), one
# per lag regime: no lag (C), temperature lag (D), soil-moisture lag (B).
TRUE = {
    "Cfb": dict(eps_max=2.2, Topt=18.0, kT=7.0, kappa=-0.0005, Ca0=360.0, Ckappa=1.0,
                Cm=1500.0, kW=-20.0, WI=0.3, gamma=0.05, mu=0.4, alpha_T=0.0, alpha_W=0.0),
    "Dfb": dict(eps_max=1.8, Topt=14.0, kT=5.0, kappa=-0.0008, Ca0=350.0, Ckappa=2.0,
                Cm=800.0, kW=-15.0, WI=0.2, gamma=0.1, mu=0.6, alpha_T=0.6, alpha_W=0.0),
    "BSk": dict(eps_max=2.6, Topt=22.0, kT=9.0, kappa=-0.0003, Ca0=370.0, Ckappa=0.5,
                Cm=2500.0, kW=-25.0, WI=0.4, gamma=0.02, mu=0.3, alpha_T=0.0, alpha_W=0.5),
}


def make_batch(codes=("Cfb", "Dfb", "BSk"), years=2, noise=0.0, seed=0, params=None):
    n_days = 365 * years
    f = smooth_forcing(len(codes), n_days, seed)
    if params is None:
        params = np.array([[TRUE[c][p] for p in PARAMETERS] for c in codes])
    params = apply_lag_mask(np.asarray(params, dtype=np.float64), lag_mask(list(codes)))
    gpp = simulate(f, torch.as_tensor(params))["GPP"]  # (sites, days)
    rng = np.random.default_rng(seed + 7)
    obs = gpp + noise * torch.as_tensor(rng.normal(0, 1, gpp.shape))
    good = torch.as_tensor(rng.uniform(size=gpp.shape) > 0.15)
    return Batch(sites=[f"S{i}" for i in range(len(codes))],
                 dates=pd.date_range("2010-01-01", periods=n_days, freq="D"),
                 forcing=f, GPP_obs=obs, good=good, koeppen=list(codes)), params


FAST = CalibrationSettings(device="cpu", max_gen=40, popsize=8)


def test_recovers_known_parameters():
    batch, truth = make_batch(years=2)
    res = calibrate_sites(batch, CalibrationSettings(seed=3, device="cpu", max_gen=400))
    t = res.table
    assert list(t["status"]) == ["ok"] * 3
    assert (t["nse"] > 0.998).all()
    est = res.params()
    err = np.abs(to_scaled(est) - to_scaled(truth))
    # Well-identified parameters on noise-free data (the CO2 pair Ca0/Cm and the scale
    # eps_max trade off with each other over a narrow CO2 range: not tested here).
    for name in ("Topt", "kT", "WI", "mu"):
        assert err[:, index(name)].max() < 0.05, (name, est[:, index(name)])
    # Lags: fixed at 0 where masked, recovered where free.
    assert est[0, index("alpha_T")] == 0.0 and est[0, index("alpha_W")] == 0.0
    assert est[1, index("alpha_W")] == 0.0 and est[2, index("alpha_T")] == 0.0
    assert abs(est[1, index("alpha_T")] - 0.6) < 0.05
    assert abs(est[2, index("alpha_W")] - 0.5) < 0.1
    # The reported cost matches an independent evaluation of the reported vectors.
    again = evaluate_params(batch, est, koeppen=batch.koeppen)
    np.testing.assert_allclose(again["cost"], t["cost"], rtol=1e-10)
    assert (t["generations"] > 0).all() and (t["evaluations"] > 0).all()
    assert not t["edge_alpha_T"].iloc[0]  # a fixed parameter is never "edge-hitting"


def test_site_with_too_few_good_days_is_skipped():
    batch, _ = make_batch(years=1)
    good = batch.good.clone()
    good[1] = False
    good[1, 100:103] = True  # 3 good days
    batch = dataclasses.replace(batch, good=good)
    res = calibrate_sites(batch, FAST)
    t = res.table.set_index("site")
    assert t.loc["S1", "status"].startswith("skipped: 3 good-quality days")
    assert np.isnan(t.loc["S1", "eps_max"])
    assert t.loc["S0", "status"] == "ok" and t.loc["S2", "status"] == "ok"
    # Constant observations: NSE undefined -> skipped with its reason.
    obs = batch.GPP_obs.clone()
    obs[0] = 2.0
    res2 = calibrate_sites(dataclasses.replace(batch, GPP_obs=obs), FAST)
    assert res2.table["status"].iloc[0].startswith("skipped: GPP_obs is constant")


def test_site_result_independent_of_batch_companions():
    batch, _ = make_batch(years=1)
    both = calibrate_sites(batch, FAST.replace(seed=5)).table.set_index("site")
    alone = calibrate_sites(batch, FAST.replace(seed=5), sites=["S2"]).table.set_index("site")
    np.testing.assert_array_equal(both.loc["S2", list(PARAMETERS)].to_numpy(float),
                                  alone.loc["S2", list(PARAMETERS)].to_numpy(float))
    other_seed = calibrate_sites(batch, FAST.replace(seed=6), sites=["S2"]).table
    assert not np.array_equal(other_seed[list(PARAMETERS)].to_numpy(float),
                              alone.loc[["S2"], list(PARAMETERS)].to_numpy(float))


def _run(batch, ckpt, **kw):
    # Loose tolerances so IPOP restarts (with larger populations) happen within few
    # generations: the resume must also cover mixed population sizes.
    settings = CalibrationSettings(seed=11, device="cpu", max_gen=30, popsize=6, tolfun=0.05,
                                   tolfunhist=0.05, restarts=2)
    return calibrate_sites(batch, settings, checkpoint_dir=ckpt, checkpoint_every=4, **kw)


def test_resume_after_interruption_gives_identical_result(tmp_path):
    batch, _ = make_batch(years=1, noise=0.3)
    reference = _run(batch, tmp_path / "a")
    assert reference.table["restarts"].max() >= 1  # the restart path was exercised

    def interrupt(gen, engine):
        if gen == 10:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _run(batch, tmp_path / "b", callback=interrupt)
    assert (tmp_path / "b" / "checkpoint.pkl").exists()  # written at generation 8
    resumed = _run(batch, tmp_path / "b")
    cols = list(PARAMETERS) + ["cost", "nse", "generations", "evaluations", "restarts"]
    pd.testing.assert_frame_equal(resumed.table[cols], reference.table[cols])

    # The test hook stops right after a generation's checkpoint; resuming ends the same.
    with pytest.raises(CalibrationInterrupted):
        _run(batch, tmp_path / "c", stop_after_gen=7)
    pd.testing.assert_frame_equal(_run(batch, tmp_path / "c").table[cols],
                                  reference.table[cols])


def test_checkpoint_of_other_settings_is_refused(tmp_path):
    batch, _ = make_batch(years=1)
    calibrate_sites(batch, FAST, checkpoint_dir=tmp_path)
    with pytest.raises(CheckpointMismatch, match="other settings or data"):
        calibrate_sites(batch, FAST.replace(seed=1), checkpoint_dir=tmp_path)


def test_pooled_one_vector_per_group():
    codes = ("Cfb", "Cfa", "Dfb", "Dfc")
    truth = np.array([[TRUE["Cfb"][p] for p in PARAMETERS]] * 2
                     + [[TRUE["Dfb"][p] for p in PARAMETERS]] * 2)
    batch, truth = make_batch(codes=codes, years=1, params=truth)
    groups = {"C": ["S0", "S1"], "D": ["S2", "S3"]}
    res = calibrate_pooled(batch, groups, CalibrationSettings(device="cpu", max_gen=250))
    t = res.table
    assert len(t) == 4 and set(t["group"]) == {"C", "D"}
    for g, members in groups.items():
        rows = t[t["group"] == g]
        # One vector per group (lags applied per site, both free in D here).
        assert np.allclose(rows[list(PARAMETERS)].to_numpy(float),
                           rows[list(PARAMETERS)].to_numpy(float)[0])
        # The group's pooled cost is the mean of its sites' costs.
        u = res.units.set_index("group").loc[g]
        assert u["cost"] == pytest.approx(rows["cost"].mean(), rel=1e-9)
        assert u["n_sites"] == len(members)
    # Sites that share their true vector: the pooled fit is near perfect.
    assert (t["nse"] > 0.98).all()
    # alpha_T is searched in group D only.
    assert (t.loc[t["group"] == "C", "alpha_T"] == 0).all()
    with pytest.raises(ValueError, match="empty"):
        calibrate_pooled(batch, {"X": []}, FAST)


def test_results_written_atomically_with_provenance(tmp_path):
    batch, _ = make_batch(years=1)
    res = calibrate_sites(batch, FAST)
    gpp = simulate_calibrated(batch, res.table, koeppen=batch.koeppen)
    assert list(gpp.columns) == ["site", "date", "GPP_calib"]
    assert len(gpp) == 3 * 365
    paths = write_results(res, tmp_path, gpp_calib=gpp)
    back = store.read_parquet(paths["table"])
    assert {"site", "status", "cost", "nse", "C_ideal", "C_nonideal", "n_good_days",
            "generations", "evaluations", "restarts", "edge_kW"} <= set(back.columns)
    prov = store.read_provenance(paths["table"])
    assert prov["step"] == "calibrate" and prov["seed"] == 0
    assert prov["settings"]["data_checksum"] == res.data_checksum
    assert "cma" in prov["versions"] and "git_commit" in prov
    assert json.loads(json.dumps(prov))  # JSON-clean
    # GPP_calib reproduces the calibrated NSE.
    s0 = gpp[gpp["site"] == "S0"]["GPP_calib"].to_numpy()
    from lue_spie.metrics import nse

    assert nse(batch.GPP_obs[0].numpy(), s0, batch.good[0].numpy()) == pytest.approx(
        res.table["nse"].iloc[0], rel=1e-9)


def test_edge_flags_match_parameters():
    batch, _ = make_batch(years=1)
    res = calibrate_sites(batch, CalibrationSettings(device="cpu", max_gen=60))
    t = res.table
    scaled = to_scaled(res.params())
    free = lag_mask(batch.koeppen)
    expect = ((scaled <= 0.01) | (scaled >= 0.99)) & free
    got = t[[f"edge_{p}" for p in PARAMETERS]].to_numpy(bool)
    np.testing.assert_array_equal(got, expect)
    assert not got[~free].any()  # a parameter fixed by the lag mask is never edge-hitting
    assert edge_flags(np.array([0.005, 0.5, 0.995] + [0.5] * 10), np.ones(13, bool))[
        [0, 1, 2]].tolist() == [True, False, True]


def test_bad_inputs_give_clear_errors():
    batch, _ = make_batch(years=1)
    no_codes = Batch(batch.sites, batch.dates, batch.forcing, batch.GPP_obs, batch.good, None)
    with pytest.raises(ValueError, match="Koeppen"):
        calibrate_sites(no_codes, FAST)
    with pytest.raises(KeyError, match="not in the forcing batch"):
        calibrate_sites(batch, FAST, sites=["nope"])
    with pytest.raises(ValueError, match="dtype"):
        CalibrationSettings(dtype="float16")
    with pytest.raises(ValueError, match="max_gen"):
        CalibrationSettings(max_gen=0)


def test_float32_runs_and_is_close():
    batch, _ = make_batch(years=1)
    r32 = calibrate_sites(batch, FAST.replace(dtype="float32"))
    assert (r32.table["status"] == "ok").all()
    again = evaluate_params(batch, r32.params(), koeppen=batch.koeppen)
    np.testing.assert_allclose(again["cost"], r32.table["cost"], rtol=1e-3, atol=1e-4)


def test_cli_end_to_end(tmp_path):
    from lue_spie.cli import main

    virtual.generate(n_sites=3, n_years=1, seed=0, out=tmp_path / "vf")
    out = tmp_path / "cal"
    rc = main(["calibrate", "--data", str(tmp_path / "vf"), "--out", str(out),
               "--max-gen", "5", "--device", "cpu", "--no-progress"])
    assert rc == 0
    t = store.read_parquet(out / "calibration.parquet")
    assert len(t) == 3
    assert store.read_parquet(out / "gpp_calib.parquet").columns.tolist() == [
        "site", "date", "GPP_calib"]
    assert main(["calibrate", "--data", str(tmp_path / "vf"), "--out", str(out),
                 "--max-gen", "5", "--device", "cpu", "--no-progress", "--seed", "9"]) == 2


@pytest.mark.realdata
@pytest.mark.slow
def test_real_site_ch_lae(tmp_path):
    if not (SHARED_FLUXNET / "sites.csv").exists():
        pytest.skip("../shared/fluxnet is absent")
    from lue_spie.data import fluxnet

    fapar = SHARED_FLUXNET / "fapar_CH-Lae_MCD15A3H_2010-2012.csv"
    tables = fluxnet.read_fluxnet_dataset(SHARED_FLUXNET, fapar, SHARED_FLUXNET / "sites.csv",
                                          site_ids=["CH-Lae"], years=[2010, 2011, 2012])
    res = calibrate_sites(tables, CalibrationSettings(device="cpu", max_gen=150),
                          sites=["CH-Lae"])
    row = res.table.iloc[0]
    assert row["status"] == "ok"
    assert row["nse"] > 0.6


def test_callback_progress_and_convergence_record(tmp_path):
    # engine.progress() is the callback's public view; the book's ConvergenceRecorder uses it
    # to write one row per site and generation, with a best cost that never increases.
    batch, _ = make_batch(years=1)
    seen = []
    rec = ConvergenceRecorder(tmp_path / "convergence.parquet", every=2)

    def callback(gen, engine):
        seen.append(engine.progress())
        rec(gen, engine)

    res = calibrate_sites(batch, CalibrationSettings(max_gen=6), callback=callback)
    assert len(seen) == 6
    assert {r["id"] for r in seen[-1]} == set(batch.sites)
    assert all({"generations", "best_cost", "sigma", "popsize", "done"} <= set(r)
               for r in seen[-1])
    df = rec.frame()
    assert set(df["site"]) == set(batch.sites)
    for site, g in df.groupby("site"):
        assert list(g["generation"]) == list(range(1, len(g) + 1))
        assert np.all(np.diff(g["best_cost"].to_numpy()) <= 0)
        final = res.table.set_index("site").loc[site, "cost"]
        assert g["best_cost"].iloc[-1] == pytest.approx(final)
    assert rec.write().exists()


def test_one_calibration_step_for_cli_and_book(tmp_path):
    # calibrate.run is the step both `lue-spie calibrate` and chapter 3 run: same files,
    # resumable, and a checkpoint of other settings is refused unless asked to start afresh.
    data_dir = virtual.generate(n_sites=3, n_years=1, seed=0, out=tmp_path / "vf")
    out = tmp_path / "cal"
    settings = CalibrationSettings(device="cpu", max_gen=4)
    layout = Layout(data_dir=data_dir, calibration_dir=out)
    paths = calibrate.run(layout, settings, log=lambda *_: None)
    assert set(paths) == {"table", "gpp_calib", "convergence"}
    first = store.read_parquet(paths["table"])
    again = store.read_parquet(calibrate.run(layout, settings, log=lambda *_: None)["table"])
    pd.testing.assert_frame_equal(first, again)
    with pytest.raises(CheckpointMismatch):
        calibrate.run(layout, settings.replace(seed=3), log=lambda *_: None)
    notes = []
    calibrate.run(layout, settings.replace(seed=3), restart_on_mismatch=True, log=notes.append)
    assert any("starting afresh" in n for n in notes)
    conv = store.read_parquet(paths["convergence"])
    assert set(conv["site"]) == set(first["site"])


class _KilledRecorder(ConvergenceRecorder):
    """The step's convergence record, in a run that dies right after generation ``stop_at``
    (after the record saw it, before any later checkpoint), as a kill between two
    checkpoints would."""

    def __init__(self, path, *, every, stop_at):
        super().__init__(path, every=every)
        self.stop_at = stop_at

    def __call__(self, generation, engine):
        super().__call__(generation, engine)
        if generation == self.stop_at:
            raise KeyboardInterrupt


def _recorded(batch, folder, *, stop_at=None, every=3):
    """Calibrate with a convergence record (its file written every 4 generations) and a
    checkpoint every ``every`` generations; with ``stop_at``, killed after that generation."""
    rec = _KilledRecorder(folder / "convergence.parquet", every=4, stop_at=stop_at)
    notes: list[str] = []
    try:
        calibrate_sites(batch, FAST.replace(max_gen=14), checkpoint_dir=folder,
                        checkpoint_every=every, callback=rec, log=notes.append)
    except KeyboardInterrupt:
        pass
    return rec, notes


def test_resume_keeps_the_whole_convergence_record(tmp_path):
    # The record is checkpointed with the engine: interrupted at generation 7, the engine's
    # checkpoint is of generation 6 and the record's file of generation 4; generations 5 and 6
    # are neither lost nor doubled, and the rerun says where it resumed.
    batch, _ = make_batch(years=1)
    reference, notes = _recorded(batch, tmp_path / "a")
    assert not any("resumed" in n for n in notes)
    _recorded(batch, tmp_path / "b", stop_at=7)
    assert pd.read_parquet(tmp_path / "b" / "convergence.parquet")["generation"].max() == 4
    resumed, notes = _recorded(batch, tmp_path / "b")
    assert notes == [f"resumed from generation 6 (checkpoint {tmp_path / 'b' / 'checkpoint.pkl'})"]
    pd.testing.assert_frame_equal(resumed.frame(), reference.frame())


def test_a_damaged_checkpoint_is_set_aside_and_the_run_restarts(tmp_path):
    batch, _ = make_batch(years=1)
    reference, _ = _recorded(batch, tmp_path / "a")
    _recorded(batch, tmp_path / "b", stop_at=8)
    ckpt = tmp_path / "b" / "checkpoint.pkl"
    ckpt.write_bytes(ckpt.read_bytes()[:300])  # cut short
    again, notes = _recorded(batch, tmp_path / "b")
    assert len(notes) == 1 and notes[0].startswith(f"set aside the damaged checkpoint {ckpt} "
                                                   "as checkpoint.pkl.damaged")
    assert (tmp_path / "b" / "checkpoint.pkl.damaged").is_file()
    pd.testing.assert_frame_equal(again.frame(), reference.frame())


def test_a_rerun_recomputes_a_damaged_calibration_file_and_says_so(tmp_path):
    data_dir = virtual.generate(n_sites=3, n_years=1, seed=0, out=tmp_path / "vf")
    layout = Layout(data_dir=data_dir, calibration_dir=tmp_path / "cal")
    settings = CalibrationSettings(device="cpu", max_gen=4)
    paths = calibrate.run(layout, settings, log=lambda *_: None)
    good = {k: p.read_bytes() for k, p in paths.items()}
    for kind in ("table", "gpp_calib", "convergence"):
        paths[kind].write_bytes(good[kind][: len(good[kind]) // 2])
        notes: list[str] = []
        calibrate.run(layout, settings, log=notes.append)
        assert [n for n in notes if n.startswith("recomputed")] == [
            f"recomputed the site calibration in {tmp_path / 'cal'}: its file "
            f"{paths[kind].name} was unreadable (its checksum differs from the one recorded "
            "when it was written (changed or damaged since))"]
        assert paths[kind].read_bytes() == good[kind]


def test_a_failed_fit_is_restarted_and_never_marked_ok():
    # Observations no LUE vector can follow (negative GPP): every search ends worse than the
    # mean of the observations, is restarted (the rescue restarts beyond `restarts`), and is
    # flagged, never `ok`; a fitting site in the same run keeps `ok` and no rescue.
    from lue_spie.calibrate.engine import RESCUE_RESTARTS

    batch, _ = make_batch(years=1, noise=0.1)
    obs = batch.GPP_obs.clone()
    obs[0] = -obs[0] - 1.0
    bad = dataclasses.replace(batch, GPP_obs=obs)
    settings = FAST.replace(max_gen=200, tolfunhist=1e-4, tolfun=1e-4)
    table = calibrate_sites(bad, settings).table.set_index("site")
    failed = table.loc["S0"]
    assert failed["status"].startswith("failed: daily NSE") and failed["nse"] < 0
    assert failed["restarts"] == RESCUE_RESTARTS
    assert f"after {RESCUE_RESTARTS} restart(s) for a failed fit" in failed["stop_reason"]
    fine = table.drop(index="S0")
    assert (fine["status"] == "ok").all() and (fine["nse"] > 0).all()
    assert (fine["restarts"] == 0).all()
