"""The 2020 history world (models/history_2020.toml) and the calibration target data (data/).

Checks that the world loads and runs to December 2025, that its inputs equal the cited data
tables in data/inputs/ (China's quotas, USGS mine output, demand growth) and that every target
series in data/targets/ keeps the column schema, its uncertainty band and cited sources. The
fit of the model to the targets is not tested here (that is the calibration's job).
"""

from __future__ import annotations

import csv
import re
import tomllib
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from sim.calendar import parse_month
from sim.errors import UserError
from sim.targets import (
    TARGET_COLUMNS,
    load_target,
    source_ids,
    split_sources,
    target_files,
    yoy_label,
)
from sim.world import load_world
from tests.conftest import ROOT, cached_run

HISTORY = ROOT / "models" / "history_2020.toml"
INPUTS = ROOT / "data" / "inputs"
YEARS = range(2020, 2025)
# USGS countries -> the model's mine regions ('other' pools the small producers)
REGION_OF = {
    "china": "china",
    "usa": "usa",
    "australia": "australia",
    "myanmar": "myanmar",
    "thailand": "thailand",
    "india": "india",
    "nigeria": "africa",
    "madagascar": "other",
    "russia": "other",
    "vietnam": "other",
}
EXPECTED_TARGETS = {
    "china_ndpr_oxide_price_usd_per_kg.csv",
    "ex_china_ndpr_oxide_price_usd_per_kg.csv",
    "mine_share_china.csv",
    "mine_share_us.csv",
    "mine_share_australia.csv",
    "oxide_share_china.csv",
    "china_magnet_exports_t.csv",
    "china_magnet_exports_us_t.csv",
    "world_magnet_output_t.csv",
    "world_magnet_consumption_t.csv",
}
_ID = re.compile(r"[A-Z][A-Z0-9]*(?:-[A-Za-z0-9]+)+")


def _rows(name: str) -> list[dict[str, str]]:
    with (INPUTS / name).open(newline="") as fh:
        return list(csv.DictReader(fh))


def _world():
    return load_world(HISTORY)[0]


def _capacity_in_january(world, table: str, year: int) -> dict[str, float]:
    """Each firm's capacity (t/yr) in January of ``year``: start value, online date, projects."""
    month = parse_month(f"{year}-01")
    cap = {}
    for f in getattr(world, table):
        on = f.online is None or parse_month(f.online) <= month
        cap[f.id] = f.capacity_t_per_yr if on else 0.0
    for p in world.projects:
        if p.firm in cap and parse_month(p.online) <= month:
            cap[p.firm] += p.capacity_t_per_yr
    return cap


def _history_run():
    return cached_run(str(HISTORY), 0)


# ------------------------------------------------------------------------------ the world
def test_history_world_loads_and_runs_to_december_2025():
    world = _world()
    assert world.calendar.start == "2020-01"
    assert parse_month(world.calendar.end) >= parse_month("2025-12")
    assert world.calendar.spinup_months <= 36
    res = _history_run()
    ts = res.timeseries
    assert ts["date"].min().strftime("%Y-%m") == "2020-01"
    assert ts["date"].max().strftime("%Y-%m") == world.calendar.end
    prices = ts[ts["metric"] == "price_usd_per_kg"]["value"]
    assert np.isfinite(prices).all() and (prices > 0).all()
    mined_2020 = ts[
        (ts["metric"] == "production_t")
        & (ts["product"] == "concentrate")
        & (ts["date"].dt.year == 2020)
    ]["value"].sum()
    assert mined_2020 > 0


def test_china_mines_hold_the_mining_quota_each_year():
    """China's mines are not expandable: their capacity in the run is the quota, year by year."""
    quotas = {int(r["year"]): float(r["mining_t_reo"]) for r in _rows("china_quotas_t_reo.csv")}
    assert set(quotas) == set(YEARS)
    agents = _history_run().agents
    mines = agents[(agents["role"] == "mine") & (agents["region"] == "china")]
    for year, quota in quotas.items():
        jan = mines[mines["date"].dt.strftime("%Y-%m") == f"{year}-01"]
        assert jan["capacity_t_per_yr"].sum() == pytest.approx(quota, abs=1.0), year


