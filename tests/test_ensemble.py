"""Seed ensembles of experiment files: common random numbers, summaries, resume, --seeds 1."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sim.experiments import ensemble
from sim.scenarios import load_experiment, run_experiment_file, scenario_metrics

ROOT = Path(__file__).resolve().parents[1]
CLASSROOM = (ROOT / "models" / "classroom.toml").as_posix()

EXP = f'''
world = "{CLASSROOM}"
end = "2025-06"
seeds = 3
[report]
event_month = "2025-05"
years = [2025]
[[scenarios]]
name = "baseline"
[[scenarios]]
name = "same_again"
description = "identical to baseline"
[[scenarios]]
name = "controls"
[scenarios.policies.export_controls]
start = "2025-04"
approval_probability = 0.5
'''


def write(tmp_path: Path, text: str = EXP) -> Path:
    p = tmp_path / "exp.toml"
    p.write_text(text)
    return p


@pytest.fixture(scope="module")
def serial_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ens")
    p = write(tmp)
    out = tmp / "out"
    assert run_experiment_file(p, out=out, workers=1, progress=False) == 0
    return p, out


def test_outputs_and_common_random_numbers(serial_run):
    p, out = serial_run
    for f in ("metrics", "summary", "effects", "runs", "series"):
        assert (out / f"{f}.parquet").exists()
    for name in ("baseline", "same_again", "controls"):
        assert (out / name / "timeseries.parquet").exists()
        assert (out / name / "figures" / "prices.png").exists()
    assert (out / "figures" / "shortage.png").exists()
    assert not out.with_name("out.partial").exists()
    met = pd.read_parquet(out / "metrics.parquet")
    assert sorted(met["seed"].unique()) == [0, 1, 2]
    eff = pd.read_parquet(out / "effects.parquet")
    # same seeds, same world: a scenario identical to the reference has exactly zero effects
    same = eff[eff["scenario"] == "same_again"]
    assert len(same) > 20 and (same[["mean", "p05", "p95"]].abs().to_numpy() == 0).all()
    # ... and the seed is what varies: seed-to-seed spread of the reference is not zero
    ref = met[(met["scenario"] == "baseline") & (met["metric"] == "ex_domestic_oxide_production_t")]
    assert ref["value"].std() > 0
    # the policy has an effect, paired by seed
    ctrl = eff[(eff["scenario"] == "controls") & (eff["metric"] == "exports_t_event")]
    assert float(ctrl["mean"].iloc[0]) < 0


def test_summary_and_effects_are_the_per_seed_statistics(serial_run):
    _, out = serial_run
    met = pd.read_parquet(out / "metrics.parquet")
    summ = pd.read_parquet(out / "summary.parquet").set_index(["scenario", "metric"])
    eff = pd.read_parquet(out / "effects.parquet").set_index(["scenario", "metric"])
    key = "ex_domestic_oxide_production_t"
    wide = met[met["metric"] == key].pivot(index="seed", columns="scenario", values="value")
    for sc in wide.columns:
        v = wide[sc].to_numpy()
        rec = summ.loc[(sc, key)]
        assert rec["mean"] == pytest.approx(v.mean())
        assert rec["p05"] == pytest.approx(np.quantile(v, 0.05))
        assert rec["p95"] == pytest.approx(np.quantile(v, 0.95))
        assert rec["n_seeds"] == 3
    d = (wide["controls"] - wide["baseline"]).to_numpy()
    assert eff.loc[("controls", key), "mean"] == pytest.approx(d.mean())
    assert eff.loc[("controls", key), "p95"] == pytest.approx(np.quantile(d, 0.95))
    text = (out / "report.md").read_text()
    assert "| metric | baseline | same_again | controls |" in text
    assert "Key numbers: effects against baseline (paired by seed)" in text


def test_seeds_1_is_the_single_seed0_run(tmp_path, serial_run):
    p, full = serial_run
    out = tmp_path / "one"
    assert run_experiment_file(p, out=out, seeds=1, workers=1, progress=False) == 0
    met = pd.read_parquet(out / "metrics.parquet")
    assert set(met["seed"]) == {0}
    exp = load_experiment(p)
    direct = scenario_metrics(exp.scenario("controls").run(0), exp.report)
    got = met[met["scenario"] == "controls"].set_index("metric")["value"]
    assert got.to_dict() == pytest.approx(direct, nan_ok=True)
    # and replicate 0 of the 3-seed ensemble is the same run
    met3 = pd.read_parquet(full / "metrics.parquet")
    assert met3[met3["seed"] == 0].reset_index(drop=True).equals(met)
    assert "no interval" in (out / "report.md").read_text()


def test_pool_gives_the_same_bytes_as_serial(tmp_path, serial_run):
    p, serial = serial_run
    out = tmp_path / "pool"
    assert run_experiment_file(p, out=out, workers=2, progress=False) == 0
    for f in ("metrics", "summary", "effects", "series"):
        assert pd.read_parquet(out / f"{f}.parquet").equals(
            pd.read_parquet(serial / f"{f}.parquet")
        ), f


def test_interrupted_ensemble_resumes_to_the_same_result(tmp_path, serial_run, monkeypatch):
    p, serial = serial_run
    out = tmp_path / "res"
    real = ensemble.execute_replicate

    def dies_at_run_4(ctx, run_id, seed, params):
        if run_id == 4:
            raise KeyboardInterrupt
        return real(ctx, run_id, seed, params)

    monkeypatch.setattr(ensemble, "execute_replicate", dies_at_run_4)
    with pytest.raises(KeyboardInterrupt):
        run_experiment_file(p, out=out, workers=1, progress=False)
    partial = tmp_path / "res.partial"
    assert partial.exists() and not out.exists()
    done, _ = ensemble._committed(partial)
    assert done == {0, 1, 2, 3}
    monkeypatch.setattr(ensemble, "execute_replicate", real)
    with pytest.raises(Exception, match="--resume"):
        run_experiment_file(p, out=out, workers=1, progress=False)
    assert run_experiment_file(p, out=out, workers=1, resume=True, progress=False) == 0
    assert not partial.exists()
    runs = pd.read_parquet(out / "runs.parquet")
    assert list(runs["run_id"]) == list(range(9))
    assert pd.read_parquet(out / "metrics.parquet").equals(
        pd.read_parquet(serial / "metrics.parquet")
    )


def test_resume_refuses_a_changed_experiment(tmp_path, monkeypatch):
    p = write(tmp_path)
    out = tmp_path / "o"
    real = ensemble.execute_replicate

    def dies(ctx, run_id, seed, params):
        if run_id == 1:
            raise KeyboardInterrupt
        return real(ctx, run_id, seed, params)

    monkeypatch.setattr(ensemble, "execute_replicate", dies)
    with pytest.raises(KeyboardInterrupt):
        run_experiment_file(p, out=out, workers=1, progress=False)
    p.write_text(EXP.replace("approval_probability = 0.5", "approval_probability = 0.6"))
    with pytest.raises(Exception, match="different ensemble"):
        run_experiment_file(p, out=out, workers=1, resume=True, progress=False)


def test_dask_gives_the_same_bytes(tmp_path, serial_run):
    pytest.importorskip("distributed")
    p, serial = serial_run
    out = tmp_path / "dask"
    assert (
        run_experiment_file(p, out=out, seeds=2, scheduler="local", workers=1, progress=False) == 0
    )
    met = pd.read_parquet(out / "metrics.parquet")
    ref = pd.read_parquet(serial / "metrics.parquet")
    pd.testing.assert_frame_equal(met, ref[ref["seed"] < 2].reset_index(drop=True))
