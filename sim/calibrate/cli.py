"""``ndsim calibrate`` (added to the ``ndsim`` parser by ``sim.cli``)."""

from __future__ import annotations

import argparse
import sys


def cmd_calibrate(args: argparse.Namespace) -> int:
    """``ndsim calibrate SPEC``."""
    from sim.calibrate.run import calibrate
    from sim.experiments.cli import sigterm_as_interrupt
    from sim.experiments.stopping import SweepInterrupted

    sigterm_as_interrupt()
    try:
        s = calibrate(
            args.spec,
            out=args.out,
            workers=args.workers,
            scheduler=args.scheduler,
            resume=args.resume,
            progress=not args.no_progress,
            figures=not args.no_figures,
        )
    except SweepInterrupted as exc:  # "interrupted" is already printed
        print(f"finished runs are saved; to go on: {exc.resume}", file=sys.stderr)
        return 130
    ses = s.session
    print(
        f"{s.out}: {s.n_runs} simulations ({ses.n_simulated} now, {ses.n_reused} reused from "
        f"disk, {ses.n_errors} failed); {s.generations} generations, last threshold "
        f"{s.epsilon:.4g}; {ses.wall_seconds:.1f} s now on {ses.backend}, "
        f"{s.wall_seconds_total:.1f} s in all"
    )
    if ses.stopped_by:
        print(f"stopped: {ses.stopped_by}")
    print(f"report: {s.out / 'report.md'}; point estimate: {s.out / 'point.toml'}")
    return 0


def add_command(sub: argparse._SubParsersAction) -> None:
    """Add ``calibrate`` to the ``ndsim`` sub-command parser."""
    c = sub.add_parser("calibrate", help="fit parameters to data (experiments/calibrate_*.toml)")
    c.add_argument("spec", help="calibration spec TOML")
    c.add_argument("--out", help="output directory (default runs/calibrations/<name>)")
    c.add_argument(
        "--workers",
        type=int,
        default=None,
        help="local worker processes (default: all cores; 1: in this process)",
    )
    c.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="tcp://host:port of a Dask scheduler, or 'local' for a Dask LocalCluster",
    )
    c.add_argument("--resume", action="store_true", help="continue an interrupted calibration")
    c.add_argument("--no-progress", action="store_true", help="no progress bar")
    c.add_argument("--no-figures", action="store_true", help="no fit figures")
    c.set_defaults(func=cmd_calibrate)
