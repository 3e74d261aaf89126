"""Shared fixtures: worlds and cached runs (runs are deterministic, so caching is safe)."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

import sim

ROOT = Path(__file__).resolve().parents[1]
BASELINE = ROOT / "models" / "baseline_2024.toml"
CLASSROOM = ROOT / "models" / "classroom.toml"
HISTORY = ROOT / "models" / "history_2020.toml"


@functools.cache
def cached_run(world: str, seed: int = 0, end: str | None = None):
    """Run once per (world, seed, end) per session."""
    return sim.run(world, seed=seed, end=end)


@pytest.fixture(scope="session")
def baseline_run():
    return cached_run(str(BASELINE), 0)


@pytest.fixture(scope="session")
def classroom_run():
    return cached_run(str(CLASSROOM), 0)
