"""The researcher's toolkit: ndsim info, ndsim compare, --csv, Results repr/plot/read."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import sim
from sim.cli import main
from sim.io import read_results, write_results
from sim.world import load_world

ROOT = Path(__file__).resolve().parents[1]
CLASSROOM = str(ROOT / "models" / "classroom.toml")


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("runs")
    a, b = tmp / "a", tmp / "b"
    assert main(["run", CLASSROOM, "--end", "2025-06", "--out", str(a), "--csv"]) == 0
    grow = "behaviour.demand_growth_multiplier=1.5"
    assert main(["run", CLASSROOM, "--end", "2025-06", "--out", str(b), "--set", grow]) == 0
    return a, b


def test_info_lists_every_agent(tmp_path, capsys):
    out = tmp_path / "agents.csv"
    assert main(["info", CLASSROOM, "--csv", str(out)]) == 0
    table = pd.read_csv(out)
    world, _ = load_world(CLASSROOM)
    n = sum(len(t) for t in world.firm_tables().values()) + len(world.oems)
    assert len(table) == n and table["id"].is_unique
    assert list(table.columns) == [
        "id",
        "name",
        "role",
        "region",
        "sector",
        "capacity_t_per_yr",
        "source",
    ]
    assert main(["info", CLASSROOM]) == 0
    text = capsys.readouterr().out
    assert "usa_separator" in text and "agents (" in text


def test_csv_tables_equal_the_parquet_ones(two_runs):
    a, _ = two_runs
    ts = pd.read_csv(a / "timeseries.csv", parse_dates=["date"])
    labels = ["metric", "product", "region", "sector"]
    ts[labels] = ts[labels].fillna("")  # empty labels read back as NaN
    pq = pd.read_parquet(a / "timeseries.parquet")
    pd.testing.assert_frame_equal(ts, pq, check_dtype=False)


def test_compare_shows_the_difference(two_runs, tmp_path):
    a, b = two_runs
    out = tmp_path / "cmp.csv"
    assert main(["compare", str(a), str(b), "--csv", str(out)]) == 0
    table = pd.read_csv(out)
    dem = table[table["quantity"] == "magnet demand (kt)"]
    # a higher demand growth multiplier raises demand in every year of the run
    assert (dem["B - A"] > 0).all()
    same = tmp_path / "same.csv"
    assert main(["compare", str(a), str(a), "--csv", str(same)]) == 0
    assert (pd.read_csv(same)["B - A"] == 0).all()
    assert main(["compare", str(a), str(tmp_path)]) == 2


def test_results_repr_plot_and_read(two_runs):
    a, _ = two_runs
    res = read_results(a)
    text = repr(res)
    assert "\n" not in text and len(text) < 220 and "seed 0" in text
    ax = res.plot("shortage_t", "magnet")
    assert ax.get_ylabel() == "shortage_t magnet (t/month)"
    assert ax.get_ylim()[0] == 0
    ax = res.plot("price_usd_per_kg", "magnet", "ex_china")
    assert "USD/kg" in ax.get_ylabel()
    fresh = sim.run(CLASSROOM, end="2025-06")
    pd.testing.assert_frame_equal(res.timeseries, fresh.timeseries)


def test_write_read_roundtrip(tmp_path):
    res = sim.run(CLASSROOM, end="2024-03")
    back = read_results(write_results(res, tmp_path / "r", figures=False))
    pd.testing.assert_frame_equal(back.agents, res.agents)
    assert back.manifest["seed"] == 0
