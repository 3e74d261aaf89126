"""Sweeps: designs, seeds, backends agree, lost workers, interruption and resume, errors."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from sim.errors import UserError
from sim.experiments.design import expected_rows, make_design, run_seed
from sim.experiments.runner import load_runs, load_timeseries, sweep
from sim.experiments.spec import SweepSpec, load_spec

ROOT = Path(__file__).resolve().parents[1]
CLASSROOM = ROOT / "models" / "classroom.toml"
VOLATILE = ["wall_seconds", "attempts"]

SPEC = f"""
name = "t_sweep"
seed = 7
replicates = 2

[base]
world = "{CLASSROOM}"
end = "2025-12"

[design]
method = "lhs"
n = 8
seed = 3

[[parameters]]
name = "sens"
path = "behaviour.price_sensitivity"
low = 3.0
high = 9.0

[[parameters]]
name = "demand"
path = "behaviour.demand_growth_multiplier"
distribution = "triangular"
low = 0.5
mode = 1.0
high = 1.5

[[parameters]]
name = "suppliers"
path = "network.suppliers_per_buyer"
distribution = "choice"
values = [0, 2]

[[outcomes]]
name = "oxide_price_world"
metric = "price_usd_per_kg"
product = "oxide"
region = "ex_china"
reduce = "mean"

[[outcomes]]
name = "china_magnet_share"
metric = "production_t"
product = "magnet"
region = "china"
start = "2025-01"
end = "2025-12"
reduce = "share"

[[keep]]
metric = "price_usd_per_kg"
product = "oxide"

[[keep]]
metric = "production_t"
product = "magnet"

