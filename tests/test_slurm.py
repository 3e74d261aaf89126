"""Sweeps through a real SLURM: a single-node slurmctld + slurmd + munged on 127.0.0.1.

The ``slurm`` fixture installs Debian's slurm-wlm and munge when missing and starts private
daemons (see ``tests/slurm_helpers.py``); tests skip only where they cannot be installed.
Every sweep runs under a time limit, so a hang fails the test instead of the CI job.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import dask
import pandas as pd
import pyarrow.parquet as pq
import pytest

from sim.errors import UserError
from sim.experiments.runner import load_runs, sweep
from sim.experiments.slurm import (
    SBATCH_TIMEOUT_S,
    ClusterError,
    SlurmWorkers,
    job_script,
    plan_jobs,
)
from sim.experiments.spec import ClusterSpec, load_spec
from tests.slurm_helpers import CLUSTER, LocalSlurm, ensure_installed, slow_python
from tests.test_sweep import SPEC, frames, write_spec

ROOT = Path(__file__).resolve().parents[1]
SWEEP_TIMEOUT_S = 240  # any SLURM sweep here; a hang fails instead of blocking CI
# a sweep of the test spec's 16 runs plus a worker job that starts on an idle node


def cluster_spec(tmp: Path, *, jobs=1, cores=1, memory="2GB", extra="", text=SPEC) -> Path:
    body = text + CLUSTER.format(jobs=jobs, cores=cores, memory=memory, extra=extra)
    return write_spec(tmp, body, "slurm_spec.toml")


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    why = ensure_installed()
    if why is not None:
        pytest.skip(why)
    cluster = LocalSlurm(tmp_path_factory.mktemp("slurm"), cpus=24)
    with pytest.MonkeyPatch.context() as mp:
        for k, v in cluster.env.items():
            mp.setenv(k, v)
        try:
            cluster.start()
            yield cluster
        finally:
            cluster.stop()


@pytest.fixture(scope="module")
def pool_reference(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pool")
    spec = write_spec(tmp)
    sweep(spec, out=tmp / "out", workers=2, progress=False)
    return frames(tmp / "out")


def our_jobs(slurm: LocalSlurm, states=("PENDING", "RUNNING", "CONFIGURING")) -> list[str]:
    return [j for j, s in slurm.jobs().items() if s in states]


def timed_sweep(spec: Path, out: Path, **kw):
    t0 = time.monotonic()
    s = sweep(spec, out=out, progress=False, **kw)
    assert time.monotonic() - t0 < SWEEP_TIMEOUT_S
    return s


# ------------------------------------------------------------------------------ sweeps
def test_slurm_sweep_matches_the_local_pool(slurm, pool_reference, tmp_path):
    runs, ts = pool_reference
    spec = cluster_spec(tmp_path, jobs=2)
    s = timed_sweep(spec, tmp_path / "o")
    assert s.backend == "dask-slurm" and s.n_ran == 16 and s.n_errors == 0
    r2, t2 = frames(tmp_path / "o")
    pd.testing.assert_frame_equal(runs, r2)
    pd.testing.assert_frame_equal(ts, t2)
    # job scripts and logs next to the results, not in the working directory
    logs = tmp_path / "o" / "slurm"
    scripts = sorted(logs.glob("dask-worker-*.sh"))
    assert len(scripts) == 2
    text = scripts[0].read_text()
    assert "tcp://127.0.0.1:" in text and "--host 127.0.0.1" in text  # loopback only
    assert f"{sys.executable} -m distributed.cli.dask_worker" in text
    assert not our_jobs(slurm)  # cancelled at the end


def test_scheduler_and_dashboard_bind_loopback(slurm, tmp_path):
    spec, _ = load_spec(cluster_spec(tmp_path))
    assert spec.cluster is not None
    w = SlurmWorkers(spec.cluster, tmp_path / "o", say=lambda m: None)
    try:
        w.start()
        sched = w.cluster.scheduler
        assert sched.address.startswith("tcp://127.0.0.1:")
        assert sched.http_server.address == "127.0.0.1"
        assert len(w.jobs) == 1
    finally:
        w.close()
    assert not our_jobs(slurm)


def test_scancel_of_a_job_mid_sweep_completes_every_run_once(slurm, pool_reference, tmp_path):
    runs, ts = pool_reference
    # runs of 0.4 s: the 12 or so left after the scancel outlast the job's replacement (with
    # runs of ~0.1 s the sweep could end first and never test it)
    py = slow_python(tmp_path, barrier=1, sleep_s=0.4)
    spec = cluster_spec(tmp_path, jobs=2, extra=f'python = "{py}"')
    state: dict = {"n": 0, "cancelled": None}

    def on_result(row):
        state["n"] += 1
        running = our_jobs(slurm, ("RUNNING",))
        if state["cancelled"] is None and state["n"] >= 4 and len(running) == 2:
            slurm.run(["scancel", running[0]])
            state["cancelled"] = running[0]

    s = timed_sweep(spec, tmp_path / "o", on_result=on_result)
    assert state["cancelled"] is not None
    assert s.n_errors == 0 and s.n_ran == 16
    parts = pd.concat(pq.read_table(p).to_pandas() for p in (tmp_path / "o/parts").glob("*"))
    assert parts["run_id"].is_unique and len(parts) == 16
    r2, t2 = frames(tmp_path / "o")
    pd.testing.assert_frame_equal(runs, r2)
    pd.testing.assert_frame_equal(ts, t2)
    assert s.jobs.startswith("3 SLURM jobs submitted")  # the cancelled job was replaced


def test_every_connected_worker_gets_a_run(slurm, tmp_path):
    """10 workers connected: at least 10 runs execute at once (the old window capped 8)."""
    workers = 10
    py = slow_python(tmp_path, barrier=workers, sleep_s=1.0)
    text = SPEC.replace("n = 8\nseed = 3", "n = 20\nseed = 3")  # 40 runs
    spec = cluster_spec(
        tmp_path, jobs=2, cores=workers // 2, memory="6GB", extra=f'python = "{py}"', text=text
    )
    s = timed_sweep(spec, tmp_path / "o")
    assert s.n_ran == 40 and s.n_errors == 0
    assert s.peak_workers == workers
    assert s.peak_in_flight >= workers


# ------------------------------------------------------------------------------ failures
def cli_error(args: list[str], capsys) -> tuple[str, float]:
    from sim.cli import main

    t0 = time.monotonic()
    code = main(["sweep", *args, "--no-progress"])
    took = time.monotonic() - t0
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    return err, took


def test_wrong_python_ends_with_the_job_log(slurm, tmp_path, capsys):
    spec = cluster_spec(tmp_path, extra='python = "/opt/nowhere/bin/python3"')
    out = tmp_path / "o"
    err, took = cli_error([str(spec), "--out", str(out)], capsys)
    assert "3 SLURM worker jobs in a row ended without finishing a run" in err
    assert "/opt/nowhere/bin/python3: No such file or directory" in err  # the log's tail
    assert f"--resume --out {out}" in err
    assert "1 of 16 runs are saved" in err  # the pilot run, kept
    # bound: 3 jobs, each checked at 1, 2, 4, 8 s after submission, plus start-up
    assert took < 3 * 15 + 20, took
    assert not our_jobs(slurm)


@pytest.mark.parametrize(
    ("extra", "memory", "expect"),
    [
        ('partition = "nosuchpartition"', "2GB", "Invalid partition name specified"),
        ("", "900GB", "Requested node configuration is not available"),
    ],
    ids=["bad-partition", "too-much-memory"],
)
def test_rejected_job_ends_with_the_sbatch_message(slurm, tmp_path, capsys, extra, memory, expect):
    spec = cluster_spec(tmp_path, extra=extra, memory=memory)
    err, took = cli_error([str(spec), "--out", str(tmp_path / "o")], capsys)
    assert "SLURM did not accept the worker job" in err and expect in err
    assert "--resume --out" in err
    assert took < SBATCH_TIMEOUT_S, took


def test_no_controller_ends_with_a_clear_error(slurm, tmp_path, capsys, monkeypatch):
    conf = tmp_path / "slurm.conf"
    text = slurm.conf.read_text().replace(f"SlurmctldPort={slurm.ctld_port}", "SlurmctldPort=9")
    conf.write_text(text)
    monkeypatch.setenv("SLURM_CONF", str(conf))
    err, took = cli_error([str(cluster_spec(tmp_path)), "--out", str(tmp_path / "o")], capsys)
    assert "cannot reach the SLURM controller" in err and "Unable to contact" in err
    assert took < 30 + 15, took  # scontrol's time limit plus start-up


def test_no_sbatch_ends_with_a_clear_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    err, took = cli_error([str(cluster_spec(tmp_path)), "--out", str(tmp_path / "o")], capsys)
    assert "no 'sbatch' on the PATH" in err and "--resume --out" in err
    assert took < 15, took


# ------------------------------------------------------------------------------ Ctrl-C
def test_sigterm_saves_runs_and_prints_the_resume_hint(tmp_path):
    """SIGTERM (kill, or scancel of a batch job running the client) acts as Ctrl-C.

    On the in-process backend, to keep it cheap: the SLURM side of an interruption (jobs
    cancelled) is the walk-through's Ctrl-C, and both signals take the same path.
    """
    spec = write_spec(tmp_path, SPEC.replace("chunk_runs = 3", "chunk_runs = 1"))
    out = tmp_path / "o"
    cmd = ["sweep", str(spec), "--out", str(out), "--workers", "1", "--no-progress"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "sim.cli", *cmd],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + SWEEP_TIMEOUT_S
        while time.monotonic() < deadline and proc.poll() is None:
            if list((out / "parts").glob("runs-*.parquet")):
                break
            time.sleep(0.05)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert err.startswith("interrupted\n") and "Traceback" not in err
    assert f"to go on: ndsim sweep {spec} --resume --out {out} --workers 1\n" in err
    kept = load_runs(out)
    assert 1 <= len(kept) < 16 and kept["run_id"].is_unique


# ------------------------------------------------------------------------------ settings
def test_site_configuration_fills_what_the_spec_leaves_out(tmp_path):
    site = {
        "jobqueue.slurm.cores": 8,
        "jobqueue.slurm.memory": "16GB",
        "jobqueue.slurm.walltime": "06:00:00",
        "jobqueue.slurm.job-extra-directives": ["--exclusive"],
        "jobqueue.slurm.job-script-prologue": ["module load python/3.12"],
        "jobqueue.slurm.name": "site-name",
    }
    with dask.config.set(site):
        script = job_script(ClusterSpec(), tmp_path)
        mine = job_script(
            ClusterSpec(cores=4, walltime="01:00:00", python="/opt/py", partition="big"), tmp_path
        )
    for want in ("#SBATCH --exclusive", "module load python/3.12", "-t 06:00:00", "-J site-name"):
        assert want in script
    assert "--nworkers 8" in script and "--cpus-per-task=8" in script
    assert "python3 -m distributed.cli.dask_worker" in script  # the prologue's python
    assert f"{tmp_path.resolve()}/slurm/site-name-%J.err" in script  # not the cwd
    assert "-t 01:00:00" in mine and "--nworkers 4" in mine and "#SBATCH -p big" in mine
    assert "/opt/py -m distributed.cli.dask_worker" in mine


def test_cores_and_memory_must_come_from_somewhere(tmp_path):
    with dask.config.set({"jobqueue.slurm.cores": None, "jobqueue.slurm.memory": None}):
        with pytest.raises(UserError) as exc:
            plan_jobs(ClusterSpec(cores=2), tmp_path)
    assert "cluster.memory: not given" in str(exc.value)
    assert "jobqueue.slurm.memory" in str(exc.value)
    assert issubclass(ClusterError, UserError)


# ------------------------------------------------------------------------------ docs
DOC = ROOT / "docs" / "cluster.md"


def doc_block(marker: str) -> str:
    text = DOC.read_text()
    after = text[text.index(f"<!-- {marker} -->") :]
    return after.split("```", 2)[1].split("\n", 1)[1]


def test_docs_walkthrough(slurm, tmp_path):
    """docs/cluster.md's spec and commands, as written: validate, submit, Ctrl-C, resume."""
    spec = doc_block("walkthrough:spec").replace(
        'world = "models/classroom.toml"', f'world = "{ROOT / "models" / "classroom.toml"}"'
    )
    # test-only: runs that sleep 0.25 s each, so that Ctrl-C lands mid-sweep; a free dashboard port
    py = slow_python(tmp_path, barrier=1, sleep_s=0.25)
    spec += f'python = "{py}"\nscheduler_options = {{dashboard_address = ":0"}}\n'
    (tmp_path / "trial.toml").write_text(spec)
    commands = [c.split() for c in doc_block("walkthrough:commands").splitlines() if c.strip()]
    assert [" ".join(c[:2]) for c in commands] == ["ndsim validate"] + ["ndsim sweep"] * 2
    ndsim = [sys.executable, "-m", "sim.cli"]

    def run(cmd: list[str]) -> subprocess.CompletedProcess:
        return subprocess.run(
            ndsim + cmd[1:],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=SWEEP_TIMEOUT_S,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )

    from sim.cli import main

    assert main([*commands[0][1:-1], str(tmp_path / commands[0][-1])]) == 0  # validate
    proc = subprocess.Popen(
        ndsim + commands[1][1:],
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + SWEEP_TIMEOUT_S
        while not any("workers connected" in x for x in lines):
            assert proc.poll() is None and time.monotonic() < deadline, "".join(lines)
            time.sleep(0.2)
        time.sleep(3)  # some runs finish
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(timeout=10)
    err = "".join(lines)
    assert proc.returncode == 130, err
    assert "\ninterrupted\n" in err and "cancelled job" in err and "Traceback" not in err
    assert f"to go on: {' '.join(commands[2])}\n" in err  # the documented resume command
    assert not our_jobs(slurm)
    n = 2 * 16  # the spec's replicates x design n
    assert "replicates = 2" in spec and "n = 16" in spec
    kept = load_runs(tmp_path / "runs" / "trial")
    assert 0 < len(kept) < n
    done = run(commands[2])
    assert done.returncode == 0, done.stderr
    assert f"{n} in the design" in done.stdout and "0 errors" in done.stdout
    final = load_runs(tmp_path / "runs" / "trial")
    assert final["run_id"].tolist() == list(range(n))


def test_docs_sizing_table_follows_from_its_inputs():
    """runs / min(W e / t, 1 / c) with the documented runs, t, c and e.

    The runs are the study's own: N (D + 2) of experiments/sweep_baseline_sobol.toml.
    """
    from sim.experiments.spec import load_spec

    spec = load_spec(DOC.parents[1] / "experiments" / "sweep_baseline_sobol.toml")[0]
    text = DOC.read_text()
    runs, t, c, e = spec.design.n * (len(spec.parameters) + 2), 0.35, 0.016, 0.9
    assert f"{runs:,} runs" in text and "t = 0.35 s" in text and "c = 16 ms" in text
    assert "efficiency e = 0.9" in text
    table = text[text.index("<!-- sizing:table -->") :].split("\n\n", 1)[0]
    rows = [r for r in table.splitlines() if r.startswith("| ") and r[2].isdigit()]
    assert len(rows) == 4
    for row in rows:
        cells = [x.strip() for x in row.strip("|").split("|")]
        workers = int(cells[0].split()[0])
        rate = min(workers * e / t, 1 / c)
        assert cells[1] == f"{rate:.1f}"
        assert cells[2] == f"{runs / rate / 60:.1f}"
