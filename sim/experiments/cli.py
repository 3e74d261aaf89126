"""``ndsim sweep`` and ``ndsim analyze`` (added to the ``ndsim`` parser by ``sim.cli``)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any


def sigterm_as_interrupt() -> None:
    """Make ``kill`` behave like Ctrl-C so finished runs are flushed before exiting."""
    if threading.current_thread() is not threading.main_thread():
        return

    def handler(signum, frame):  # noqa: ARG001
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def interruptible[T](work: Callable[[], T]) -> T | None:
    """``work()`` with SIGTERM as Ctrl-C; None, after saying how to go on, if interrupted."""
    from sim.experiments.stopping import SweepInterrupted

    sigterm_as_interrupt()
    try:
        return work()
    except SweepInterrupted as exc:  # "interrupted" is already printed
        print(f"finished runs are saved; to go on: {exc.resume}", file=sys.stderr)
        return None


def add_run_command(
    sub: argparse._SubParsersAction,
    name: str,
    *,
    help: str,
    spec: str,
    what: str,
    out_default: str,
) -> argparse.ArgumentParser:
    """A sub-command that runs many simulations from a spec file (``sweep``, ``calibrate``).

    It takes ``spec`` and ``--out``, ``--workers``, ``--scheduler``, ``--resume`` and
    ``--no-progress`` (:func:`backend_options` reads them back).

    Args:
        sub: The ``ndsim`` sub-command parsers.
        name: The sub-command.
        help: Its help line.
        spec: What its spec file is (``sweep spec TOML``).
        what: What it does, in the words of ``--resume`` (``complete an interrupted sweep``).
        out_default: The default output directory, for the help.

    Returns:
        The sub-command's parser, for its own options.
    """
    p = sub.add_parser(name, help=help)
    p.add_argument("spec", help=spec)
    p.add_argument("--out", help=f"output directory (default {out_default})")
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="local worker processes (default: all cores; 1: in this process)",
    )
    p.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="tcp://host:port of a Dask scheduler, or 'local' for a Dask "
        "LocalCluster with --workers workers",
    )
    p.add_argument("--resume", action="store_true", help=what)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def backend_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of the options :func:`add_run_command` adds."""
    return {
        "out": args.out,
        "workers": args.workers,
        "scheduler": args.scheduler,
        "resume": args.resume,
        "progress": not args.no_progress,
    }


def cmd_sweep(args: argparse.Namespace) -> int:
    """``ndsim sweep SPEC``."""
    from sim.experiments.runner import sweep

    s = interruptible(
        lambda: sweep(args.spec, limit=args.limit, design_n=args.n, **backend_options(args))
    )
    if s is None:
        return 130
    print(
        f"{s.out}: {s.n_ran} runs done now, {s.n_skipped} before, {s.n_runs} in the design; "
        f"{s.n_errors} errors; {s.wall_seconds:.1f} s on {s.backend}"
    )
    if s.peak_workers is not None:
        jobs = f"; {s.jobs}" if s.jobs else ""
        print(f"peak {s.peak_in_flight} runs in flight on {s.peak_workers} workers{jobs}")
    if s.n_skipped + s.n_ran < s.n_runs:
        print(f"incomplete: run again with --resume --out {s.out}")
    return 0


def cmd_analyze(args: argparse.Namespace) -> int:
    """``ndsim analyze DIR``."""
    from sim.experiments.analyze import analyze

    prim = None
    if args.prim:
        from sim.experiments.analyze import parse_prim

        prim = parse_prim(args.prim)
    report = analyze(args.dir, prim=prim, figures=not args.no_figures, log_outcomes=args.log)
    print(f"report written to {report}")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Add ``sweep`` and ``analyze`` to the ``ndsim`` sub-command parser."""
    s = add_run_command(
        sub,
        "sweep",
        help="run a parameter sweep (experiments/sweep_*.toml)",
        spec="sweep spec TOML",
        what="complete an interrupted sweep",
        out_default="runs/sweeps/<name>",
    )
    s.add_argument("--limit", type=int, help="run at most this many runs now")
    s.add_argument(
        "--n",
        type=int,
        help="the design's n instead of the spec's (a smaller study of the same design, e.g. "
        "Sobol N = 64 on a workstation; use its own --out)",
    )
    s.set_defaults(func=cmd_sweep)

    a = sub.add_parser("analyze", help="sensitivity analysis, PRIM, figures and report")
    a.add_argument("dir", help="a sweep output directory")
    a.add_argument(
        "--prim",
        metavar="OUTCOME>THRESHOLD",
        help="scenario discovery for runs with OUTCOME above (>) or below (<) "
        "THRESHOLD (default: the spec's [analysis])",
    )
    a.add_argument(
        "--log",
        metavar="OUTCOME",
        action="append",
        help="analyse OUTCOME on the log scale (repeatable; default: the spec's "
        "[analysis] log_outcomes)",
    )
    a.add_argument("--no-figures", action="store_true")
    a.set_defaults(func=cmd_analyze)
