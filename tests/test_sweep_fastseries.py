"""The sweep's fast time-series path gives exactly build_results' rows for its metrics."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from sim.experiments.fastseries import FAST_METRICS, fast_timeseries
from sim.model import SupplyChainModel
from sim.results import build_results
from sim.world import load_world

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("world", ["classroom.toml", "baseline_2024.toml"])
def test_fast_path_equals_build_results(world):
    path = ROOT / "models" / world
    if not path.exists():
        pytest.skip(f"{world} not present")
    w, _ = load_world(path)
    model = SupplyChainModel(w, rng=5, end="2026-12")
    model.run()
    full = build_results(model).timeseries
    for metrics in (set(FAST_METRICS), {"shortage_t"}, {"price_usd_per_kg", "production_t"}):
        fast = fast_timeseries(model, metrics)
        want = full[full["metric"].isin(metrics)].reset_index(drop=True)
        pd.testing.assert_frame_equal(fast, want)
    assert fast_timeseries(model, {"inventory_t"}) is None
    assert fast_timeseries(model, {"price_usd_per_kg", "stockpile_t"}) is None
