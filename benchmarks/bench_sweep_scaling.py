"""Parallel efficiency of ndsim sweep on the Dask backend: 1 worker vs W workers.

    python benchmarks/bench_sweep_scaling.py --workers 1 2 --runs 160

A Dask LocalCluster (one single-threaded worker process per core) is started outside the
timed region; the timed region is ``sweep(spec, scheduler=address)`` from the first
submitted run to ``runs.parquet``. Efficiency(W) = T(1) / (W * T(W)).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

SPEC = """
name = "bench_scaling"
seed = 0
[base]
world = "{world}"
[design]
method = "lhs"
n = {n}
seed = 0
[[parameters]]
path = "behaviour.price_sensitivity"
low = 3.0
high = 9.0
[[parameters]]
path = "behaviour.demand_growth_multiplier"
low = 0.5
high = 1.5
[[outcomes]]
name = "oxide_price_world"
metric = "price_usd_per_kg"
product = "oxide"
region = "ex_china"
reduce = "mean"
[[keep]]
metric = "price_usd_per_kg"
product = "oxide"
"""


def main() -> None:
    from distributed import Client, LocalCluster

    from sim.experiments.runner import sweep

    p = argparse.ArgumentParser()
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--runs", type=int, default=160)
    p.add_argument("--world", default=str(ROOT / "models" / "classroom.toml"))
    p.add_argument("--repeats", type=int, default=1, help="interleaved repeats (median)")
    args = p.parse_args()
    times: dict[int, list[float]] = {w: [] for w in args.workers}
    for rep in range(args.repeats):
        for w in args.workers:
            with tempfile.TemporaryDirectory() as tmp:
                spec = Path(tmp) / "spec.toml"
                spec.write_text(SPEC.format(world=args.world, n=args.runs))
                with (
                    LocalCluster(
                        n_workers=w, threads_per_worker=1, processes=True, dashboard_address=None
                    ) as cluster,
                    Client(cluster) as c,
                ):
                    c.wait_for_workers(w)
                    c.run(lambda: __import__("sim.experiments.worker"))  # warm imports
                    t0 = time.perf_counter()
                    s = sweep(
                        spec,
                        out=Path(tmp) / "out",
                        scheduler=cluster.scheduler_address,
                        progress=False,
                    )
                    times[w].append(time.perf_counter() - t0)
                assert s.n_ran == args.runs and s.n_errors == 0
            print(
                json.dumps({"repeat": rep, "workers": w, "wall_s": round(times[w][-1], 2)}),
                flush=True,
            )
    w0 = args.workers[0]
    t0 = float(np.median(times[w0]))
    for w in args.workers:
        tw = float(np.median(times[w]))
        print(
            json.dumps(
                {
                    "workers": w,
                    "runs": args.runs,
                    "median_wall_s": round(tw, 2),
                    "runs_per_s": round(args.runs / tw, 2),
                    "efficiency": round(t0 * w0 / (w * tw), 3),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
