"""ndsim sweep vs mesa.batch_run: same model, parameter grid, outcomes and processes.

Each measurement runs in a fresh subprocess so peak memory (ru_maxrss) is its own.

    python benchmarks/bench_sweep_vs_batchrun.py --processes 2 --levels 5 4 --factor 10

mesa.batch_run side: the idiomatic use, a Mesa model class taking the parameters as
keyword arguments (it loads the world and applies them), a DataCollector with model
reporters for the kept monthly series (collected every month, ``data_collection_period=1``),
outcomes computed from batch_run's returned records. ndsim side: a grid spec with the same
parameter values, replicates, the same outcomes and kept series, ``--workers`` processes.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
WORLD = ROOT / "models" / "classroom.toml"


def grid(levels: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    return np.linspace(3.0, 9.0, levels[0]), np.linspace(0.5, 1.5, levels[1])


# ---------------------------------------------------------------------------- mesa side
from mesa import DataCollector  # noqa: E402

from sim.model import SupplyChainModel  # noqa: E402
from sim.network import ROLES  # noqa: E402
from sim.world import PRODUCTS, load_world  # noqa: E402

OX = PRODUCTS.index("oxide")


class BatchModel(SupplyChainModel):
    """The ndsim model as mesa.batch_run wants it: parameters as keyword arguments."""

    def __init__(self, price_sensitivity=6.0, demand_growth_multiplier=1.0, rng=None):
        world, _ = load_world(
            WORLD,
            [
                f"behaviour.price_sensitivity={price_sensitivity}",
                f"behaviour.demand_growth_multiplier={demand_growth_multiplier}",
            ],
        )
        super().__init__(world, rng=rng)
        nodes = self.nodes
        usa, china = nodes.regions.index("usa"), nodes.regions.index("china")
        self._us_oem = np.flatnonzero((nodes.role == ROLES.index("oem")) & (nodes.region == usa))
        plants = nodes.role == ROLES.index("magnet_plant")
        self._plants = np.flatnonzero(plants)
        self._cn_plants = np.flatnonzero(plants & (nodes.region == china))
        self.datacollector = DataCollector(
            model_reporters={
                "oxide_price_world": lambda m: float(m.price_index[1][OX]),
                "us_shortage": lambda m: float(m.state.shortage[m._us_oem].sum()),
                "magnet_prod_china": lambda m: float(m.state.produced[m._cn_plants].sum()),
                "magnet_prod": lambda m: float(m.state.produced[m._plants].sum()),
            }
        )

    def step(self):
        super().step()
        self.datacollector.collect(self)


def run_mesa(levels, processes: int, replicates: int) -> int:
    from mesa.batchrunner import batch_run

    sens, dem = grid(levels)
    data = batch_run(
        BatchModel,
        {"price_sensitivity": list(sens), "demand_growth_multiplier": list(dem)},
        number_processes=processes,
        rng=list(range(replicates)),
        data_collection_period=1,
        max_steps=10_000,
        display_progress=False,
    )
    import pandas as pd

    df = pd.DataFrame(data)
    g = df.groupby("RunId")
    out = pd.DataFrame(
        {"oxide_price_world": g["oxide_price_world"].mean(), "us_shortage": g["us_shortage"].sum()}
    )
    last12 = df[df["Step"] > df["Step"].max() - 12].groupby("RunId")
    out["china_magnet_share_last_year"] = (
        last12["magnet_prod_china"].sum() / last12["magnet_prod"].sum()
    )
    return len(out)


# ---------------------------------------------------------------------------- ndsim side
SPEC = """
name = "bench_grid"
seed = 0
replicates = {replicates}
[base]
world = "{world}"
[design]
method = "grid"
[[parameters]]
name = "price_sensitivity"
path = "behaviour.price_sensitivity"
low = 3.0
high = 9.0
levels = {l0}
[[parameters]]
name = "demand_growth_multiplier"
path = "behaviour.demand_growth_multiplier"
low = 0.5
high = 1.5
levels = {l1}
[[outcomes]]
name = "oxide_price_world"
metric = "price_usd_per_kg"
product = "oxide"
region = "ex_china"
reduce = "mean"
[[outcomes]]
name = "us_shortage"
metric = "shortage_t"
product = "magnet"
region = "usa"
[[outcomes]]
name = "china_magnet_share_last_year"
metric = "production_t"
product = "magnet"
region = "china"
start = "2035-01"
reduce = "share"
[[keep]]
metric = "price_usd_per_kg"
product = "oxide"
region = "ex_china"
[[keep]]
metric = "shortage_t"
product = "magnet"
region = "usa"
[[keep]]
metric = "production_t"
product = "magnet"
[output]
chunk_runs = 32
"""


def run_ndsim(levels, processes: int, replicates: int, scheduler: str | None) -> int:
    from sim.experiments.runner import sweep

    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "spec.toml"
        spec.write_text(SPEC.format(replicates=replicates, world=WORLD, l0=levels[0], l1=levels[1]))
        s = sweep(
            spec, out=Path(tmp) / "out", workers=processes, scheduler=scheduler, progress=False
        )
        return s.n_ran


# ---------------------------------------------------------------------------- per run
def per_run_cost(n: int) -> None:
    """Both tools' per-run work in this process, interleaved (robust to machine load)."""
    from mesa.batchrunner import _model_run_func

    from sim.experiments.runner import prepare
    from sim.experiments.worker import execute

    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "spec.toml"
        spec.write_text(SPEC.format(replicates=1, world=WORLD, l0=2, l1=2))
        ctx = prepare(spec).ctx
    kw = {"price_sensitivity": 6.0, "demand_growth_multiplier": 1.0}
    t_nd, t_me = [], []
    execute(ctx, 0, 0, dict(kw))
    _model_run_func(BatchModel, (0, 0, {**kw, "rng": 0}), 10_000, 1)
    for i in range(n):
        t0 = time.perf_counter()
        execute(ctx, i, i, dict(kw))
        t1 = time.perf_counter()
        _model_run_func(BatchModel, (i, 0, {**kw, "rng": i}), 10_000, 1)
        t2 = time.perf_counter()
        t_nd.append(t1 - t0)
        t_me.append(t2 - t1)
    for name, t in (("ndsim worker", t_nd), ("mesa batch_run worker", t_me)):
        print(
            f"{name}: median {1e3 * np.median(t):.1f} ms, min {1e3 * np.min(t):.1f} ms "
            f"per run ({n} runs)"
        )
    print(f"ratio mesa/ndsim (median): {np.median(t_me) / np.median(t_nd):.2f}")


