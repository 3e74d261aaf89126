"""The metric catalogue: every recorded metric is declared once; subsets build the same rows."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from sim.metrics import CATALOGUE, Metric, declare, get
from sim.model import SupplyChainModel
from sim.results import BUILDERS, build_results, build_timeseries
from sim.scenarios import load_experiment
from sim.world import load_world

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = ["export_controls_2025", "project_vault", "stockpile", "recycling_2030"]


@pytest.mark.parametrize("world", ["classroom.toml", "baseline_2024.toml"])
def test_subsets_equal_the_full_table(world):
    w, _ = load_world(ROOT / "models" / world)
    model = SupplyChainModel(w, rng=5, end="2026-12")
    model.run()
    full = build_results(model).timeseries
    model_metrics = {m for m in BUILDERS}
    for metrics in (model_metrics, {"shortage_t"}, {"price_usd_per_kg", "production_t"}):
        part = build_timeseries(model, metrics)
        want = full[full["metric"].isin(metrics)].reset_index(drop=True)
        pd.testing.assert_frame_equal(part, want)
    assert build_timeseries(model, {"no_such_metric"}).empty


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_recorded_metric_is_declared_with_its_dimensions(name):
    exp = load_experiment(ROOT / "experiments" / f"{name}.toml")
    for sc in exp.scenarios:
        ts = sc.with_period(end="2026-06").run(1).timeseries
        for metric, grp in ts.groupby("metric"):
            m = get(metric)  # raises for an undeclared metric
            for dim in ("product", "region", "sector"):
                if dim not in m.dims:
                    assert (grp[dim] == "").all(), (metric, dim)


def test_catalogue_is_consistent():
    assert set(BUILDERS) == {n for n, m in CATALOGUE.items() if m.source == "model"}
    for m in CATALOGUE.values():
        assert m.unit and m.meaning and m.kind
    with pytest.raises(KeyError, match="did you mean 'shortage_t'"):
        get("shortage")
    with pytest.raises(ValueError, match="declared twice"):
        declare(Metric("shortage_t", "kg", "flow", ("region",), "a different shortage"))
    assert get("shortage_t").axis_label("magnet shortage") == "magnet shortage (t/month)"


def test_price_labels_follow_the_domestic_region():
    w, _ = load_world(ROOT / "models" / "classroom.toml", ["market.domestic_region=usa"])
    model = SupplyChainModel(w, rng=1, end="2024-06")
    model.run()
    ts = build_timeseries(model, {"price_usd_per_kg"})
    assert set(ts["region"]) == {"usa", "ex_usa"}


def test_sweep_specs_name_catalogued_metrics(tmp_path):
    from sim.errors import UserError
    from sim.experiments.spec import load_spec

    (tmp_path / "w.toml").write_text("")
    text = """
name = "t"
[base]
world = "w.toml"
[design]
method = "lhs"
n = 2
[[parameters]]
path = "behaviour.price_sensitivity"
low = 1.0
high = 2.0
[[outcomes]]
name = "short"
metric = "shortage_tt"
"""
    (tmp_path / "s.toml").write_text(text)
    with pytest.raises(UserError, match="outcomes\\[0\\].metric.*did you mean 'shortage_t'"):
        load_spec(tmp_path / "s.toml")
