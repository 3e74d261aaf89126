"""Core performance benchmarks (issue "Core", section 10). Not a test: it reports numbers.

Usage::

    python benchmarks/bench_core.py            # writes benchmarks/results/core.md
    python benchmarks/bench_core.py --quick    # fewer repeats, no 100k world
    python benchmarks/bench_core.py --profile  # also: where a baseline month spends its time

Measures (1) the baseline 2024-01..2040-12 run: simulation wall time (model stepping only,
as in manifest.json), median and minimum of repeats, plus construction (incl. spin-up) and
table building; (2) synthetic worlds of 1k, 10k and 100k agents: seconds per simulated month.
The process's CPU time is reported beside the wall time: on a shared machine it is the steadier
of the two (it leaves out the time other processes held the cores). Targets (issue 8): baseline
simulation <= 0.15 s, 100k agents <= 0.1 s per month.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import platform
import pstats
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sim.model import SupplyChainModel  # noqa: E402
from sim.results import build_results  # noqa: E402
from sim.synthetic import synthetic_world  # noqa: E402
from sim.world import load_world, validate_world  # noqa: E402


def bench_baseline(repeats: int) -> dict[str, float]:
    world, _ = load_world(ROOT / "models" / "baseline_2024.toml")
    build, sim_s, sim_cpu, tables = [], [], [], []
    for k in range(repeats):
        t0 = time.perf_counter()
        model = SupplyChainModel(world, rng=k)
        t1 = time.perf_counter()
        c1 = time.process_time()
        model.run()
        c2 = time.process_time()
        t2 = time.perf_counter()
        build_results(model)
        t3 = time.perf_counter()
        build.append(t1 - t0)
        sim_s.append(t2 - t1)
        sim_cpu.append(c2 - c1)
        tables.append(t3 - t2)
    return {
        "months": model.n_months,
        "agents": len(model.agents),
        "links": model.links.n,
        "construct_s": statistics.median(build),
        "simulate_s": statistics.median(sim_s),
        "simulate_min_s": min(sim_s),
        "simulate_cpu_s": statistics.median(sim_cpu),
        "simulate_cpu_min_s": min(sim_cpu),
        "tables_s": statistics.median(tables),
    }


def profile_phases() -> list[tuple[str, float]]:
    """Share of a baseline run's CPU time in each phase the schedule calls (under cProfile).

    Phases are the functions that ``SupplyChainModel._month`` and ``step`` call directly;
    the profiler's own overhead inflates cheap calls, so read the shares, not the seconds.
    """
    world, _ = load_world(ROOT / "models" / "baseline_2024.toml")
    model = SupplyChainModel(world, rng=0)
    prof = cProfile.Profile(time.process_time)
    prof.runcall(model.run)
    stats = pstats.Stats(prof).stats  # type: ignore[attr-defined]
    total = sum(v[3] for k, v in stats.items() if k[2] == "step")
    phases: dict[str, float] = {}
    for (path, _, name), (*_, callers) in stats.items():
        for (caller_path, _, caller), timing in callers.items():
            if (
                caller in ("_month", "step")
                and caller_path.endswith("model.py")
                and name != "_month"
            ):
                label = f"{Path(path).stem}.{name}" if path.startswith(str(ROOT)) else name
                phases[label] = phases.get(label, 0.0) + timing[3] / total
    return sorted(phases.items(), key=lambda kv: -kv[1])


def bench_synthetic(n: int, months: int) -> dict[str, float]:
    world = validate_world(synthetic_world(n, seed=1, months=months))
    t0 = time.perf_counter()
    model = SupplyChainModel(world, rng=1, record=False)
    t1 = time.perf_counter()
    c1 = time.process_time()
    model.run()
    c2 = time.process_time()
    t2 = time.perf_counter()
    return {
        "agents": len(model.agents),
        "links": model.links.n,
        "construct_s": t1 - t0,
        "s_per_month": (t2 - t1) / months,
        "cpu_s_per_month": (c2 - c1) / months,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--profile", action="store_true", help="add each phase's share of a month")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "core.md"))
    args = ap.parse_args()
    repeats = 3 if args.quick else 15
    load_before = os.getloadavg()[0]  # a shared machine's load inflates wall and CPU times
    base = bench_baseline(repeats)
    sizes = (1_000, 10_000) if args.quick else (1_000, 10_000, 100_000)
    synth = {n: bench_synthetic(n, 12) for n in sizes}
    lines = [
        "# Core benchmarks",
        "",
        f"Command: `python benchmarks/bench_core.py{' --quick' if args.quick else ''}`  ",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}, "
        f"load average {load_before:.1f} before and {os.getloadavg()[0]:.1f} after the runs "
        "(steadier: `benchmarks/results/instructions.md`)",
        "",
        "## Baseline world, 2024-01..2040-12",
        "",
        f"{repeats} runs (seeds 0..{repeats - 1}).",
        "",
        "| months | agents | links | simulation (median) | simulation (min) | CPU (median) | "
        "CPU (min) | construction incl. 36-month spin-up | tidy tables |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| {base['months']} | {base['agents']} | {base['links']} | "
        f"{base['simulate_s']:.3f} s | {base['simulate_min_s']:.3f} s | "
        f"{base['simulate_cpu_s']:.3f} s | {base['simulate_cpu_min_s']:.3f} s | "
        f"{base['construct_s']:.3f} s | {base['tables_s']:.3f} s |",
        "",
        "Target (issue 8): <= 0.15 s of simulation wall time on a 2-core machine.",
        "",
        "## Synthetic worlds (3 suppliers per buyer), 12 simulated months",
        "",
        "| agents | links | construction incl. 12-month spin-up | seconds per month | "
        "CPU seconds per month |",
        "|---|---|---|---|---|",
    ]
    for r in synth.values():
        lines.append(
            f"| {r['agents']:,} | {r['links']:,} | {r['construct_s']:.2f} s | "
            f"{r['s_per_month']:.4f} | {r['cpu_s_per_month']:.4f} |"
        )
    lines += ["", "Target (issue 8): growth about linear, <= 0.1 s per month at 100k agents.", ""]
    if args.profile:
        lines += [
            "## Where a baseline month's time goes (CPU share under cProfile, seed 0)",
            "",
            "| phase (function the schedule calls) | share |",
            "|---|---|",
            *[f"| `{name}` | {share:.1%} |" for name, share in profile_phases() if share >= 0.005],
            "",
        ]
    text = "\n".join(lines)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
