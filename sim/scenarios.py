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
    set = ["behaviour.price_adjust_rate=0.05"]
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
from sim.world import apply_override, parse_override, read_toml, validate_world

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
SCENARIO_KEYS = ("name", "description", "set", "policies", "seed")
DEFAULT_KEYS = ("set", "policies")
REPORT_KEYS = ("event_month", "focus_region", "years", "notes", "halt_months")
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
    raw: dict[str, Any], sets: Any, policies: Any, where: str, problems: list[str]
) -> dict[str, Any]:
    """Apply a ``set`` list and a ``policies`` table to a raw world, collecting problems."""
    if policies is not None:
        if not isinstance(policies, dict):
            problems.append(f"{where}.policies: expected a table of instruments")
        else:
            raw["policies"] = merge(raw.get("policies", {}) or {}, policies)
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
        problems += _unknown(sc, SCENARIO_KEYS, where)
        name = sc.get("name")
        if not isinstance(name, str) or not NAME_RE.match(name):
            problems.append(f"{where}.name: required; letters, digits, '_' or '-' (got {name!r})")
            name = f"scenario_{k}"
        elif name in seen:
            problems.append(f"{where}.name: duplicate name {name!r} (also scenarios[{seen[name]}])")
        seen.setdefault(name, k)
        sc_seed = sc.get("seed", seed)
        if not isinstance(sc_seed, int) or isinstance(sc_seed, bool):
            problems.append(f"{where}.seed: expected an integer (got {sc_seed!r})")
            sc_seed = seed
        if world_raw is None:
            continue
        w = copy.deepcopy(world_raw)
        n0 = len(problems)
        w = _apply(w, defaults.get("set"), defaults.get("policies"), "defaults", problems)
        w = _apply(w, sc.get("set"), sc.get("policies"), where, problems)
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
    exp = load_experiment(path, overrides=overrides)
    if start or end:
        exp.scenarios = [sc.with_period(start, end) for sc in exp.scenarios]
    if seed is not None:
        exp.seed = seed
    dest = Path(out or f"runs/{exp.name}")
    s = run_ensemble(
        exp,
        dest,
        seeds=seeds,
        workers=workers,
        scheduler=scheduler,
        resume=resume,
        progress=progress,
    )
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
def _month_value(s: pd.Series, month: str) -> float:
    ts = pd.Timestamp(f"{month}-01")
    return float(s.get(ts, np.nan)) if len(s) else float("nan")


def china_exports(res: Any, product: str = "magnet", to_region: str | None = None) -> pd.Series:
    """Monthly tonnes shipped from China to other regions (optionally to one region)."""
    fl = res.flows
    sel = (
        (fl["source_region"] == "china")
        & (fl["target_region"] != "china")
        & (fl["product"] == product)
    )
    if to_region:
        sel &= fl["target_region"] == to_region
    dates = res.series("price_usd_per_kg", product, "china").index
    return fl[sel].groupby("date")["tonnes"].sum().reindex(dates, fill_value=0.0)


def share_from_china(res: Any, region: str, product: str = "magnet") -> pd.Series:
    """Share of a region's purchases of ``product`` shipped from China (monthly)."""
    fl = res.flows
    into = fl[(fl["target_region"] == region) & (fl["product"] == product)]
    tot = into.groupby("date")["tonnes"].sum()
    cn = into[into["source_region"] == "china"].groupby("date")["tonnes"].sum()
    return (cn.reindex(tot.index, fill_value=0.0) / tot.where(tot > 0)).fillna(0.0)


def non_china_capacity(res: Any, product: str) -> pd.Series:
    """Installed capacity outside China, t/yr, monthly."""
    ts = res.timeseries
    sel = (
        (ts["metric"] == "capacity_t_per_yr")
        & (ts["product"] == product)
        & (ts["region"] != "china")
    )
    return ts[sel].groupby("date")["value"].sum()


def _policy_total(res: Any, metric: str) -> float:
    ts = res.timeseries
    sel = ts[ts["metric"] == metric]
    if sel.empty:
        return 0.0
    last = sel["date"].max()
    return float(sel[sel["date"] == last]["value"].sum())


def _sum_policy(res: Any, metric: str) -> float:
    ts = res.timeseries
    return float(ts[ts["metric"] == metric]["value"].sum())


