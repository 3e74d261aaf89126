"""The Python API: ``sim.run`` returns a run's tables as pandas DataFrames, writing nothing."""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mesa
import numpy as np

from sim.calendar import format_month, parse_month
from sim.errors import UserError
from sim.model import SupplyChainModel
from sim.results import Results, build_results
from sim.scenario import Scenario
from sim.world import World, load_world, read_toml

__version__ = "0.1.0"


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def versions() -> dict[str, str | None]:
    """Versions of ndsim and its main dependencies, and the git commit when available."""
    return {
        "ndsim": __version__,
        "mesa": mesa.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "git_commit": _git_commit(),
    }


def _file_kind(raw: dict[str, Any]) -> str | None:
    """``"experiment"`` or ``"sweep spec"`` for files that are not worlds, else None."""
    if "scenarios" in raw:
        return "experiment"
    if "design" in raw or ("parameters" in raw and "base" in raw):
        return "sweep spec"
    return None


def resolve_world(
    world: str | Path | World | dict[str, Any] | Scenario, overrides: list[str] | None = None
) -> tuple[World, dict[str, Any], str]:
    """Accept a path, a raw dict, a World or a Scenario; return (World, raw dict, label).

    Raises:
        UserError: If the world does not validate, or the file is an experiment file or a
            sweep spec rather than a world.
    """
    if isinstance(world, Scenario):
        sc = world.with_overrides(overrides) if overrides else world
        return sc.world(), sc.world_raw, sc.world_file
    if isinstance(world, World):
        if overrides:
            raw = world.model_dump(mode="json")
            w, raw = load_world("<world>", overrides, raw=raw)
            return w, raw, "<world>"
        return world, world.model_dump(mode="json"), "<world>"
    if isinstance(world, dict):
        w, raw = load_world("<dict>", overrides, raw=world)
        return w, raw, "<dict>"
    raw = read_toml(world)
    kind = _file_kind(raw)
    if kind == "experiment":
        raise UserError(
            "this is an experiment file (it has [[scenarios]]), not a world: run it with "
            f"`ndsim run {world}`, or run one of its scenarios with "
            f"sim.run(sim.load_scenario('{world}#NAME'))",
            file=str(world),
        )
    if kind == "sweep spec":
        raise UserError(
            f"this is a sweep spec, not a world: run it with `ndsim sweep {world}`",
            file=str(world),
        )
    w, raw = load_world(world, overrides, raw=raw)
    return w, raw, str(world)


def check_period(start: str | None, end: str | None, world: World) -> None:
    """Check ``--start``/``--end`` months, raising :class:`UserError` when malformed."""
    months = {}
    for name, value, default in (
        ("start", start, world.calendar.start),
        ("end", end, world.calendar.end),
    ):
        try:
            months[name] = parse_month(value or default)
        except ValueError:
            raise UserError(f"--{name} {value!r}: expected a month as YYYY-MM") from None
    if months["end"] < months["start"]:
        raise UserError(
            f"--end {format_month(months['end'])} is before --start {format_month(months['start'])}"
        )


def run(
    world: str | Path | World | dict[str, Any] | Scenario,
    *,
    seed: int = 0,
    start: str | None = None,
    end: str | None = None,
    overrides: list[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Results:
    """Run one simulation and return its tables.

    Args:
        world: A world file path, a raw world dict, a validated :class:`World` or a
            :class:`~sim.scenario.Scenario` (see :func:`sim.load_scenario`).
        seed: Seed for the model's random generator.
        start: First month (``YYYY-MM``), default from the scenario or the world's calendar.
        end: Last month, default from the scenario or the world's calendar.
        overrides: ``key.path=value`` parameter overrides.
        progress: Called as ``progress(months_done, months_total)`` after each month.

    Returns:
        The run's :class:`Results` (timeseries, flows, agents, manifest).
    """
    w, raw, label = resolve_world(world, overrides)
    if isinstance(world, Scenario):
        start, end = start or world.start, end or world.end
    check_period(start, end, w)
    model = SupplyChainModel(w, rng=seed, start=start, end=end)
    t0 = time.perf_counter()
    if progress is None:
        model.run()
    else:
        for k in range(model.n_months):
            model.run_for(1)
            progress(k + 1, model.n_months)
    wall = time.perf_counter() - t0
    text = json.dumps(raw, sort_keys=True, default=str)
    manifest = {
        "world": label,
        "world_name": w.meta.name,
        "scenario": raw,
        "scenario_sha256": hashlib.sha256(text.encode()).hexdigest(),
        "overrides": list(overrides or []),
        "seed": seed,
        "start": format_month(model.start_abs),
        "end": format_month(model.end_abs),
        "months": model.n_months,
        "agents": len(model.agents),
        "links": model.links.n,
        "versions": versions(),
        "wall_seconds": wall,
    }
    if isinstance(world, Scenario):
        manifest["scenario_name"] = world.name
        manifest["overrides"] = [*world.overrides, *(overrides or [])]
    results = build_results(model, manifest)
    results.model = model  # type: ignore[attr-defined]
    return results
