"""The history fit the project claims (issue 9): the 2020 world run over the posterior.

``models/history_2020.toml`` is run with parameter sets drawn from the committed posterior
(``models/calibrated/calibrate_history``), each with its own seed, to the end of 2024. The
posterior-predictive median of the annual China NdPr oxide price must follow the 2021-2022
boom and the 2023-2024 fall (each year within the data's band or within 30 % of the value,
2022 the peak year), and the mine-output shares of China, the US and Australia must lie
within 5 points of USGS's. The bounds are the issue's; the data are data/targets/.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pytest

from sim.calibrate.posterior import draw
from sim.scenario import world_scenario
from sim.targets import load_target
from tests.conftest import ROOT

HISTORY = ROOT / "models" / "history_2020.toml"
FIT = ROOT / "models" / "calibrated" / "calibrate_history"
TARGETS = ROOT / "data" / "targets"
DRAWS = 16
YEARS = list(range(2020, 2025))


@functools.cache
def _runs() -> list[pd.DataFrame]:
    """Annual series of each posterior draw (seed = draw index), 2020-2024."""
    out = []
    for i, sets in enumerate(draw(FIT, DRAWS, seed=2020)):
        res = world_scenario(HISTORY, sets).with_period(end="2024-12").run(seed=i)
        ts = res.timeseries
        ts = ts.assign(year=pd.to_datetime(ts["date"]).dt.year)
        out.append(ts)
    return out


def _annual_price(ts: pd.DataFrame) -> np.ndarray:
    q = ts[(ts["metric"] == "price_usd_per_kg") & (ts["region"] == "china")]
    q = q[q["product"] == "oxide"]
    return q.groupby("year")["value"].mean().reindex(YEARS).to_numpy()


def _mine_share(ts: pd.DataFrame, region: str) -> np.ndarray:
    q = ts[(ts["metric"] == "production_t") & (ts["product"] == "concentrate")]
    total = q.groupby("year")["value"].sum()
    mine = q[q["region"] == region].groupby("year")["value"].sum()
    return (mine / total).reindex(YEARS).to_numpy()


@pytest.mark.xfail(
    strict=True,
    reason="blocked: over 16 posterior draws 2022's China oxide price is 40 % below the data. "
    "In this model a boom is a precautionary cascade that ignites in some seeds only, and "
    "fast price discovery runs away; the height needs a short-run release valve for stocks "
    "or another anchor for the chain's price level, not a calibration (docs/calibration.md, "
    "sessions 12-14)",
)
def test_history_over_the_posterior_reproduces_the_boom_and_the_fall():
    price = np.median([_annual_price(ts) for ts in _runs()], axis=0)
    data = load_target(TARGETS / "china_ndpr_oxide_price_usd_per_kg.csv").set_index("period")
    for year, got in zip(YEARS, price, strict=True):
        row = data.loc[str(year)]
        in_band = row["low"] <= got <= row["high"]
        assert in_band or abs(got / row["value"] - 1.0) <= 0.30, (year, got, row["value"])
    assert YEARS[int(np.argmax(price))] == 2022, price


@pytest.mark.parametrize("region", ["china", "usa", "australia"])
def test_history_over_the_posterior_keeps_the_mine_shares(region):
    share = np.median([_mine_share(ts, region) for ts in _runs()], axis=0)
    name = {"usa": "us"}.get(region, region)
    data = load_target(TARGETS / f"mine_share_{name}.csv").set_index("period")
    for year, got in zip(YEARS, share, strict=True):
        want = data.loc[str(year), "value"]
        assert abs(got - want) <= 0.05, (region, year, got, want)
