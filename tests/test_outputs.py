"""The results contract (docs/outputs.md): files, columns, metrics, manifest."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

from tests.conftest import CLASSROOM

ROOT = Path(__file__).resolve().parents[1]


def test_cli_run_writes_contract(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sim.cli",
            "run",
            str(CLASSROOM),
            "--out",
            str(out),
            "--seed",
            "4",
            "--end",
            "2026-12",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "magnet production" in proc.stdout
    ts = pd.read_parquet(out / "timeseries.parquet")
    assert list(ts.columns)[:5] == ["date", "metric", "product", "region", "sector"]
    assert ts["value"].dtype == "float64"
    assert ts["date"].min() == pd.Timestamp("2024-01-01")
    assert ts["date"].max() == pd.Timestamp("2026-12-01")
    metrics = set(ts["metric"])
    assert {
        "price_usd_per_kg",
        "production_t",
        "consumption_t",
        "inventory_t",
        "capacity_t_per_yr",
        "demand_t",
        "shortage_t",
    } <= metrics
    prices = ts[ts["metric"] == "price_usd_per_kg"]
    assert set(prices["region"]) == {"china", "ex_china"}
    assert "transit" in set(ts[ts["metric"] == "inventory_t"]["region"])
    assert set(ts["product"]) >= {"concentrate", "oxide", "metal", "magnet"}
    assert (ts["region"] == ts["region"].str.lower()).all()
    flows = pd.read_parquet(out / "flows.parquet")
    assert list(flows.columns) == [
        "date",
        "product",
        "source",
        "target",
        "source_region",
        "target_region",
        "tonnes",
        "value_usd",
    ]
    assert (flows["tonnes"] > 0).all()
    tr = pd.read_parquet(out / "transfers.parquet")
    assert list(tr.columns) == ["date", "payer", "payee", "kind", "usd"]
    assert (tr["usd"] > 0).all() and len(tr) > 0
    agents = pd.read_parquet(out / "agents.parquet")
    assert {"date", "agent_id", "role", "region", "capacity_t_per_yr"} <= set(agents.columns)
    man = json.loads((out / "manifest.json").read_text())
    for key in ("scenario", "scenario_sha256", "seed", "versions", "start", "end", "wall_seconds"):
        assert key in man
    assert man["seed"] == 4
    assert man["versions"]["mesa"].startswith("3.")
    figs = sorted(p.name for p in (out / "figures").glob("*.png"))
    assert figs == ["prices.png", "production_by_region.png", "shortages.png", "trade.png"]


def test_api_returns_dataframes_without_writing(tmp_path, monkeypatch):
    import sim

    monkeypatch.chdir(tmp_path)
    res = sim.run(
        CLASSROOM, seed=1, end="2024-06", overrides=["behaviour.price_discovery_months=6"]
    )
    assert isinstance(res.timeseries, pd.DataFrame) and len(res.timeseries) > 0
    assert list(tmp_path.iterdir()) == []
    assert res.manifest["overrides"] == ["behaviour.price_discovery_months=6"]


def test_free_trade_prices_equal_up_to_transport(classroom_run):
    ts = classroom_run.timeseries
    p = ts[(ts["metric"] == "price_usd_per_kg") & (ts["product"] == "magnet")]
    wide = p.pivot_table(index="date", columns="region", values="value")
    gap = (wide["ex_china"] - wide["china"]).abs()
    assert (gap < 0.15 * wide["china"]).mean() > 0.9
