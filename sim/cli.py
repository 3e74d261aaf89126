"""The ``ndsim`` command line: run, validate, sweep, analyze, ui.

User errors (bad files, keys, values) print one clear message and exit with code 2, with no
traceback and nothing written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sim.errors import UserError


def _progress_bar(total: int, desc: str):
    from tqdm import tqdm

    return tqdm(
        total=total, desc=desc, unit="month", file=sys.stderr, leave=False, disable=None
    )  # None: shown on a terminal, silent in logs


def summary_table(res) -> str:
    """A short text summary of a run: annual figures for the first and last years."""
    import pandas as pd

    rows = {}
    for label, metric, prod, region, how in [
        ("mine production (kt REO)", "production_t", "concentrate", "", "sum"),
        ("NdPr oxide production (kt)", "production_t", "oxide", "", "sum"),
        ("magnet production (kt)", "production_t", "magnet", "", "sum"),
        ("magnet demand (kt)", "demand_t", "magnet", "", "sum"),
        ("magnet shortage (kt)", "shortage_t", "magnet", "", "sum"),
        ("NdPr oxide price, China (USD/kg)", "price_usd_per_kg", "oxide", "china", "mean"),
        ("NdPr oxide price, ex-China (USD/kg)", "price_usd_per_kg", "oxide", "world", "mean"),
        ("magnet price, China (USD/kg)", "price_usd_per_kg", "magnet", "china", "mean"),
    ]:
        s = res.series(metric, prod, region)
        annual = s.resample("YS").sum() / 1e3 if how == "sum" else s.resample("YS").mean()
        rows[label] = annual
    table = pd.DataFrame(rows).T
    years = list(table.columns)
    pick = sorted({years[0], years[min(1, len(years) - 1)], years[len(years) // 2], years[-1]})
    table = table[pick]
    table.columns = [c.year for c in table.columns]
    return table.round(1).to_string()


def cmd_run(args: argparse.Namespace) -> int:
    """``ndsim run FILE``: a world, or an experiment file with named scenarios."""
    from sim.world import read_toml

    raw = read_toml(args.file)
    if "scenarios" in raw:
        from sim.scenarios import run_experiment_file

        return run_experiment_file(
            args.file,
            out=args.out,
            seed=args.seed,
            start=args.start,
            end=args.end,
            overrides=args.set,
        )
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
    write_results(res, out)
    print(
        f"{world.meta.name}: {res.manifest['months']} months, {res.manifest['agents']} agents,"
        f" {res.manifest['links']} links; simulation {res.manifest['wall_seconds']:.3f} s"
    )
    print(summary_table(res))
    print(
        f"results written to {out}/ (timeseries.parquet, flows.parquet, agents.parquet, "
        f"transfers.parquet, manifest.json, figures/)"
    )
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
    if "design" in raw or "parameters" in raw and "base" in raw:
        from sim.experiments.spec import load_spec

        load_spec(args.file)
        print(f"{args.file}: valid sweep spec")
        return 0
    world, _ = load_world(args.file, args.set, raw=raw)
    n = sum(len(t) for t in world.firm_tables().values()) + len(world.oems)
    print(f"{args.file}: valid world '{world.meta.name}' ({n} trading agents)")
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
        help="seed of the model's generator (default 0; experiments: their own)",
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
