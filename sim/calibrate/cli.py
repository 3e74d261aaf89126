"""``ndsim calibrate`` (added to the ``ndsim`` parser by ``sim.cli``)."""

from __future__ import annotations

import argparse

from sim.experiments.cli import add_run_command, backend_options, interruptible


def cmd_calibrate(args: argparse.Namespace) -> int:
    """``ndsim calibrate SPEC``."""
    from sim.calibrate.run import calibrate

    s = interruptible(
        lambda: calibrate(args.spec, figures=not args.no_figures, **backend_options(args))
    )
    if s is None:
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
    c = add_run_command(
        sub,
        "calibrate",
        help="fit parameters to data (experiments/calibrate_*.toml)",
        spec="calibration spec TOML",
        what="continue an interrupted calibration",
        out_default="runs/calibrations/<name>",
    )
    c.add_argument("--no-figures", action="store_true", help="no fit figures")
    c.set_defaults(func=cmd_calibrate)
