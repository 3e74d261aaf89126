"""Experiment files: named scenarios over one world, run side by side (docs/policies.md).

An experiment file is TOML::

    name = "export_controls_2025"        # optional (default: file stem)
    description = "..."
    world = "../models/baseline_2024.toml"   # relative to the experiment file
    seed = 0                              # optional: seed of replicate 0
    seeds = 8                             # optional: replicates per scenario (default 8)
    reference = "baseline"                # optional: scenario effects are measured against
    start = "2024-01"                     # optional, else the world's calendar
    end = "2030-12"
    [defaults]                            # optional: applied to every scenario first
    set = ["behaviour.price_discovery_months=3"]
    policies = { ... }
    [report]                              # optional: what report.md focuses on
    event_month = "2025-05"               # month for y/y export and shortage figures
    focus_region = "usa"
    years = [2025, 2028, 2030, 2035]
    [[scenarios]]
    name = "baseline"
    description = "..."
    set = ["key.path=value", ...]         # overrides, as ndsim run --set
    [scenarios.policies.export_controls]  # merged into the world's [policies]
    ...
    calibration = "../models/calibrated/x"  # optional: fitted values (ndsim calibrate's
                                          # point.toml) over policies, before `set`

Every scenario is a :class:`sim.scenario.Scenario`. ``ndsim run EXPERIMENT.toml`` runs each
scenario on ``seeds`` seeds with common random numbers (see ``sim.experiments.ensemble``).
"""

from __future__ import annotations

import copy
import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sim.calendar import parse_month
from sim.errors import UserError
from sim.scenario import Scenario
from sim.world import (
    apply_calibration,
    apply_override,
    parse_override,
    read_toml,
    set_calibrated,
    validate_world,
)

TOP_KEYS = (
    "name",
    "description",
    "world",
    "seed",
    "seeds",
    "reference",
    "start",
    "end",
    "defaults",
    "report",
    "scenarios",
)
SCENARIO_KEYS = ("name", "description", "set", "policies", "calibration")
DEFAULT_KEYS = ("set", "policies", "calibration")
REPORT_KEYS = ("event_month", "focus_region", "years", "notes", "halt_months", "shock_months")
RESERVED_NAMES = {"figures", "assemble"}  # folders of the experiment's output
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]*$")


DEFAULT_SEEDS = 8


