"""How a sweep (or calibration) stops: Ctrl-C or SIGTERM, a backend that fails, how to go on."""

from __future__ import annotations

import shlex
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sim.errors import UserError


class BackendError(UserError):
    """The workers cannot run the sweep (none start, or they cannot run ndsim)."""


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped a sweep; finished runs are on disk.

    Attributes:
        resume: The command that completes the sweep.
    """

    def __init__(self, resume: str):
        self.resume = resume
        super().__init__(resume)


def resume_command(
    spec_path: str | Path,
    out: str | Path,
    *,
    scheduler: str | None,
    workers: int | None,
    command: str = "sweep",
) -> str:
    """The ``ndsim <command> ... --resume`` command that goes on on the same backend.

    Args:
        spec_path: The spec file the work was started with.
        out: Its output directory.
        scheduler: ``--scheduler`` as given (None: not given).
        workers: ``--workers`` as given (None: not given).
        command: The ``ndsim`` sub-command (``sweep``, ``calibrate``).
    """
    parts = ["ndsim", command, str(spec_path), "--resume", "--out", str(out)]
    if scheduler is not None:
        parts += ["--scheduler", scheduler]
    if workers is not None:
        parts += ["--workers", str(workers)]
    return shlex.join(parts)


def _raise_interrupt(signum, frame):  # noqa: ARG001 - signal handler signature
    raise KeyboardInterrupt


@contextmanager
def interrupts() -> Iterator[None]:
    """Within: Ctrl-C and SIGTERM raise KeyboardInterrupt (main thread only).

    Restores Python's SIGINT handler even where a library replaced it (dask-jobqueue 0.9.0
    sets ``sys.exit`` on import, dask-jobqueue issue 696), and the previous handlers after.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    if old[signal.SIGINT] is not signal.SIG_IGN:  # SIG_IGN: e.g. started with nohup &
        signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)


def interrupted(hint: str, bar: Any = None) -> SweepInterrupted:
    """Close the progress bar, say ``interrupted`` on stderr; the exception to raise after.

    Args:
        hint: The command that goes on (:func:`resume_command`).
        bar: The progress bar, if any (closed first, so the message stands on its own line).
    """
    if bar is not None:
        bar.close()
    print("interrupted", file=sys.stderr, flush=True)
    return SweepInterrupted(hint)


def close_all(*resources: Any) -> None:
    """Close each resource that is not None, in order (progress bar, Dask client, cluster)."""
    for r in resources:
        if r is not None:
            r.close()