[output]
chunk_runs = 3
"""


def write_spec(tmp: Path, text: str = SPEC, name: str = "spec.toml") -> Path:
    p = tmp / name
    p.write_text(text)
    return p


def frames(out: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    return load_runs(out).drop(columns=VOLATILE), load_timeseries(out)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, pd.DataFrame, pd.DataFrame]:
    tmp = tmp_path_factory.mktemp("ref")
    spec = write_spec(tmp)
    s = sweep(spec, out=tmp / "out", workers=1, progress=False)
    assert s.n_ran == 16 and s.n_errors == 0
    return (spec, *frames(tmp / "out"))


# ------------------------------------------------------------------------------ designs
def _spec(method: str, n: int | None, D: int = 3, **design) -> SweepSpec:
    params = [{"path": f"behaviour.p{k}", "low": 0.0, "high": 1.0} for k in range(D)]
    d = {"method": method, **({"n": n} if n is not None else {}), **design}
    return SweepSpec.model_validate(
        {"name": "x", "base": {"world": "w.toml"}, "design": d, "parameters": params}
    )


@pytest.mark.parametrize("second", [True, False])
def test_sobol_counts_match_salib(second):
    from SALib.sample import sobol

    spec = _spec("sobol", 16, D=3, calc_second_order=second)
    des = make_design(spec)
    want = 16 * (2 * 3 + 2) if second else 16 * (3 + 2)
    assert des.unit.shape == (want, 3) == (expected_rows(spec), 3)
    problem = {"num_vars": 3, "names": ["a", "b", "c"], "bounds": [[0, 1]] * 3}
    ref = sobol.sample(problem, 16, calc_second_order=second, seed=0)
    assert np.allclose(des.unit, ref)
    # the example: 10 parameters at N = 1024
    assert expected_rows(_spec("sobol", 1024, D=10)) == 22528


def test_morris_lhs_grid_counts():
    assert make_design(_spec("morris", 5, D=4)).unit.shape[0] == 5 * (4 + 1)
    assert make_design(_spec("lhs", 13)).unit.shape[0] == 13
    g = _spec("grid", None, D=2, levels=4)
    assert make_design(g).unit.shape[0] == 16 == expected_rows(g)


def test_value_mapping_and_seeds():
    spec, _ = load_spec(write_spec(Path(os.environ.get("TMPDIR", "/tmp")), name="_t.toml"))
    des = make_design(spec)
    assert des.values["sens"].between(3, 9).all()
    assert des.values["demand"].between(0.5, 1.5).all()
    assert set(des.values["suppliers"]) <= {0, 2}
    # LHS: one point per stratum in every column
    strata = np.floor(des.unit * 8).astype(int)
    assert all(sorted(strata[:, k]) == list(range(8)) for k in range(3))
    children = np.random.SeedSequence(7).spawn(len(des.runs))
    want = [int(c.generate_state(1)[0]) for c in children]
    assert des.runs["seed"].tolist() == want
    assert des.runs["run_id"].tolist() == list(range(16))
    assert run_seed(7, 3) == want[3]
    crn = spec.model_copy(update={"common_random_numbers": True})
    seeds = make_design(crn).runs
    assert seeds.groupby("replicate")["seed"].nunique().tolist() == [1, 1]


# ------------------------------------------------------------------------------ backends
def test_serial_output(reference):
    spec, runs, ts = reference
    assert runs["run_id"].tolist() == list(range(16))
    assert (runs["status"] == "ok").all()
    share = runs["china_magnet_share"]
    assert share.dropna().between(0, 1).all()
    # undefined (no magnets made at all) only on the sparse two-supplier network, where a
    # random draw can starve a stage (docs/ODD.md 7.5: prices run to the choke price)
    assert runs.loc[share.isna(), "suppliers"].eq(2).all()
    assert runs["oxide_price_world"].gt(0).all()
    # replicates share parameters but not seeds
    assert (runs.groupby("row")["sens"].nunique() == 1).all()
    assert runs["seed"].nunique() == 16
    assert set(ts["metric"]) == {"price_usd_per_kg", "production_t"}
    assert not ts.duplicated(["run_id", "metric", "product", "region", "sector", "date"]).any()
    # the kept series reproduce the outcome
    w = ts[(ts.metric == "price_usd_per_kg") & (ts.region == "ex_china")]
    assert np.allclose(w.groupby("run_id")["value"].mean(), runs["oxide_price_world"])


def test_process_pool_matches_serial(reference, tmp_path):
    spec, runs, ts = reference
    s = sweep(spec, out=tmp_path / "o", workers=2, progress=False)
    assert s.backend == "pool(2)"
    r2, t2 = frames(tmp_path / "o")
    pd.testing.assert_frame_equal(runs, r2)
    pd.testing.assert_frame_equal(ts, t2)


@pytest.fixture(scope="module")
def dask_cluster():
    from distributed import LocalCluster

    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    )
    yield cluster
    cluster.close()


def test_dask_localcluster_matches_serial(reference, tmp_path, dask_cluster):
    spec, runs, ts = reference
    s = sweep(spec, out=tmp_path / "o", scheduler=dask_cluster.scheduler_address, progress=False)
    assert s.backend.startswith("dask(")
    r2, t2 = frames(tmp_path / "o")
    pd.testing.assert_frame_equal(runs, r2)
    pd.testing.assert_frame_equal(ts, t2)


def test_killing_a_dask_worker_mid_sweep_completes_every_run(reference, tmp_path, dask_cluster):
    from distributed import Client

    spec, runs, ts = reference
    state = {"n": 0, "killed": None, "after": 0}

    def on_result(row):
        state["n"] += 1
        if state["killed"] is not None:
            state["after"] += 1
        if state["n"] == 3:
            with Client(dask_cluster.scheduler_address) as c:
                pids = c.run(os.getpid)
            pid = sorted(pids.values())[0]
            os.kill(pid, signal.SIGKILL)
            state["killed"] = pid

    s = sweep(
        spec,
        out=tmp_path / "o",
        scheduler=dask_cluster.scheduler_address,
        progress=False,
        on_result=on_result,
    )
    assert state["killed"] is not None and state["after"] >= 10
    assert s.n_errors == 0
    r2, t2 = frames(tmp_path / "o")
    pd.testing.assert_frame_equal(runs, r2)
    pd.testing.assert_frame_equal(ts, t2)


def test_killing_a_pool_worker_retries_its_runs(reference, tmp_path):
    spec, runs, ts = reference
    state = {"n": 0, "killed": False}
    before = {p.pid for p in multiprocessing.active_children()}  # e.g. a Dask cluster's

    def on_result(row):
        state["n"] += 1
        if state["n"] == 4 and not state["killed"]:
            kids = [
                p for p in multiprocessing.active_children() if p.is_alive() and p.pid not in before
            ]
            assert kids
            os.kill(kids[0].pid, signal.SIGKILL)
            state["killed"] = True

    sweep(spec, out=tmp_path / "o", workers=2, progress=False, on_result=on_result)
    assert state["killed"]
    full = load_runs(tmp_path / "o")
    assert (full["status"] == "ok").all()
    assert full["attempts"].max() >= 2  # the killed worker's runs were retried
    r2, t2 = frames(tmp_path / "o")
    pd.testing.assert_frame_equal(runs, r2)
    pd.testing.assert_frame_equal(ts, t2)


# ------------------------------------------------------------------------------ resume
def _all_parts(out: Path) -> pd.DataFrame:
    return pd.concat([pq.read_table(p).to_pandas() for p in (out / "parts").glob("*.parquet")])


def test_ctrl_c_keeps_finished_runs_and_resume_completes(reference, tmp_path):
    spec, runs, ts = reference
    seen = []

    def on_result(row):
        seen.append(row["run_id"])
        if len(seen) == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sweep(spec, out=tmp_path / "o", workers=1, progress=False, on_result=on_result)
    assert not (tmp_path / "o" / "runs.parquet").exists()
    assert sorted(_all_parts(tmp_path / "o")["run_id"]) == sorted(seen)  # nothing lost
    with pytest.raises(UserError, match="--resume"):
        sweep(spec, out=tmp_path / "o", workers=1, progress=False)
    s = sweep(spec, out=tmp_path / "o", workers=1, progress=False, resume=True)
    assert (s.n_skipped, s.n_ran) == (5, 11)
    assert _all_parts(tmp_path / "o")["run_id"].is_unique
    r2, t2 = frames(tmp_path / "o")
    pd.testing.assert_frame_equal(runs, r2)
    pd.testing.assert_frame_equal(ts, t2)


def test_resume_after_kill_loses_and_duplicates_nothing(reference, tmp_path):
    spec, runs, ts = reference
    out = tmp_path / "o"
    text = Path(spec).read_text().replace("chunk_runs = 3", "chunk_runs = 2")
    spec2 = write_spec(tmp_path, text)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sim.cli",
            "sweep",
            str(spec2),
            "--out",
            str(out),
            "--workers",
            "1",
            "--no-progress",
        ],
        cwd=ROOT,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            if len(list((out / "parts").glob("runs-*.parquet"))) >= 2:
                break
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    done = _all_parts(out)["run_id"]
    assert 4 <= len(done) < 16 and not (out / "runs.parquet").exists()
    s = sweep(spec2, out=out, workers=1, progress=False, resume=True)
    assert s.n_skipped + s.n_ran == 16
    assert _all_parts(out)["run_id"].is_unique
    r2, t2 = frames(out)
    pd.testing.assert_frame_equal(runs, r2)
    pd.testing.assert_frame_equal(ts, t2)  # no duplicated time-series rows either
    # a second resume has nothing to do
    again = sweep(spec2, out=out, workers=1, progress=False, resume=True)
    assert again.n_ran == 0


def test_resume_refuses_a_changed_spec(reference, tmp_path):
    spec, _, _ = reference
    sweep(spec, out=tmp_path / "o", workers=1, progress=False, limit=2)
    changed = write_spec(tmp_path, SPEC.replace("seed = 7", "seed = 8"), "changed.toml")
    with pytest.raises(UserError, match="different sweep"):
        sweep(changed, out=tmp_path / "o", workers=1, progress=False, resume=True)


# ------------------------------------------------------------------------------ failures
def test_a_failing_run_is_recorded_and_the_sweep_goes_on(reference, tmp_path, monkeypatch):
    from sim.model import SupplyChainModel

    spec, runs, _ = reference
    real = SupplyChainModel.run
    bad = set(runs.loc[runs["sens"] > 6, "run_id"])

    def flaky(self):
        if self.world.behaviour.price_sensitivity > 6:
            raise FloatingPointError("diverged")
        return real(self)

    monkeypatch.setattr(SupplyChainModel, "run", flaky)
    s = sweep(spec, out=tmp_path / "o", workers=1, progress=False)
    got = load_runs(tmp_path / "o")
    assert s.n_errors == len(bad) > 0
    failed = got[got["status"] == "error"]
    assert set(failed["run_id"]) == bad
    assert failed["error"].str.startswith("FloatingPointError: diverged").all()
    assert failed["oxide_price_world"].isna().all()
    ok = got[got["status"] == "ok"]
    assert np.allclose(
        ok["oxide_price_world"], runs.set_index("run_id").loc[ok["run_id"], "oxide_price_world"]
    )


# ------------------------------------------------------------------------------ bad specs
BAD = [
    (
        '[design]\nmethod = "lhs"\nn = 8\nseed = 3',
        '[design]\nmethod = "sobol"\nn = 10',
        ["design: ", "power of 2", "try 8 or 16"],
    ),
    (
        '[design]\nmethod = "lhs"',
        '[design]\nmethd = "lhs"',
        ["design.methd: unknown key; did you mean 'design.method'?"],
    ),
    (
        'distribution = "triangular"\nlow = 0.5\nmode = 1.0',
        'distribution = "triangular"\nlow = 0.5',
        ["parameters[1]", "needs 'mode'"],
    ),
    ("low = 3.0\nhigh = 9.0", "low = 9.0\nhigh = 3.0", ["parameters[0]", "must be below high"]),
    ('reduce = "mean"', 'reduce = "median"', ["outcomes[0].reduce", "'sum'"]),
    ("replicates = 2", "replicates = 0", ["replicates", "greater than or equal to 1"]),
    (
        'distribution = "choice"\nvalues = [0, 2]',
        'distribution = "choice"\nvalues = []',
        ["parameters[2]", "non-empty 'values'"],
    ),
]


@pytest.mark.parametrize(("old", "new", "expect"), BAD)
def test_bad_specs_get_clear_errors(tmp_path, old, new, expect):
    assert old in SPEC
    p = write_spec(tmp_path, SPEC.replace(old, new, 1))
    with pytest.raises(UserError) as exc:
        load_spec(p)
    text = str(exc.value)
    assert str(p) in text
    for e in expect:
        assert e in text


def test_parameter_path_typo_is_caught_before_running(tmp_path):
    p = write_spec(
        tmp_path, SPEC.replace("behaviour.price_sensitivity", "behaviour.price_sensitivty")
    )
    with pytest.raises(UserError) as exc:
        sweep(p, out=tmp_path / "o", workers=1, progress=False)
    text = str(exc.value)
    assert "parameters[0] (behaviour.price_sensitivty)" in text
    assert "did you mean 'behaviour.price_sensitivity'" in text
    assert not (tmp_path / "o").exists()


def test_outcome_selecting_nothing_fails_fast(tmp_path):
    p = write_spec(tmp_path, SPEC.replace('region = "ex_china"', 'region = "wrld"'))
    with pytest.raises(UserError) as exc:
        sweep(p, out=tmp_path / "o", workers=1, progress=False)
    assert "oxide_price_world" in str(exc.value) and "'ex_china'" in str(exc.value)


def test_missing_world_and_cli_exit_code(tmp_path, capsys):
    from sim.cli import main

    p = write_spec(tmp_path, SPEC.replace(str(CLASSROOM), "nowhere.toml"))
    assert main(["sweep", str(p), "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "base.world: no file 'nowhere.toml'" in err and "Traceback" not in err
    good = write_spec(tmp_path, SPEC, "good.toml")
    assert main(["validate", str(good)]) == 0
    assert "valid sweep spec" in capsys.readouterr().out


def test_slurm_cluster_from_spec():
    pytest.importorskip("dask_jobqueue")
    from sim.experiments.runner import make_slurm_cluster

    spec = SweepSpec.model_validate(
        {
            "name": "x",
            "base": {"world": "w.toml"},
            "design": {"method": "lhs", "n": 2},
            "parameters": [{"path": "a.b", "low": 0, "high": 1}],
            "cluster": {
                "jobs": 4,
                "cores": 16,
                "memory": "48GB",
                "walltime": "04:00:00",
                "queue": "compute",
                "account": "proj42",
            },
        }
    )
    cluster = make_slurm_cluster(spec)
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    assert "#SBATCH -p compute" in script and "#SBATCH -A proj42" in script
    assert "#SBATCH -t 04:00:00" in script and "--nworkers 16" in script


def test_design_n_option_resizes_the_design_and_is_validated(capsys):
    """``ndsim sweep SPEC --n N``: the spec's design at another size, checked like the spec."""
    from sim.cli import main
    from sim.experiments.runner import prepare

    spec = ROOT / "experiments" / "sweep_classroom_sobol.toml"
    small = prepare(spec, design_n=8)
    d = len(small.spec.parameters)
    assert small.spec.design.n == 8
    assert len(small.design.unit) == 8 * (2 * d + 2)
    assert small.ctx.key != prepare(spec).ctx.key  # another study: never resumed as the spec's
    assert main(["sweep", str(spec), "--n", "12", "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert "design: sobol n must be a power of 2 (got 12" in err