@dataclass
class Experiment:
    """A parsed, validated experiment file.

    Attributes:
        seeds: Replicates per scenario; replicate ``r`` of every scenario runs with seed
            ``seed + r`` (common random numbers across scenarios).
        reference: The scenario effects are measured against (default: the first).
        defaults: The ``[defaults]`` table, applied to every scenario (for the report).
    """

    path: Path
    name: str
    description: str
    world_path: Path
    scenarios: list[Scenario]
    start: str | None = None
    end: str | None = None
    report: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    seeds: int = DEFAULT_SEEDS
    reference: str = ""
    defaults: dict[str, Any] = field(default_factory=dict)

    def scenario(self, name: str) -> Scenario:
        """The scenario called ``name``.

        Raises:
            UserError: If there is none (with the nearest name).
        """
        names = [sc.name for sc in self.scenarios]
        for sc in self.scenarios:
            if sc.name == name:
                return sc
        near = difflib.get_close_matches(name, names, n=1)
        hint = f"; did you mean {near[0]!r}?" if near else ""
        raise UserError(
            f"no scenario {name!r}{hint} (scenarios: {', '.join(names)})", file=str(self.path)
        )


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``extra`` into a copy of ``base`` (tables merge; other values replace)."""
    out = copy.deepcopy(base)
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _unknown(keys: Any, valid: tuple[str, ...], where: str) -> list[str]:
    out = []
    for k in keys:
        if k not in valid:
            near = difflib.get_close_matches(str(k), valid, n=1)
            hint = f"; did you mean {near[0]!r}?" if near else f"; valid keys: {', '.join(valid)}"
            out.append(f"{where}{'.' if where else ''}{k}: unknown key{hint}")
    return out


def _check_month(value: Any, where: str, problems: list[str]) -> None:
    try:
        parse_month(str(value))
    except ValueError as exc:
        problems.append(f"{where}: {exc}")


def _apply(
    raw: dict[str, Any], table: dict[str, Any], where: str, problems: list[str], base_dir: Path
) -> dict[str, Any]:
    """Apply a scenario's (or ``[defaults]``') ``policies``, ``calibration`` and ``set``.

    In that order: a calibration's fitted values (``ndsim calibrate``'s ``point.toml``, or its
    folder, relative to the experiment file) replace the policies' hand-set ones, and ``set``
    can still change any of them (a sensitivity scenario). Problems are collected.
    """
    policies, sets, ref = table.get("policies"), table.get("set"), table.get("calibration")
    if policies is not None:
        if not isinstance(policies, dict):
            problems.append(f"{where}.policies: expected a table of instruments")
        else:
            raw["policies"] = merge(raw.get("policies", {}) or {}, policies)
    if ref is not None:
        if not isinstance(ref, str) or not ref:
            problems.append(f"{where}.calibration: expected the path of a calibration's output")
        else:
            try:
                set_calibrated(raw, ref, base_dir, file=where, label=f"{where}.calibration")
            except UserError as exc:
                problems.append(
                    f"{where}.calibration: "
                    + (exc.problems[0].removeprefix("calibration: ") if exc.problems else str(exc))
                )
    if sets is None:
        return raw
    if not isinstance(sets, list) or not all(isinstance(s, str) for s in sets):
        problems.append(f'{where}.set: expected a list of "key.path=value" strings')
        return raw
    for j, text in enumerate(sets):
        try:
            keys, value = parse_override(text)
            apply_override(raw, keys, value, label=f"{where}.set[{j}]")
        except UserError as exc:
            msg = str(exc.args[0]).replace("--set ", "")
            if not msg.startswith(f"{where}.set[{j}]"):
                msg = f"{where}.set[{j}]: {msg}"
            problems.append(msg)
    return raw


def load_experiment(
    path: str | Path,
    raw: dict[str, Any] | None = None,
    overrides: list[str] | None = None,
    *,
    check_build: bool = True,
) -> Experiment:
    """Parse and validate an experiment file.

    Every scenario's world is validated and (with ``check_build``) its instruments are built,
    so errors surface before anything runs.

    Raises:
        UserError: With one ``key.path: message`` line per problem.
    """
    p = Path(path)
    data = raw if raw is not None else read_toml(p)
    problems: list[str] = _unknown(data, TOP_KEYS, "")
    world_ref = data.get("world")
    world_raw: dict[str, Any] | None = None
    world_path = Path()
    if not isinstance(world_ref, str) or not world_ref:
        problems.append("world: required: path of the world file, relative to this file")
    else:
        world_path = (
            (p.parent / world_ref) if not Path(world_ref).is_absolute() else Path(world_ref)
        )
        if not world_path.exists():
            problems.append(f"world: file not found: {world_path}")
        else:
            try:
                world_raw = read_toml(world_path)
                apply_calibration(world_raw, world_path.parent, file=str(world_path))
            except UserError as exc:
                problems.append(f"world: {exc}")
    for key in ("start", "end"):
        if key in data:
            _check_month(data[key], key, problems)
    seed = data.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        problems.append(f"seed: expected a non-negative integer (got {seed!r})")
        seed = 0
    n_seeds = data.get("seeds", DEFAULT_SEEDS)
    if not isinstance(n_seeds, int) or isinstance(n_seeds, bool) or n_seeds < 1:
        problems.append(f"seeds: expected a positive integer (got {n_seeds!r})")
        n_seeds = DEFAULT_SEEDS
    defaults = data.get("defaults", {})
    if not isinstance(defaults, dict):
        problems.append("defaults: expected a table")
        defaults = {}
    problems += _unknown(defaults, DEFAULT_KEYS, "defaults")
    report = data.get("report", {})
    if not isinstance(report, dict):
        problems.append("report: expected a table")
        report = {}
    problems += _unknown(report, REPORT_KEYS, "report")
    if "event_month" in report:
        _check_month(report["event_month"], "report.event_month", problems)
    scen_raw = data.get("scenarios")
    if (
        not isinstance(scen_raw, list)
        or not scen_raw
        or not all(isinstance(s, dict) for s in scen_raw)
    ):
        problems.append("scenarios: expected one or more [[scenarios]] tables")
        scen_raw = []
    scenarios: list[Scenario] = []
    seen: dict[str, int] = {}
    for k, sc in enumerate(scen_raw):
        where = f"scenarios[{k}]"
        if "seed" in sc:
            problems.append(
                f"{where}.seed: scenarios share the experiment's seeds (common random "
                "numbers); set `seed` (first seed) and `seeds` at the top of the file"
            )
        problems += _unknown({k: v for k, v in sc.items() if k != "seed"}, SCENARIO_KEYS, where)
        name = sc.get("name")
        if not isinstance(name, str) or not NAME_RE.match(name):
            problems.append(f"{where}.name: required; letters, digits, '_' or '-' (got {name!r})")
            name = f"scenario_{k}"
        elif name in RESERVED_NAMES:
            problems.append(f"{where}.name: {name!r} is the name of an output folder; rename it")
        elif name in seen:
            problems.append(f"{where}.name: duplicate name {name!r} (also scenarios[{seen[name]}])")
        seen.setdefault(name, k)
        sc_seed = seed
        if world_raw is None:
            continue
        w = copy.deepcopy(world_raw)
        n0 = len(problems)
        w = _apply(w, defaults, "defaults", problems, p.parent)
        w = _apply(w, sc, where, problems, p.parent)
        for text in overrides or []:
            try:
                keys, value = parse_override(text)
                apply_override(w, keys, value, label=f"--set {text}")
            except UserError as exc:
                problems.append(str(exc))
        if len(problems) > n0:
            continue
        try:
            world = validate_world(w, file=str(world_path))
        except UserError as exc:
            problems += [f"{where} ({name}): {q}" for q in exc.problems] or [f"{where}: {exc}"]
            continue
        if check_build:
            try:
                from sim.model import SupplyChainModel

                cal = world.calendar
                SupplyChainModel(
                    world.model_copy(
                        update={"calendar": cal.model_copy(update={"spinup_months": 0})}
                    ),
                    rng=sc_seed,
                    start=data.get("start"),
                    end=data.get("end"),
                    record=False,
                )
            except UserError as exc:
                problems.append(f"{where} ({name}): {exc}")
            except ValueError as exc:
                problems.append(f"{where} ({name}): {exc}")
        scenarios.append(
            Scenario(
                name=name,
                description=str(sc.get("description", "")),
                world_raw=w,
                world_file=str(world_path),
                overrides=tuple(
                    [*(defaults.get("set") or []), *(sc.get("set") or []), *(overrides or [])]
                ),
                start=data.get("start"),
                end=data.get("end"),
                seed=sc_seed,
            )
        )
    reference = data.get("reference", scenarios[0].name if scenarios else "")
    if scenarios and reference not in [sc.name for sc in scenarios]:
        near = difflib.get_close_matches(str(reference), [sc.name for sc in scenarios], n=1)
        hint = f"; did you mean {near[0]!r}?" if near else ""
        problems.append(f"reference: no scenario {reference!r}{hint}")
    if problems:
        n = len(problems)
        raise UserError(
            f"{n} problem{'s' if n > 1 else ''} in experiment", file=str(path), problems=problems
        )
    return Experiment(
        path=p,
        name=str(data.get("name") or p.stem),
        description=str(data.get("description", "")),
        world_path=world_path,
        scenarios=scenarios,
        start=data.get("start"),
        end=data.get("end"),
        report=report,
        seed=seed,
        seeds=n_seeds,
        reference=str(reference),
        defaults=defaults,
    )


# ----------------------------------------------------------------------------- running
def run_experiment(exp: Experiment, *, seed: int | None = None) -> dict[str, Any]:
    """Run every scenario once (seed ``seed``, default each scenario's own); ``{name: Results}``."""
    return {sc.name: sc.run(seed) for sc in exp.scenarios}


def run_experiment_file(
    path: str | Path,
    *,
    out: str | Path | None = None,
    seeds: int | None = None,
    seed: int | None = None,
    start: str | None = None,
    end: str | None = None,
    overrides: list[str] | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    resume: bool = False,
    progress: bool = True,
    csv: bool = False,
    posterior: str | Path | None = None,
    exp: Experiment | None = None,
) -> int:
    """``ndsim run EXPERIMENT.toml``: a seed ensemble of every scenario, tables, figures, report.

    Args:
        path: The experiment file.
        out: Output directory (default ``runs/<experiment name>``).
        seeds: Seeds per scenario (default: the file's ``seeds``, else 8).
        seed: Seed of replicate 0 (default: the file's ``seed``, else 0).
        start: First month, overriding the file.
        end: Last month, overriding the file.
        overrides: ``key.path=value`` strings applied to every scenario.
        workers: Local worker processes (1: in this process).
        scheduler: Dask scheduler address or ``local``.
        resume: Complete an interrupted run from ``OUT.partial``.
        progress: Show a progress bar.
        csv: Also write the metrics, summary and effects tables as CSV.
        posterior: A calibration's output folder: replicate ``r`` also draws its parameter
            set ``r`` from the posterior (seeded), so bands show parameter uncertainty too.
        exp: An already-built experiment (e.g. a world file as one scenario) instead of
            loading ``path``.

    Returns:
        The exit code (0). User errors raise :class:`UserError` before anything is written.
    """
    from sim.experiments.ensemble import run_ensemble

    for key, val in (("start", start), ("end", end)):
        if val:
            try:
                parse_month(val)
            except ValueError as exc:
                raise UserError(f"--{key}: {exc}") from None
    exp = exp or load_experiment(path, overrides=overrides)
    if start or end:
        exp.scenarios = [sc.with_period(start, end) for sc in exp.scenarios]
    if seed is not None:
        exp.seed = seed
    dest = Path(out or f"runs/{exp.name}")
    draws = None
    if posterior is not None:
        from sim.calibrate.posterior import draw

        seeds = exp.seeds if seeds is None else seeds
        draws = draw(posterior, seeds, exp.seed)
    s = run_ensemble(
        exp,
        dest,
        draws=draws,
        seeds=seeds,
        workers=workers,
        scheduler=scheduler,
        resume=resume,
        progress=progress,
        csv=csv,
    )
    if draws is not None:  # which parameter set each replicate drew
        from sim.calibrate.posterior import draws_frame

        draws_frame(draws, exp.seed).to_csv(dest / "posterior_draws.csv", index=False)
    print(s.report)
    print(
        f"{exp.name}: {s.n_runs} runs ({len(exp.scenarios)} scenarios x "
        f"{s.n_runs // len(exp.scenarios)} seeds; {s.n_skipped} resumed, {s.n_errors} failed) "
        f"in {s.wall_seconds:.1f} s on {s.backend}"
    )
    print(
        f"results written to {dest}/ (report.md, summary.parquet, effects.parquet, "
        "metrics.parquet, figures/, one folder per scenario with seed "
        f"{exp.seed}'s full results)"
    )
    return 0


# ----------------------------------------------------------------------------- metrics
# Report metrics are named by market, not by country: "domestic" is the world's
# market.domestic_region (China in the shipped worlds), "ex_domestic" everything else.
def domestic(res: Any) -> str:
    """The domestic market's region of a run (``market.domestic_region``)."""
    return str(res.manifest.get("domestic_region", "china"))


def _month_value(s: pd.Series, month: str) -> float:
    ts = pd.Timestamp(f"{month}-01")
    return float(s.get(ts, np.nan)) if len(s) else float("nan")


def domestic_exports(res: Any, product: str = "magnet", to_region: str | None = None) -> pd.Series:
    """Monthly tonnes shipped from the domestic market to other regions (or to one region)."""
    dom = domestic(res)
    fl = res.flows
    sel = (fl["source_region"] == dom) & (fl["target_region"] != dom) & (fl["product"] == product)
    if to_region:
        sel &= fl["target_region"] == to_region
    dates = res.series("price_usd_per_kg", product, dom).index
    return fl[sel].groupby("date")["tonnes"].sum().reindex(dates, fill_value=0.0)


def share_from_domestic(res: Any, region: str, product: str = "magnet") -> pd.Series:
    """Share of a region's purchases of ``product`` shipped from the domestic market."""
    fl = res.flows
    into = fl[(fl["target_region"] == region) & (fl["product"] == product)]
    tot = into.groupby("date")["tonnes"].sum()
    cn = into[into["source_region"] == domestic(res)].groupby("date")["tonnes"].sum()
    return (cn.reindex(tot.index, fill_value=0.0) / tot.where(tot > 0)).fillna(0.0)


class _Lookup:
    """Monthly series of one run by (metric, product, region), sectors summed; built once."""

    def __init__(self, res: Any):
        ts = res.timeseries
        self.g = ts.groupby(["metric", "product", "region", "date"], sort=True)["value"].sum()
        self.dates = pd.DatetimeIndex(sorted(ts["date"].unique()))

    def get(self, metric: str, product: str = "", region: str | None = None) -> pd.Series:
        """One series; ``region=None`` sums all regions; missing rows are zero."""
        try:
            sub = self.g.loc[(metric, product)]
        except KeyError:
            return pd.Series(0.0, index=self.dates)
        if region is not None:
            sub = sub.loc[region] if region in sub.index.get_level_values(0) else sub.iloc[:0]
            return sub.droplevel(0) if sub.index.nlevels > 1 else sub
        return sub.groupby(level="date").sum()

    def regions(self, metric: str, product: str = "magnet") -> list[str]:
        """Regions with rows of ``metric``."""
        try:
            return sorted(set(self.g.loc[(metric, product)].index.get_level_values(0)))
        except KeyError:
            return []

    def ex(self, metric: str, product: str, dom: str) -> pd.Series:
        """Sum over all regions but ``dom`` (and ``transit``)."""
        regs = [r for r in self.regions(metric, product) if r not in (dom, "transit")]
        if not regs:
            return pd.Series(0.0, index=self.dates)
        return sum(self.get(metric, product, r).reindex(self.dates, fill_value=0.0) for r in regs)


POLICY_TOTALS = (
    "stockpile_spent_usd",
    "stockpile_revenue_usd",
    "vault_disbursed_usd",
    "vault_lost_usd",
    "vault_committed_usd",
    "vault_loans_usd",
    "vault_budget_left_usd",
    "vault_additional_capacity_t_per_yr",
    "vault_nonadditional_capacity_t_per_yr",
    "price_floor_paid_usd",
    "subsidy_paid_usd",
)


def scenario_metrics(res: Any, report: dict[str, Any]) -> dict[str, float]:
    """Key numbers of one run of a scenario (rows of ``metrics.parquet``; see report.md)."""
    m: dict[str, float] = {}
    dom = domestic(res)
    ex_dom = f"ex_{dom}"
    look = _Lookup(res)
    dates = look.dates
    years = [
        y
        for y in report.get("years", [2025, 2028, 2030, 2035])
        if dates.size and dates[0].year <= y <= dates[-1].year
    ]
    ev = report.get("event_month")
    focus = report.get("focus_region", "usa")
    regions = [r for r in look.regions("demand_t") if r != dom]
    exp_all = domestic_exports(res)
    if ev:
        prev = f"{int(ev[:4]) - 1}{ev[4:]}"
        now, before = _month_value(exp_all, ev), _month_value(exp_all, prev)
        m["exports_t_event"] = now
        m["exports_yoy_event"] = now / before - 1 if before > 0 else np.nan
        us = domestic_exports(res, to_region=focus)
        now_us, before_us = _month_value(us, ev), _month_value(us, prev)
        m[f"exports_to_{focus}_yoy_event"] = now_us / before_us - 1 if before_us > 0 else np.nan
        pc = _month_value(look.get("price_usd_per_kg", "magnet", dom), ev)
        pw = _month_value(look.get("price_usd_per_kg", "magnet", ex_dom), ev)
        m["magnet_price_domestic_event"] = pc
        m["magnet_price_ex_domestic_event"] = pw
        m["magnet_premium_event"] = pw / pc - 1 if pc > 0 else np.nan
        t0 = pd.Timestamp(f"{ev}-01")
        t1 = t0 + pd.DateOffset(months=int(report.get("halt_months", 12)) - 1)
        for r in regions:
            dem, short = look.get("demand_t", "magnet", r), look.get("shortage_t", "magnet", r)
            d = dem[t0:t1].sum()
            m[f"shortage_share_12m_{r}"] = short[t0:t1].sum() / d if d > 0 else 0.0
            m[f"shortage_share_event_{r}"] = _month_value(short, ev) / max(
                _month_value(dem, ev), 1e-9
            )
        for k in range(1, 7):
            mk = (t0 + pd.DateOffset(months=k)).strftime("%Y-%m")
            pk = (t0 + pd.DateOffset(months=k - 12)).strftime("%Y-%m")
            b = _month_value(exp_all, pk)
            m[f"exports_yoy_event+{k}"] = _month_value(exp_all, mk) / b - 1 if b > 0 else np.nan
    if ev and report.get("shock_months"):
        m.update(shock_metrics(look, dom, ev, int(report["shock_months"])))
    short_ex = look.ex("shortage_t", "magnet", dom)
    m["shortage_ex_domestic_t"] = float(short_ex.sum())
    share = share_from_domestic(res, focus)
    for y in years:
        sl = slice(pd.Timestamp(f"{y}-01-01"), pd.Timestamp(f"{y}-12-01"))
        for prod in ("oxide", "magnet"):
            for label, reg in (("domestic", dom), ("ex_domestic", ex_dom)):
                m[f"{prod}_price_{label}_{y}"] = float(
                    look.get("price_usd_per_kg", prod, reg)[sl].mean()
                )
        for prod in ("oxide", "metal", "magnet"):
            cap = look.ex("capacity_t_per_yr", prod, dom)
            m[f"capacity_ex_domestic_{prod}_{y}"] = float(cap[sl].mean())
        m[f"{focus}_magnets_from_domestic_share_{y}"] = float(share[sl].mean())
        m[f"shortage_ex_domestic_t_{y}"] = float(short_ex[sl].sum())
        m[f"oxide_production_t_{y}"] = float(look.get("production_t", "oxide")[sl].sum())
    ts = res.timeseries
    last = ts["date"].max()
    for metric in POLICY_TOTALS:  # cumulative: the last month's total
        m[metric] = float(ts[(ts["metric"] == metric) & (ts["date"] == last)]["value"].sum())
    for metric in ("stockpile_bought_t", "stockpile_released_t"):  # flows: summed
        m[metric] = float(ts[ts["metric"] == metric]["value"].sum())
    ag = res.agents
    oxide_makers = ag["role"].isin(["separator", "recycler"])
    recycled = ag["role"] == "recycler"
    tot = ag.loc[oxide_makers, "production_t"].sum()
    m["recycled_share_of_oxide"] = float(ag.loc[recycled, "production_t"].sum() / tot) if tot else 0
    for y in years:
        sel = ag["date"].dt.year == y
        o_y = ag.loc[sel & oxide_makers, "production_t"].sum()
        r_y = ag.loc[sel & recycled, "production_t"].sum()
        m[f"recycled_share_of_oxide_{y}"] = float(r_y / o_y) if o_y > 0 else 0.0
    abroad = ag["region"] != dom
    m["ex_domestic_oxide_production_t"] = float(ag.loc[abroad & oxide_makers, "production_t"].sum())
    magnets = ag["role"] == "magnet_plant"
    m["ex_domestic_magnet_production_t"] = float(ag.loc[abroad & magnets, "production_t"].sum())
    return {k: float(v) for k, v in m.items()}


def _months(a: pd.Timestamp, b: pd.Timestamp) -> int:
    return (b.year - a.year) * 12 + b.month - a.month


def price_response(p: pd.Series, t0: pd.Timestamp, horizon: pd.Timestamp) -> dict[str, float]:
    """Peak multiple, months to peak and months from peak to halfway back, of a price path.

    The reference is the price in the month before ``t0``; the peak is the highest price
    from ``t0`` to ``horizon``; halfway back is the first month after the peak at or below
    ``reference + (peak - reference) / 2`` (``nan`` if it never gets there in the run).
    """
    ref = float(p.get(t0 - pd.DateOffset(months=1), np.nan))
    win = p[t0:horizon]
    if not np.isfinite(ref) or ref <= 0 or win.empty:
        return {"peak_multiple": np.nan, "months_to_peak": np.nan, "months_to_halfway": np.nan}
    t_peak = win.idxmax()
    peak = float(win.max())
    after = p[t_peak:]
    back = after[after <= ref + (peak - ref) / 2]
    return {
        "peak_multiple": peak / ref,
        "months_to_peak": float(_months(t0, t_peak)),
        "months_to_halfway": float(_months(t_peak, back.index[0]))
        if len(back) and peak > ref
        else np.nan,
    }


def shock_metrics(look: _Lookup, dom: str, ev: str, shock_months: int) -> dict[str, float]:
    """What markets did with a supply shock from ``ev`` lasting ``shock_months``.

    Price responses per product and market (see :func:`price_response`; peak searched until
    12 months after the shock), shortages by region during the shock, buyers' precautionary
    stock build-up and release outside the domestic market, substitution, capacity restarted
    outside it, and the border rent earned during the shock.
    """
    m: dict[str, float] = {}
    t0 = pd.Timestamp(f"{ev}-01")
    t_end = t0 + pd.DateOffset(months=shock_months - 1)
    horizon = t_end + pd.DateOffset(months=12)
    before = t0 - pd.DateOffset(months=1)
    for prod in ("oxide", "magnet"):
        for label, reg in (("domestic", dom), ("ex_domestic", f"ex_{dom}")):
            r = price_response(look.get("price_usd_per_kg", prod, reg), t0, horizon)
            for k, v in r.items():
                m[f"{k}_{prod}_{label}"] = v
    for reg in look.regions("shortage_t"):
        m[f"shortage_t_shock_{reg}"] = float(look.get("shortage_t", "magnet", reg)[t0:t_end].sum())
    for prod in ("oxide", "metal", "magnet"):
        stock = look.ex("buyer_stock_t", prod, dom)
        pre = float(stock.get(before, np.nan))
        m[f"precautionary_peak_t_{prod}_ex_domestic"] = float(
            look.ex("precautionary_target_t", prod, dom)[t0:horizon].max()
        )
        high = stock[t0 - pd.DateOffset(months=6) : horizon]
        m[f"buyer_stock_build_t_{prod}_ex_domestic"] = float(high.max() - pre)
        m[f"buyer_stock_low_t_{prod}_ex_domestic"] = float(stock[t0:horizon].min() - pre)
        run = look.ex("running_capacity_t_per_yr", prod, dom)
        m[f"restarted_capacity_t_per_yr_{prod}_ex_domestic"] = float(
            run[t0:horizon].max() - run.get(before, np.nan)
        )
    sub = look.ex("substituted_t", "magnet", dom)
    m["substituted_t_ex_domestic"] = float(sub[t0:horizon].sum())
    rent = sum(
        look.get("border_rent_usd", p)[t0:horizon].sum() for p in ("oxide", "metal", "magnet")
    )
    m["border_rent_usd_shock"] = float(rent)
    return m


def figure_series(res: Any, report: dict[str, Any]) -> pd.DataFrame:
    """The monthly series the experiment figures draw, long format: series, date, value.

    Series are named ``metric|product|label`` with markets, not countries, as labels:
    prices in the ``domestic`` market and ``ex_domestic``; the domestic market's magnet
    exports (``all`` and to the focus region); magnet shortage per region outside it;
    capacity ``ex_domestic`` per stage; the focus region's share of magnets from it.
    """
    focus = report.get("focus_region", "usa")
    dom = domestic(res)
    look = _Lookup(res)
    parts: dict[str, pd.Series] = {}
    for prod in ("oxide", "magnet"):
        for label, reg in (("domestic", dom), ("ex_domestic", f"ex_{dom}")):
            parts[f"price_usd_per_kg|{prod}|{label}"] = look.get("price_usd_per_kg", prod, reg)
    parts["exports_t|magnet|all"] = domestic_exports(res)
    parts[f"exports_t|magnet|{focus}"] = domestic_exports(res, to_region=focus)
    for reg in look.regions("shortage_t"):
        if reg != dom:
            parts[f"shortage_t|magnet|{reg}"] = look.get("shortage_t", "magnet", reg)
    for prod in ("oxide", "metal", "magnet"):
        parts[f"capacity_t_per_yr|{prod}|ex_domestic"] = look.ex("capacity_t_per_yr", prod, dom)
    parts[f"share_from_domestic|magnet|{focus}"] = share_from_domestic(res, focus)
    frames = [
        pd.DataFrame({"series": name, "date": s.index, "value": s.to_numpy(float)})
        for name, s in parts.items()
    ]
    return pd.concat(frames, ignore_index=True)
