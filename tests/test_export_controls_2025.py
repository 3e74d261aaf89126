"""The 2025 export-control episode on the calibrated baseline (issue "Policies" targets).

Seeds (CNEXP-2025-MAY): China's magnet exports -74 % y/y and -93 % to the US in May 2025, the
first full month; June -38 % (CNEXP-2025-JUN). The model must show -60..-85 % overall and
<= -85 % to the US, an ex-China premium and OEM shortages in the US, EU and Japan as licences
are processed. Licence draws make single runs noisy, so the checks use a 4-seed mean.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pytest

from sim.scenarios import domestic_exports, load_experiment, run_experiment
from tests.conftest import ROOT

SEEDS = range(4)


@functools.cache
def _runs(seed: int):
    exp = load_experiment(ROOT / "experiments" / "export_controls_2025.toml")
    return run_experiment(exp, seed=seed)


def _exports(res, month, to=None):
    return float(domestic_exports(res, "magnet", to).get(pd.Timestamp(month), 0.0))


def _yoy(res, month, to=None):
    return _exports(res, f"2025-{month}-01", to) / _exports(res, f"2024-{month}-01", to) - 1


def _shortage(res, region):
    ts = res.timeseries
    sel = (ts["metric"] == "shortage_t") & (ts["region"] == region)
    sel &= (ts["date"] >= "2025-04-01") & (ts["date"] < "2026-06-01")
    return ts.loc[sel, "value"].sum()


def _premium(res, month="2025-05-01"):
    ts = res.timeseries
    p = ts[
        (ts["metric"] == "price_usd_per_kg") & (ts["product"] == "magnet") & (ts["date"] == month)
    ].set_index("region")["value"]
    return p["ex_china"] / p["china"] - 1


@pytest.mark.parametrize("scenario", ["controls", "controls_45_day_reviews"])
def test_first_full_month(scenario):
    runs = [_runs(s)[scenario] for s in SEEDS]
    bases = [_runs(s)["baseline"] for s in SEEDS]
    assert -0.85 <= np.mean([_yoy(r, "05") for r in runs]) <= -0.60
    for res, base in zip(runs, bases, strict=True):
        assert _premium(res) > 0.10
        # the counterfactual: the same seed without controls (the 2025 tariff war alone
        # already cuts US imports by ~90 % and adds a landed premium): the controls must cut
        # exports, to the US too, and widen the premium beyond what tariffs do
        assert _premium(res) > _premium(base)
        assert _yoy(res, "05") < _yoy(base, "05") - 0.5


@pytest.mark.xfail(
    strict=True,
    reason="issue 8, open: US May 2025 exports fall ~80 % y/y against <= -85 % (reported -93 %); "
    "US importers postponing purchases while the 145 %/80 % tariffs were expected to fall is not "
    "modelled, and the sector exemption shares (assumptions) let the exempt volumes through",
)
def test_first_full_month_to_the_usa():
    runs = [_runs(s)["controls"] for s in SEEDS]
    bases = [_runs(s)["baseline"] for s in SEEDS]
    assert np.mean([_yoy(r, "05", "usa") for r in runs]) <= -0.85
    # and beyond what the tariff war alone does (the same seeds without controls)
    for res, base in zip(runs, bases, strict=True):
        assert _exports(res, "2025-05-01", "usa") < _exports(base, "2025-05-01", "usa")


@pytest.mark.xfail(
    strict=True,
    reason="issue 8, open: the 2025 controls did not cover NdPr oxide and the model has no "
    "preference for China-free supply (DFARS, offtake floors), so no ex-China oxide premium "
    "emerges; reported: Chinese NdPr oxide ~55-85 USD/kg in 2025 against the US offtake floor "
    "of 110 (MP-DOD-FLOOR)",
)
def test_ex_china_oxide_price_well_above_china_during_the_controls():
    runs = [_runs(s)["controls"] for s in SEEDS]
    prem = []
    for r in runs:
        ts = r.timeseries
        sel = (ts["metric"] == "price_usd_per_kg") & (ts["product"] == "oxide")
        sel &= (ts["date"] >= "2025-05-01") & (ts["date"] <= "2025-12-01")
        p = ts[sel].groupby("region")["value"].mean()
        prem.append(p["ex_china"] / p["china"] - 1)
    assert np.mean(prem) > 0.25


def test_licences_restore_exports_and_leave_shortages_abroad():
    runs = [_runs(s)["controls"] for s in SEEDS]
    # June recovers partly (reported -38 % y/y); exports are back by August
    assert -0.60 <= np.mean([_yoy(r, "06") for r in runs]) <= -0.20
    assert np.mean([_yoy(r, "08") for r in runs]) > -0.15
    for region in ("usa", "eu", "japan"):
        assert np.mean([_shortage(r, region) for r in runs]) > 0, region
    assert max(_shortage(r, "china") for r in runs) == pytest.approx(0.0, abs=1e-6)
    # the shortages abroad are the controls' doing: against the same seeds without controls
    # (where only logistics shocks - shipping delays, outages - leave the odd month short)
    for region in ("usa", "eu", "japan"):
        caused = [
            _shortage(_runs(s)["controls"], region) - _shortage(_runs(s)["baseline"], region)
            for s in SEEDS
        ]
        assert np.mean(caused) > 0, region
