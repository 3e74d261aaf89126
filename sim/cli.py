"""The ``ndsim`` command line: run, validate, sweep, analyze, calibrate, ui.

User errors (bad files, keys, values) print one clear message and exit with code 2, with no
traceback and nothing written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from sim.errors import UserError

if TYPE_CHECKING:
    import pandas as pd


def _progress_bar(total: int, desc: str):
    from tqdm import tqdm

    return tqdm(
        total=total, desc=desc, unit="month", file=sys.stderr, leave=False, disable=None
    )  # None: shown on a terminal, silent in logs


SUMMARY_ROWS = [
    ("mine production (kt REO)", "production_t", "concentrate", "", "sum"),
    ("NdPr oxide production (kt)", "production_t", "oxide", "", "sum"),
    ("magnet production (kt)", "production_t", "magnet", "", "sum"),
    ("magnet demand (kt)", "demand_t", "magnet", "", "sum"),
    ("magnet shortage (kt)", "shortage_t", "magnet", "", "sum"),
    ("NdPr oxide price, China (USD/kg)", "price_usd_per_kg", "oxide", "china", "mean"),
    ("NdPr oxide price, ex-China (USD/kg)", "price_usd_per_kg", "oxide", "ex_china", "mean"),
    ("magnet price, China (USD/kg)", "price_usd_per_kg", "magnet", "china", "mean"),
]


def summary_frame(res) -> pd.DataFrame:
    """Annual key numbers of a run: quantity, year, value (long format)."""
    import pandas as pd

    rows = []
    for label, metric, prod, region, how in SUMMARY_ROWS:
        s = res.series(metric, prod, region)
        annual = s.resample("YS").sum() / 1e3 if how == "sum" else s.resample("YS").mean()
        rows += [{"quantity": label, "year": d.year, "value": float(v)} for d, v in annual.items()]
    return pd.DataFrame(rows)


def summary_table(res) -> str:
    """A short text summary of a run: annual figures for the first and last years."""
    frame = summary_frame(res)
    table = frame.pivot(index="quantity", columns="year", values="value")
    table = table.loc[[r[0] for r in SUMMARY_ROWS]]
    years = list(table.columns)
    pick = sorted({years[0], years[min(1, len(years) - 1)], years[len(years) // 2], years[-1]})
    table = table[pick]
    table.index.name = None
    table.columns.name = None
    return table.round(1).to_string()


def cmd_run(args: argparse.Namespace) -> int:
    """``ndsim run FILE``: a world, or an experiment file with named scenarios."""
    from sim.world import read_toml

    raw = read_toml(args.file)
    if "scenarios" in raw or args.posterior:
        from sim.experiments.cli import sigterm_as_interrupt
        from sim.scenarios import run_experiment_file

        sigterm_as_interrupt()
        exp = None
        if "scenarios" not in raw:  # a world with --posterior: an ensemble of one scenario
            from sim.calibrate.posterior import world_experiment

            exp = world_experiment(args.file, args.set)
        if args.draws is not None and args.seeds not in (None, args.draws):
            raise UserError("--draws and --seeds differ: each seed draws one parameter set")
        return run_experiment_file(
            args.file,
            out=args.out,
            seeds=args.draws if args.draws is not None else args.seeds,
            seed=args.seed,
            start=args.start,
            end=args.end,
            overrides=args.set,
            workers=args.workers,
            scheduler=args.scheduler,
            resume=args.resume,
            csv=args.csv,
            posterior=args.posterior,
            exp=exp,
        )
    if args.draws is not None:
        raise UserError("--draws needs --posterior DIR (a calibration's output folder)")
    for flag in ("seeds", "workers", "scheduler", "resume"):  # --csv works for both
        if getattr(args, flag) not in (None, False):
            raise UserError(f"--{flag} is for experiment files; {args.file} is a world")
    import sim.api as api
    from sim.io import write_results
    from sim.world import load_world

    world, raw = load_world(args.file, args.set, raw=raw)
    out = Path(args.out or f"runs/{world.meta.name}")
    state: dict = {"bar": None}

    def progress(done: int, total: int) -> None:
        if state["bar"] is None:
            state["bar"] = _progress_bar(total, f"{world.meta.name}")
        state["bar"].update(1)

    res = api.run(
        args.file,
        seed=0 if args.seed is None else args.seed,
        start=args.start,
        end=args.end,
        overrides=args.set,
        progress=progress,
    )
    if state["bar"] is not None:
        state["bar"].close()
    write_results(res, out, csv=args.csv)
    print(
        f"{world.meta.name}: {res.manifest['months']} months, {res.manifest['agents']} agents,"
        f" {res.manifest['links']} links; simulation {res.manifest['wall_seconds']:.3f} s"
    )
    print(summary_table(res))
    print(
        f"results written to {out}/ (timeseries.parquet, flows.parquet, agents.parquet, "
        f"transfers.parquet, manifest.json, figures/"
        f"{', and the tables as CSV' if args.csv else ''})"
    )
    return 0


def agents_table(world) -> pd.DataFrame:
    """Every agent of a world: id, name, role, region, sector, capacity, source."""
    import pandas as pd

    rows = []
    for role, table in world.firm_tables().items():
        for f in table:
            rows.append(
                {
                    "id": f.id,
                    "name": f.name,
                    "role": role.removesuffix("s"),
                    "region": f.region,
                    "sector": "",
                    "capacity_t_per_yr": f.capacity_t_per_yr,
                    "source": f.source,
                }
            )
    for o in world.oems:
        rows.append(
            {
                "id": o.id,
                "name": getattr(o, "name", ""),
                "role": "oem",
                "region": o.region,
                "sector": o.sector,
                "capacity_t_per_yr": float("nan"),
                "source": getattr(o, "source", ""),
            }
        )
    return pd.DataFrame(rows)


def cmd_info(args: argparse.Namespace) -> int:
    """``ndsim info WORLD``: every agent with its role, region, capacity and source."""
    from sim.docgen import agent_counts
    from sim.world import load_world

    world, _ = load_world(args.file, args.set)
    table = agents_table(world)
    if args.csv:
        table.to_csv(args.csv, index=False)
        print(f"{len(table)} agents written to {args.csv}")
        return 0
    print(f"{args.file}: world '{world.meta.name}': {agent_counts(world)}")
    with_cap = table.assign(
        capacity_t_per_yr=table["capacity_t_per_yr"].map(
            lambda v: "" if v != v else f"{v:,.0f}"  # NaN: OEMs have no capacity
        )
    )
    print(with_cap.to_string(index=False, max_colwidth=40))
    return 0


def compare_table(a: str, b: str) -> pd.DataFrame:
    """Key numbers of two runs (or two experiment ensembles) side by side, with B - A."""
    from sim.experiments.ensemble import load_ensemble
    from sim.io import read_results

    pa, pb = Path(a), Path(b)
    if (pa / "summary.parquet").exists() and (pb / "summary.parquet").exists():
        sa, sb = load_ensemble(pa)["summary"], load_ensemble(pb)["summary"]
        keys = ["scenario", "metric"]
        m = sa[keys + ["mean"]].merge(sb[keys + ["mean"]], on=keys, how="outer")
        m.columns = [*keys, "A", "B"]
    else:
        ra, rb = read_results(pa), read_results(pb)
        ta, tb = summary_frame(ra), summary_frame(rb)
        m = ta.merge(tb, on=["quantity", "year"], how="outer", suffixes=("_a", "_b"))
        m.columns = ["quantity", "year", "A", "B"]
        order = {row[0]: k for k, row in enumerate(SUMMARY_ROWS)}
        m = m.sort_values(
            ["quantity", "year"], key=lambda c: c.map(order) if c.name == "quantity" else c
        )
        m = m.reset_index(drop=True)
    m["B - A"] = m["B"] - m["A"]
    return m


def cmd_compare(args: argparse.Namespace) -> int:
    """``ndsim compare RUN_A RUN_B``."""
    table = compare_table(args.a, args.b)
    if args.csv:
        table.to_csv(args.csv, index=False)
        print(f"{len(table)} rows written to {args.csv}")
        return 0
    print(f"A = {args.a}\nB = {args.b}")
    print(table.to_string(index=False, float_format=lambda v: f"{v:,.2f}"))
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    """``ndsim validate FILE``: check a world or experiment file; run nothing."""
    from sim.world import load_world, read_toml

    raw = read_toml(args.file)
    if "scenarios" in raw:
        from sim.scenarios import load_experiment

        exp = load_experiment(args.file, raw=raw)
        print(f"{args.file}: valid experiment ({len(exp.scenarios)} scenarios)")
        return 0
    if "posterior" in raw and "targets" in raw:
        from sim.calibrate.validate import prepare as prepare_holdout

        hp = prepare_holdout(args.file)  # spec, data, calibration folder, draws fit the world
        n = f"{len(hp.draws)} draws, {len(hp.targets)} targets"
        print(f"{args.file}: valid hold-out spec ({n})")
        return 0
    if "targets" in raw and "base" in raw:
        from sim.calibrate.run import prepare

        prep = prepare(args.file)  # spec, target files, base world, parameter ranges
        n = sum(len(t.periods) for t in prep.targets)
        print(
            f"{args.file}: valid calibration spec ({len(prep.spec.parameters)} parameters, "
            f"{len(prep.targets)} targets, {n} data points)"
        )
        return 0
    if "design" in raw or "parameters" in raw and "base" in raw:
        from sim.experiments.spec import base_scenario, load_spec

        spec, base_path = load_spec(args.file)
        base = base_scenario(spec, base_path, spec_path=args.file)
        base.world()  # the base scenario with the spec's overrides validates
        print(f"{args.file}: valid sweep spec (base scenario {base.name!r})")
        return 0
    from sim.docgen import agent_counts

    world, _ = load_world(args.file, args.set, raw=raw)
    print(f"{args.file}: valid world '{world.meta.name}': {agent_counts(world)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``ndsim``."""
    p = argparse.ArgumentParser(prog="ndsim", description="Neodymium supply-chain simulation")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="run a world or an experiment file")
    r.add_argument("file")
    r.add_argument("--out", help="output directory (default runs/<name>)")
    r.add_argument(
        "--seed",
        type=int,
        default=None,
        help="seed of the model's generator (default 0; experiments: seed of replicate 0)",
    )
    r.add_argument(
        "--seeds",
        type=int,
        default=None,
        help="experiments: seeds per scenario (default: the file's `seeds`, else 8; "
        "1: the single seed-0 run)",
    )
    r.add_argument(
        "--workers",
        type=int,
        default=None,
        help="experiments: local worker processes (default: all cores; 1: in this process)",
    )
    r.add_argument(
        "--scheduler", metavar="ADDRESS", help="experiments: a Dask scheduler, or 'local'"
    )
    r.add_argument("--resume", action="store_true", help="experiments: complete an interrupted run")
    r.add_argument(
        "--csv",
        action="store_true",
        help="also write the tables as CSV (runs: timeseries, flows, agents; experiments: "
        "metrics, summary, effects)",
    )
    r.add_argument(
        "--posterior",
        metavar="DIR",
        help="a calibration's output folder: each seed also draws a parameter set from its "
        "posterior (a world then runs as an ensemble of --seeds draws, default 8)",
    )
    r.add_argument(
        "--draws",
        type=int,
        default=None,
        help="with --posterior: parameter sets drawn, one per seed (same as --seeds)",
    )
    r.add_argument("--start", help="first month YYYY-MM")
    r.add_argument("--end", help="last month YYYY-MM")
    r.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY.PATH=VALUE",
        help="override a parameter (repeatable)",
    )
    r.set_defaults(func=cmd_run)

    v = sub.add_parser("validate", help="check a world, experiment or sweep file")
    v.add_argument("file")
    v.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE")
    v.set_defaults(func=cmd_validate)

    i = sub.add_parser("info", help="list a world's agents (id, name, role, region, capacity)")
    i.add_argument("file")
    i.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE")
    i.add_argument("--csv", metavar="PATH", help="write the table as CSV instead")
    i.set_defaults(func=cmd_info)

    c = sub.add_parser("compare", help="key numbers of two runs or two experiment runs")
    c.add_argument("a", metavar="RUN_A")
    c.add_argument("b", metavar="RUN_B")
    c.add_argument("--csv", metavar="PATH", help="write the table as CSV instead")
    c.set_defaults(func=cmd_compare)

    try:
        from sim.experiments.cli import add_commands
    except ImportError:  # pragma: no cover - only while the package is incomplete
        add_commands = None
    if add_commands is not None:
        add_commands(sub)
    try:
        from sim.app_cli import add_command
    except ImportError:  # pragma: no cover
        add_command = None
    if add_command is not None:
        add_command(sub)
    from sim.calibrate.cli import add_command as add_calibrate
    from sim.calibrate.validate import add_command as add_holdout

    add_calibrate(sub)
    add_holdout(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``ndsim`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