def scenario_metrics(res: Any, report: dict[str, Any]) -> dict[str, Any]:
    """Key numbers of one scenario (see report.md)."""
    m: dict[str, Any] = {}
    dates = res.series("price_usd_per_kg", "magnet", "china").index
    years = [
        y
        for y in report.get("years", [2025, 2028, 2030, 2035])
        if dates.size and dates[0].year <= y <= dates[-1].year
    ]
    ev = report.get("event_month")
    focus = report.get("focus_region", "usa")
    regions = sorted(
        {r for r in res.timeseries.loc[res.timeseries["metric"] == "demand_t", "region"]}
        - {"china"}
    )
    exp_all = china_exports(res)
    if ev:
        prev = f"{int(ev[:4]) - 1}{ev[4:]}"
        now, before = _month_value(exp_all, ev), _month_value(exp_all, prev)
        m["exports_t_event"] = now
        m["exports_yoy_event"] = now / before - 1 if before > 0 else np.nan
        us = china_exports(res, to_region=focus)
        now_us, before_us = _month_value(us, ev), _month_value(us, prev)
        m[f"exports_to_{focus}_yoy_event"] = now_us / before_us - 1 if before_us > 0 else np.nan
        pc = _month_value(res.series("price_usd_per_kg", "magnet", "china"), ev)
        pw = _month_value(res.series("price_usd_per_kg", "magnet", "world"), ev)
        m["magnet_price_china_event"] = pc
        m["magnet_price_world_event"] = pw
        m["magnet_premium_event"] = pw / pc - 1 if pc > 0 else np.nan
        t0 = pd.Timestamp(f"{ev}-01")
        t1 = t0 + pd.DateOffset(months=int(report.get("halt_months", 12)) - 1)
        for r in regions:
            d = res.series("demand_t", "magnet", r)[t0:t1].sum()
            sh = res.series("shortage_t", "magnet", r)[t0:t1].sum()
            m[f"shortage_share_12m_{r}"] = sh / d if d > 0 else 0.0
            m[f"shortage_share_event_{r}"] = _month_value(
                res.series("shortage_t", "magnet", r), ev
            ) / max(_month_value(res.series("demand_t", "magnet", r), ev), 1e-9)
        for k in range(1, 7):
            mk = (t0 + pd.DateOffset(months=k)).strftime("%Y-%m")
            pk = (t0 + pd.DateOffset(months=k - 12)).strftime("%Y-%m")
            b = _month_value(exp_all, pk)
            m[f"exports_yoy_event+{k}"] = _month_value(exp_all, mk) / b - 1 if b > 0 else np.nan
    total_short = sum(res.series("shortage_t", "magnet", r).sum() for r in regions)
    m["shortage_ex_china_t"] = float(total_short)
    for y in years:
        sl = slice(pd.Timestamp(f"{y}-01-01"), pd.Timestamp(f"{y}-12-01"))
        for prod in ("oxide", "magnet"):
            for reg in ("china", "world"):
                m[f"{prod}_price_{reg}_{y}"] = float(
                    res.series("price_usd_per_kg", prod, reg)[sl].mean()
                )
        for prod in ("oxide", "metal", "magnet"):
            m[f"non_china_capacity_{prod}_{y}"] = float(non_china_capacity(res, prod)[sl].mean())
        m[f"{focus}_magnets_from_china_share_{y}"] = float(share_from_china(res, focus)[sl].mean())
        ox = res.series("production_t", "oxide")[sl].sum()
        ts = res.timeseries
        rec = ts[(ts["metric"] == "production_t") & (ts["product"] == "oxide")]
        _ = rec
        m[f"shortage_ex_china_t_{y}"] = float(
            sum(res.series("shortage_t", "magnet", r)[sl].sum() for r in regions)
        )
        m[f"oxide_production_t_{y}"] = float(ox)
    for metric in (
        "stockpile_spent_usd",
        "stockpile_revenue_usd",
        "vault_disbursed_usd",
        "vault_lost_usd",
        "vault_committed_usd",
        "price_floor_paid_usd",
        "subsidy_paid_usd",
    ):
        m[metric] = _policy_total(res, metric)
    m["stockpile_bought_t"] = _sum_policy(res, "stockpile_bought_t")
    m["stockpile_released_t"] = _sum_policy(res, "stockpile_released_t")
    ag = res.agents
    recycled = ag[ag["role"] == "recycler"]["production_t"].sum()
    oxide_total = ag[ag["role"].isin(["separator", "recycler"])]["production_t"].sum()
    m["recycled_share_of_oxide"] = float(recycled / oxide_total) if oxide_total > 0 else 0.0
    for y in years:
        sel = ag["date"].dt.year == y
        r_y = ag[sel & (ag["role"] == "recycler")]["production_t"].sum()
        o_y = ag[sel & ag["role"].isin(["separator", "recycler"])]["production_t"].sum()
        m[f"recycled_share_of_oxide_{y}"] = float(r_y / o_y) if o_y > 0 else 0.0
    nc = ag[(ag["region"] != "china") & ag["role"].isin(["separator", "recycler"])]
    m["non_china_oxide_production_t"] = float(nc["production_t"].sum())
    ncm = ag[(ag["region"] != "china") & (ag["role"] == "magnet_plant")]
    m["non_china_magnet_production_t"] = float(ncm["production_t"].sum())
    return m


def figure_series(res: Any, report: dict[str, Any]) -> pd.DataFrame:
    """The monthly series the experiment figures draw, long format: series, date, value.

    Series are named ``metric|product|label``: prices in China and ex-China, China's magnet
    exports (all and to the focus region), magnet shortage per region outside China,
    capacity outside China per stage, and the focus region's share of magnets from China.
    """
    focus = report.get("focus_region", "usa")
    parts: dict[str, pd.Series] = {}
    for prod in ("oxide", "magnet"):
        for label, reg in (("china", "china"), ("ex_china", "world")):
            parts[f"price_usd_per_kg|{prod}|{label}"] = res.series("price_usd_per_kg", prod, reg)
    parts["exports_t|magnet|all"] = china_exports(res)
    parts[f"exports_t|magnet|{focus}"] = china_exports(res, to_region=focus)
    ts = res.timeseries
    short = ts[(ts["metric"] == "shortage_t") & (ts["region"] != "china")]
    for reg, grp in short.groupby("region", sort=True):
        parts[f"shortage_t|magnet|{reg}"] = grp.groupby("date")["value"].sum()
    for prod in ("oxide", "metal", "magnet"):
        parts[f"capacity_t_per_yr|{prod}|ex_china"] = non_china_capacity(res, prod)
    parts[f"share_from_china|magnet|{focus}"] = share_from_china(res, focus)
    frames = [
        pd.DataFrame({"series": name, "date": s.index, "value": s.to_numpy(float)})
        for name, s in parts.items()
    ]
    return pd.concat(frames, ignore_index=True)
