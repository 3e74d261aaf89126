"""ndsim analyze: SALib indices, PRIM, outcomes arithmetic, figures and report."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sim.errors import UserError
from sim.experiments.analyze import analyze, parse_prim
from sim.experiments.outcomes import compute_outcome
from sim.experiments.prim import prim
from sim.experiments.runner import sweep
from sim.experiments.spec import OutcomeSpec

ROOT = Path(__file__).resolve().parents[1]
CLASSROOM = ROOT / "models" / "classroom.toml"

SPEC = f"""
name = "t_analyze"
seed = 1

[base]
world = "{CLASSROOM}"
end = "2025-06"

[design]
method = "{{method}}"
n = {{n}}
seed = 2

[[parameters]]
name = "demand"
path = "behaviour.demand_growth_multiplier"
low = 0.5
high = 1.5

[[parameters]]
name = "sep"
path = "separators.usa_separator.capacity_t_per_yr"
low = 1000
high = 12000

[[outcomes]]
name = "oxide_price"
metric = "price_usd_per_kg"
product = "oxide"
region = "ex_china"
reduce = "mean"

[[outcomes]]
name = "us_oxide_output"
metric = "production_t"
product = "oxide"
region = "usa"
reduce = "sum"

[[keep]]
metric = "price_usd_per_kg"
product = "oxide"
region = "ex_china"

[analysis]
prim_outcome = "us_oxide_output"
prim_threshold = 3000
"""


@pytest.mark.parametrize(
    ("method", "n", "cols"),
    [
        ("sobol", 8, ["S1", "S1_conf", "ST", "ST_conf", "ST_half"]),
        ("morris", 6, ["mu", "mu_star", "mu_star_conf", "sigma", "mu_star_half"]),
    ],
)
def test_analyze_writes_indices_prim_figures_report(tmp_path, method, n, cols):
    spec = tmp_path / "s.toml"
    spec.write_text(SPEC.replace("{method}", method).replace("{n}", str(n)))
    sweep(spec, out=tmp_path / "o", workers=1, progress=False)
    report = analyze(tmp_path / "o")
    text = report.read_text()
    idx = pd.read_csv(tmp_path / "o" / "analysis" / "indices.csv")
    assert list(idx.columns) == ["outcome", "scale", "parameter", *cols]
    assert set(idx["parameter"]) == {"demand", "sep"}
    us = idx[idx["outcome"] == "us_oxide_output"].set_index("parameter")
    # US oxide output is driven by the US separator's capacity far more than by demand
    key = "ST" if method == "sobol" else "mu_star"
    assert us.loc["sep", key] > us.loc["demand", key]
    assert "Scenario discovery (PRIM): us_oxide_output > 3000" in text
    prim_part = text.split("Scenario discovery")[1].split("## Figures")[0]
    assert "| sep |" in prim_part  # the box restricts the separator capacity
    figs = {p.name for p in (tmp_path / "o" / "analysis" / "figures").glob("*.png")}
    assert "distributions.png" in figs and "fan_price_usd_per_kg_oxide_ex_china.png" in figs
    assert "indices_us_oxide_output.png" in figs
    for f in figs:
        assert f"figures/{f}" in text


def test_prim_recovers_a_known_box():
    rng = np.random.default_rng(0)
    x = pd.DataFrame(rng.uniform(size=(2000, 4)), columns=list("abcd"))
    y = (x["a"] > 0.6) & (x["c"] < 0.3)
    res = prim(x, y.to_numpy(), min_coverage=0.8)
    box = res.restricted()
    assert set(box) == {"a", "c"}
    assert box["a"][0] == pytest.approx(0.6, abs=0.05)
    assert box["c"][1] == pytest.approx(0.3, abs=0.05)
    assert res.box.density > 0.9 and res.box.coverage >= 0.8
    assert res.trajectory[0].mass == 1.0
    assert res.trajectory[0].density == pytest.approx(y.mean())


def test_outcome_reductions():
    dates = pd.date_range("2024-01-01", periods=24, freq="MS")
    rows = []
    for region, base in (("china", 9.0), ("usa", 1.0)):
        for k, d in enumerate(dates):
            rows.append((d, "production_t", "magnet", region, "", base + k))
    ts = pd.DataFrame(rows, columns=["date", "metric", "product", "region", "sector", "value"])

    def o(**kw):
        return compute_outcome(
            ts, OutcomeSpec(name="x", metric="production_t", product="magnet", **kw)
        )

    assert o(region="usa", reduce="sum") == sum(1.0 + k for k in range(24))
    assert o(reduce="last") == (9 + 23) + (1 + 23)
    assert o(combine="mean", reduce="first") == 5.0
    assert o(region="usa", start="2025-01", end="2025-12", reduce="mean") == 1 + 17.5
    share = o(region="china", start="2025-12", end="2025-12", reduce="share")
    assert share == pytest.approx(32 / (32 + 24))


def test_parse_prim_and_bad_directory(tmp_path):
    assert parse_prim("price>90") == ("price", 90.0, True)
    assert parse_prim("share < 0.5") == ("share", 0.5, False)
    with pytest.raises(UserError, match="OUTCOME>THRESHOLD"):
        parse_prim("price=90")
    with pytest.raises(UserError, match="not a sweep directory"):
        analyze(tmp_path)


def test_cli_sweep_then_analyze(tmp_path, capsys):
    from sim.cli import main

    spec = tmp_path / "s.toml"
    spec.write_text(SPEC.replace("{method}", "morris").replace("{n}", "2"))
    out = tmp_path / "o"
    assert main(["sweep", str(spec), "--out", str(out), "--workers", "1", "--no-progress"]) == 0
    assert "6 runs done now, 0 before, 6 in the design; 0 errors" in capsys.readouterr().out
    assert main(["analyze", str(out), "--no-figures", "--prim", "oxide_price<1e9"]) == 0
    report = (out / "analysis" / "report.md").read_text()
    assert "Morris screening" in report and "6 of 6 runs are cases of interest" in report
    assert main(["analyze", str(out), "--prim", "nope>1"]) == 2
    assert "no outcome 'nope'" in capsys.readouterr().err