def test_china_domestic_separators_follow_the_separation_quota():
    world = _world()
    quotas = {int(r["year"]): float(r["separation_t_reo"]) for r in _rows("china_quotas_t_reo.csv")}
    last = _capacity_in_january(world, "separators", max(YEARS))
    for year in YEARS:
        cap = _capacity_in_january(world, "separators", year)
        for firm in ("cn_northern_sep", "cn_southern_sep"):
            want = last[firm] * quotas[year] / quotas[max(YEARS)]
            assert cap[firm] == pytest.approx(want, abs=5.0), (firm, year)
        # separation of imported feed is outside the quota: what it made in 2021 (19 % of
        # China's 70 kt, SMM-CN-SUPPLY-2021), 20-21 kt by 2024 (NDPR-WORLD-2024)
        want_imports = 13_300.0 if year < 2023 else 20_500.0
        assert cap["cn_shenghe_imports"] == pytest.approx(want_imports), year


def test_mine_capacity_covers_usgs_output_by_country_and_year():
    world = _world()
    region_of_firm = {m.id: m.region for m in world.mines}
    output: dict[int, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    world_total = {}
    for r in _rows("usgs_mine_production_t_reo.csv"):
        y, c, t = int(r["year"]), r["country"], float(r["t_reo"])
        if c == "world":
            world_total[y] = t
        else:
            output[y][REGION_OF[c]] += t
    assert set(world_total) == set(YEARS)
    for year in YEARS:
        cap: dict[str, float] = defaultdict(float)
        for firm, c in _capacity_in_january(world, "mines", year).items():
            cap[region_of_firm[firm]] += c
        for region, t in output[year].items():
            assert cap[region] >= t - 1.0, (year, region, cap[region], t)
        assert cap["china"] == pytest.approx(output[year]["china"], abs=1.0)  # = the quota
        assert sum(cap.values()) >= world_total[year]


def test_sector_growth_is_the_cited_driver_growth():
    world = _world()
    want: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for r in _rows("demand_growth.csv"):
        want[r["sector"]].append((int(r["year"]), float(r["growth_per_yr"])))
    for sector, steps in want.items():
        got = dict(world.sectors[sector].growth)
        for year, rate in steps:
            # the last step holds from its year on
            held = max((y for y in got if y <= year), default=None)
            assert held is not None and got[held] == pytest.approx(rate), (sector, year)


def test_demand_in_2020_matches_the_cited_consumption():
    """Start demand x 2020's growth ~ NdFeB consumed in 2020 (LYNAS-DEM-2020, its band)."""
    world = _world()
    rate = {s: dict(world.sectors[s].growth).get(2020, 0.0) for s in world.sectors}
    months = np.arange(12)
    total = 0.0
    for oem in world.oems:
        monthly = (1.0 + rate[oem.sector]) ** (months / 12.0)
        total += oem.demand_t_per_yr / 12.0 * monthly.sum()
    path = ROOT / "data" / "targets" / "world_magnet_consumption_t.csv"
    row = load_target(path).set_index("period")
    assert row.loc["2020", "low"] <= total <= row.loc["2020", "high"]


def test_world_and_input_tables_cite_defined_sources():
    known = source_ids()
    raw = tomllib.loads(HISTORY.read_text())
    cited = set()
    for table in ("mines", "separators", "metal_makers", "magnet_plants", "recyclers", "projects"):
        for item in raw.get(table, []):
            cited |= set(_ID.findall(item.get("source", "")))
    for sec in raw["sectors"].values():
        cited |= set(_ID.findall(sec.get("source", "")))
    for gov in raw["governments"]:
        for t in gov.get("tariffs", []):
            cited |= set(_ID.findall(t["source"]))
    for name in ("usgs_mine_production_t_reo.csv", "china_quotas_t_reo.csv", "demand_growth.csv"):
        cited |= {r["source"] for r in _rows(name)}
    assert cited and not cited - known, sorted(cited - known)


# ------------------------------------------------------------------------------ targets
def test_target_files_parse_with_band_and_cited_sources():
    files = target_files()
    assert {f.name for f in files} >= EXPECTED_TARGETS
    known = source_ids()
    for f in files:
        df = load_target(f)
        assert list(df.columns) == list(TARGET_COLUMNS), f.name
        assert (df["low"] <= df["value"]).all() and (df["value"] <= df["high"]).all(), f.name
        for text in df["source"]:
            ids = split_sources(text)
            assert ids and not set(ids) - known, (f.name, text)


def test_mine_shares_are_the_usgs_table_ratios():
    table: dict[tuple[int, str], float] = {
        (int(r["year"]), r["country"]): float(r["t_reo"])
        for r in _rows("usgs_mine_production_t_reo.csv")
    }
    for name, country in (("china", "china"), ("us", "usa"), ("australia", "australia")):
        df = load_target(ROOT / "data" / "targets" / f"mine_share_{name}.csv")
        assert [int(p) for p in df["period"]] == list(YEARS)
        for period, value in zip(df["period"], df["value"], strict=True):
            y = int(period)
            assert value == pytest.approx(table[(y, country)] / table[(y, "world")], abs=5e-5)


def test_magnet_export_months_add_up_to_the_reported_totals():
    """The monthly rows agree with the year-to-date totals the releases state."""
    df = load_target(ROOT / "data" / "targets" / "china_magnet_exports_t.csv").set_index("period")
    month = df["value"]
    # Jan-Jul 2024 32,812 t (METALNOMIST-CNEXP-2024) + August-December = 2024 (ADAMAS-CNEXP-2024)
    aug_dec = month[[f"2024-{m:02d}" for m in range(8, 13)]].sum()
    assert 32812 + aug_dec == pytest.approx(month["2024"], rel=0.01)
    # H1 2025 22,319 t (CNEXP-2025-JUN); Jan-Sep 2025 39,817 t (CNEXP-2025-SEP)
    assert month[[f"2025-{m:02d}" for m in range(1, 7)]].sum() == pytest.approx(22319, rel=0.01)
    assert month[[f"2025-{m:02d}" for m in range(1, 10)]].sum() == pytest.approx(39817, rel=0.01)


@pytest.mark.parametrize(
    ("name", "month", "reported_pct", "precision"),
    [
        # the y/y changes the customs releases state, with the precision they are stated to
        ("china_magnet_exports_t", "2025-05", -74.0, 0.5),  # CNEXP-2025-MAY
        ("china_magnet_exports_us_t", "2025-05", -93.0, 0.5),  # CNEXP-2025-MAY
        ("china_magnet_exports_t", "2025-06", -38.1, 0.05),  # CNEXP-2025-JUN
        ("china_magnet_exports_t", "2025-07", 5.7, 0.05),  # CNEXP-2025-JUL
        ("china_magnet_exports_t", "2025-08", 15.4, 0.05),  # CNEXP-2025-AUG
        ("china_magnet_exports_t", "2025-09", 17.5, 0.05),  # CNEXP-2025-SEP
        ("china_magnet_exports_t", "2025-10", 15.8, 0.05),  # CNEXP-2025-OCT
        ("china_magnet_exports_us_t", "2025-07", 4.8, 0.05),  # CNEXP-2025-JUL
        ("china_magnet_exports_us_t", "2025-08", -11.8, 0.05),  # CNEXP-2025-AUG
        ("china_magnet_exports_us_t", "2025-09", -29.5, 0.05),  # CNEXP-2025-SEP-US
    ],
)
def test_export_targets_give_the_reported_changes(
    name: str, month: str, reported_pct: float, precision: float
):
    """Stated and derived months reproduce each release's change, to its stated precision."""
    df = load_target(ROOT / "data" / "targets" / f"{name}.csv").set_index("period")
    before = f"{int(month[:4]) - 1}{month[4:]}"
    change = 100 * (df.loc[month, "value"] / df.loc[before, "value"] - 1)
    # + 0.1 point for tonnages stated to the tonne
    assert change == pytest.approx(reported_pct, abs=precision + 0.1)


def test_docs_quote_the_export_targets():
    """docs/policies.md's data column (sim/docgen.py) is read from data/targets."""
    assert yoy_label("china_magnet_exports_t", "2025-05") == "-74 % (CNEXP-2025-MAY)"
    assert yoy_label("china_magnet_exports_us_t", "2025-05") == "-93 % (CNEXP-2025-MAY)"
    assert yoy_label("china_magnet_exports_t", "2025-06") == "-38 % (CNEXP-2025-JUN)"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("period,value,low,high,unit\n2021,1,0,2,t\n", "header"),
        ("period,value,low,high,unit,source\n2021,5,6,7,t,X-1\n", "low <= value <= high"),
        ("period,value,low,high,unit,source\n2021-13,5,4,7,t,X-1\n", "line 2: period"),
        ("period,value,low,high,unit,source\n2021,5,4,7,t,X-1\n2021,5,4,7,t,X-1\n", "more than"),
        ("period,value,low,high,unit,source\n2021,5,4,7,t,X-1\n2022,5,4,7,kt,X-1\n", "one unit"),
        ("period,value,low,high,unit,source\n2021,nan,4,7,t,X-1\n", "finite"),
    ],
)
def test_bad_target_file_is_rejected_with_the_line(tmp_path: Path, text: str, problem: str):
    f = tmp_path / "bad.csv"
    f.write_text(text)
    with pytest.raises(UserError) as err:
        load_target(f)
    assert problem in str(err.value)
    assert str(f) in str(err.value)
