"""SLURM sweeps on a private single-node SLURM: runs in flight, client cost, time to errors.

    python benchmarks/bench_slurm.py --workers 2 6 12

Starts munged, slurmctld and slurmd on 127.0.0.1 (``tests/slurm_helpers.py``; installs
Debian's slurm-wlm and munge when missing) and measures:

* runs in flight against workers connected: a sweep whose runs first wait until W workers
  are connected and then sleep 1 s (no CPU), with W single-threaded workers in 2 jobs; the
  peak number of runs executing at once comes from the runs' own start and end times;
* the client's CPU per run (client + in-process scheduler, ``getrusage``) on a sweep of
  classroom runs, which bounds how many runs per second one client can take in;
* the wall time of ``ndsim sweep`` (a fresh process, as a user runs it) to its clear error
  for each failure: no sbatch, bad partition, too much memory, wrong python, no controller.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SPEC = """
name = "bench_slurm"
seed = 1
[base]
world = "{world}"
end = "2025-12"
[design]
method = "lhs"
n = {n}
[[parameters]]
path = "behaviour.price_sensitivity"
low = 3.0
high = 9.0
[[outcomes]]
name = "oxide_price_ex_china"
metric = "price_usd_per_kg"
product = "oxide"
region = "ex_china"
reduce = "mean"
"""


def write(tmp: Path, name: str, *, n: int, jobs=1, cores=1, memory="2GB", extra="") -> Path:
    p = tmp / f"{name}.toml"
    world = ROOT / "models" / "classroom.toml"
    from tests.slurm_helpers import CLUSTER

    body = SPEC.format(world=world, n=n) + CLUSTER.format(
        jobs=jobs, cores=cores, memory=memory, extra=extra
    )
    p.write_text(body)
    return p


def in_flight(tmp: Path, workers: int) -> dict:
    from sim.experiments.runner import sweep
    from tests.slurm_helpers import slow_python

    d = tmp / f"flight{workers}"
    d.mkdir()
    py = slow_python(d, barrier=workers, sleep_s=1.0)
    jobs = 2 if workers % 2 == 0 else 1
    spec = write(
        d,
        "spec",
        n=3 * workers,
        jobs=jobs,
        cores=workers // jobs,
        memory=f"{workers // jobs}GB",
        extra=f'python = "{py}"',
    )
    t0 = time.perf_counter()
    s = sweep(spec, out=d / "out", progress=False)
    return {
        "workers_requested": workers,
        "peak_workers_connected": s.peak_workers,
        "peak_runs_in_flight": s.peak_in_flight,
        "runs": s.n_ran,
        "wall_s": round(time.perf_counter() - t0, 1),
    }


def client_cost(tmp: Path, runs: int) -> dict:
    from sim.experiments.runner import sweep

    d = tmp / "client"
    d.mkdir()
    spec = write(d, "spec", n=runs, jobs=2)
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    s = sweep(spec, out=d / "out", progress=False)
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return {
        "runs": s.n_ran,
        "wall_s": round(time.perf_counter() - t0, 1),
        "client_cpu_s": round(cpu, 2),
        "client_cpu_ms_per_run": round(1000 * cpu / s.n_ran, 1),
    }


def failures(tmp: Path, slurm) -> list[dict]:
    cases = {
        "no sbatch on the PATH": ({}, {"PATH": str(tmp / "empty")}),
        "bad partition": ({"extra": 'partition = "nosuch"'}, {}),
        "unsatisfiable memory": ({"memory": "900GB"}, {}),
        "wrong python path": ({"extra": 'python = "/opt/nowhere/bin/python3"'}, {}),
        "no controller": ({}, {"SLURM_CONF": str(tmp / "dead.conf")}),
    }
    (tmp / "empty").mkdir()
    dead = slurm.conf.read_text().replace(f"SlurmctldPort={slurm.ctld_port}", "SlurmctldPort=9")
    (tmp / "dead.conf").write_text(dead)
    rows = []
    for k, (what, (kw, env)) in enumerate(cases.items()):
        spec = write(tmp, f"fail{k}", n=4, **kw)
        cmd = [sys.executable, "-m", "sim.cli", "sweep", str(spec), "--out", str(tmp / f"f{k}")]
        t0 = time.perf_counter()
        r = subprocess.run(
            [*cmd, "--no-progress"],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=600,
            cwd=ROOT,
        )
        err = [x for x in r.stderr.splitlines() if x.startswith("error:")]
        rows.append(
            {
                "failure": what,
                "exit": r.returncode,
                "wall_s": round(time.perf_counter() - t0, 1),
                "error": err[0] if err else r.stderr[-300:],
            }
        )
    return rows


def main() -> None:
    from tests.slurm_helpers import LocalSlurm, ensure_installed

    p = argparse.ArgumentParser()
    p.add_argument("--workers", type=int, nargs="+", default=[2, 6, 12])
    p.add_argument("--client-runs", type=int, default=96)
    args = p.parse_args()
    why = ensure_installed()
    if why:
        sys.exit(f"cannot run: {why}")
    print(json.dumps({"load_average": os.getloadavg()}), flush=True)
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        slurm = LocalSlurm(tmp / "slurm", cpus=max(24, max(args.workers)))
        os.environ.update(slurm.env)
        try:
            slurm.start()
            for w in args.workers:
                print(json.dumps(in_flight(tmp, w)), flush=True)
            print(json.dumps(client_cost(tmp, args.client_runs)), flush=True)
            for row in failures(tmp, slurm):
                print(json.dumps(row), flush=True)
        finally:
            slurm.stop()
    print(json.dumps({"load_average": os.getloadavg()}), flush=True)


if __name__ == "__main__":
    main()