# ---------------------------------------------------------------------------- driver
def one(args) -> None:
    t0 = time.perf_counter()
    levels = tuple(args.levels)
    if args.one == "mesa":
        n = run_mesa(levels, args.processes, args.replicates)
    else:
        n = run_ndsim(
            levels, args.processes, args.replicates, "local" if args.one == "ndsim-dask" else None
        )
    wall = time.perf_counter() - t0
    me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "tool": args.one,
                "runs": n,
                "wall_s": wall,
                "runs_per_s": n / wall,
                "parent_peak_mib": me,
                "child_peak_mib": kids,
            }
        )
    )


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--levels", type=int, nargs=2, default=[5, 4])
    p.add_argument("--replicates", type=int, default=2)
    p.add_argument("--factor", type=int, default=10, help="runs grow by this factor")
    p.add_argument("--tools", nargs="+", default=["ndsim", "mesa"])
    p.add_argument(
        "--per-run",
        type=int,
        metavar="N",
        help="instead: time N runs of each tool's worker in this process",
    )
    p.add_argument("--one", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.per_run:
        return per_run_cost(args.per_run)
    if args.one:
        return one(args)
    rows = []
    sizes = [tuple(args.levels), (args.levels[0] * args.factor, args.levels[1])]
    for lv in sizes:
        for tool in args.tools:
            cmd = [
                sys.executable,
                __file__,
                "--one",
                tool,
                "--processes",
                str(args.processes),
                "--replicates",
                str(args.replicates),
                "--levels",
                *map(str, lv),
            ]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT)
            row = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(json.dumps(row), flush=True)
    print("\n| tool | runs | wall s | runs/s | parent peak MiB | worker peak MiB |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['tool']} | {r['runs']} | {r['wall_s']:.1f} | {r['runs_per_s']:.2f} | "
            f"{r['parent_peak_mib']:.0f} | {r['child_peak_mib']:.0f} |"
        )


if __name__ == "__main__":
    main()
