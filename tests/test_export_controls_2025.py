"""The 2025 export-control episode on the calibrated baseline (issue "Policies" targets).

Seeds (CNEXP-2025-MAY): China's magnet exports -74 % y/y and -93 % to the US in May 2025, the
first full month; June -38 % (CNEXP-2025-JUN). The model must show -60..-85 % overall and
<= -85 % to the US, an ex-China premium and OEM shortages in the US, EU and Japan as licences
are processed. Licence draws make single runs noisy, so the checks use the mean over the
experiment's own seeds (its file's `seeds`, the ensemble `ndsim run` reports).

The licence terms are fitted to May-August 2025 exports y/y (total and to the US; June to the
US is not published) by experiments/calibrate_controls_2025.toml, and the experiment uses them
by reference; September-November 2025 and every price and shortage check are not fitted.
"""

from __future__ import annotations

import copy
import dataclasses
import functools

import numpy as np
import pandas as pd
import pytest

from sim.calendar import parse_month
from sim.network import P
from sim.scenarios import domestic_exports, load_experiment, run_experiment
from tests.conftest import ROOT


def _experiment():
    return load_experiment(ROOT / "experiments" / "export_controls_2025.toml")


SEEDS = range(_experiment().seeds)


@functools.cache
def _runs(seed: int):
    return run_experiment(_experiment(), seed=seed)


def _unannounced(scenario):
    """The scenario with every tariff unannounced: buyers foresee no tariff change."""
    raw = copy.deepcopy(scenario.world_raw)
    for gov in raw["governments"]:
        for rule in gov.get("tariffs", []):
            rule.pop("announced", None)
    return dataclasses.replace(scenario, world_raw=raw)


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


def test_first_full_month_to_the_usa():
    runs = [_runs(s)["controls"] for s in SEEDS]
    bases = [_runs(s)["baseline"] for s in SEEDS]
    assert np.mean([_yoy(r, "05", "usa") for r in runs]) <= -0.85
    # and beyond what the tariff war alone does (the same seeds without controls). May alone
    # cannot tell them apart: without controls US importers postpone May's purchases to June,
    # when the Geneva cut takes effect (sim/deferral.py), so the tariff war alone cuts May
    # about as much as the data show; with controls their supply risk is up and they stop
    # postponing. Deferral moves purchases by a month, licensing takes them away: May and
    # June together must be lower.
    may_jun = lambda r: sum(_exports(r, m, "usa") for m in ("2025-05-01", "2025-06-01"))  # noqa: E731
    for res, base in zip(runs, bases, strict=True):
        assert may_jun(res) < may_jun(base)


@pytest.mark.xfail(
    strict=True,
    reason="issue 8, blocked on it: at odds with the data. No ex-China NdPr oxide market premium "
    "emerges (model ~+1 %, transport). The reported market prices show none either: ex-China "
    "~0.95 x China in July 2025 (BMI-EXCN-2025-07, NDPR-CN-2025-07) and Argus Europe 83.8 in "
    "September against China ~88 in August (ARGUS-EU-NDPR-2025-09, NDPR-2025). The 110 USD/kg "
    "(MP-DOD-FLOOR) is a contract floor paid to MP by the DoD, a price received, not a market "
    "price; a mechanism lifting the index 25 % above China would miss both data points",
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


def test_exports_after_the_fitted_months_stay_above_2024():
    """Out of sample: September-November 2025 are not fitted (the fit ends in August).

    China's customs report every one of them above the year before (+17 %, +16 % and +30 %
    y/y; CNEXP-2025-SEP, -OCT, -NOV in data/targets/china_magnet_exports_t.csv): once licences
    clear, foreign buyers rebuild the stocks the controls drew down. Without the controls
    (the same seeds, tariffs alone) no such rebound is there to see.
    """
    runs = [_runs(s)["controls"] for s in SEEDS]
    bases = [_runs(s)["baseline"] for s in SEEDS]
    for month in ("09", "10", "11"):
        assert np.mean([_yoy(r, month) for r in runs]) > 0.0, month
        lift = [_yoy(r, month) - _yoy(b, month) for r, b in zip(runs, bases, strict=True)]
        assert np.mean(lift) > 0.0, month


def test_tariff_outlook_follows_announcements():
    """Buyers expect a tariff change only once it is announced (sim/policies/tariffs.py)."""
    model = _experiment().scenario("baseline").build_model(0, record=False)
    links, regions = model.links, list(model.nodes.regions)
    us_cn = (model.nodes.region[links.dst] == regions.index("usa")) & (
        model.nodes.region[links.src] == regions.index("china")
    )
    us_cn &= links.product == P["magnet"]
    assert us_cn.any()
    expected = {
        "2025-03": 0.0,  # the 145 % of April surprised everyone
        "2025-04": 0.0,  # its end was not announced until Geneva (12 May)
        "2025-05": 0.30 - 0.80,  # Geneva: 30 % from June known in May
        "2025-10": 0.0,  # the November cut was announced on 1 Nov
        "2025-12": 0.45 - 0.20,  # the Section 301 rise, announced in September 2024
    }
    for month, change in expected.items():
        model.month_abs = parse_month(month)
        outlook = model.policies.tariff_outlook(model)
        assert outlook[us_cn] == pytest.approx(change), month
        assert not outlook[~us_cn].any(), month


def test_announced_tariff_cut_defers_us_purchases():
    """Deferral (sim/deferral.py) against its counterfactual: the same seeds with the Geneva
    cut unannounced. Importers who know the tariff falls from 80 % (May blend) to 30 % in June
    postpone what their stock covers: US May imports fall; nothing changes before the
    announcement. Measured where nothing else limits imports, the tariff war alone (scenario
    `baseline`); under the controls the licences bind first in most seeds (May imports stay
    at the licensed volume), so there no seed may import more, and that is all."""
    for name in ("baseline", "controls"):
        sc = _experiment().scenario(name)
        may_known, may_blind = [], []
        for seed in SEEDS:
            known = _runs(seed)[name]
            blind = _unannounced(sc).run(seed)
            for month in ("2025-03-01", "2025-04-01"):
                assert _exports(known, month, "usa") == pytest.approx(_exports(blind, month, "usa"))
            may_known.append(_exports(known, "2025-05-01", "usa"))
            may_blind.append(_exports(blind, "2025-05-01", "usa"))
            assert may_known[-1] <= may_blind[-1] + 1e-9
        if name == "baseline":
            assert np.mean(may_known) < 0.9 * np.mean(may_blind)
