"""Experiment files: named scenarios over one world, run side by side (docs/policies.md).

An experiment file is TOML::

    name = "export_controls_2025"        # optional (default: file stem)
    description = "..."
    world = "../models/baseline_2024.toml"   # relative to the experiment file
    seed = 0                              # optional
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

``ndsim run EXPERIMENT.toml --out DIR`` writes ``DIR/<scenario>/`` (the results of each run),
``DIR/figures/`` (side-by-side comparisons) and ``DIR/report.md``. All of it is written into a
temporary directory that replaces ``DIR`` only when everything succeeded.
"""

from __future__ import annotations

import copy
import difflib
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sim.calendar import parse_month
from sim.errors import UserError
from sim.world import apply_override, parse_override, read_toml, validate_world

TOP_KEYS = (
    "name",
    "description",
    "world",
    "seed",
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


@dataclass
class Scenario:
    """One named scenario: the resolved raw world dict it runs."""

    name: str
    description: str
    world_raw: dict[str, Any]
    overrides: list[str]
    seed: int


@dataclass
class Experiment:
    """A parsed, validated experiment file."""

    path: Path
    name: str
    description: str
    world_path: Path
    scenarios: list[Scenario]
    start: str | None = None
    end: str | None = None
    report: dict[str, Any] = field(default_factory=dict)


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
    if not isinstance(seed, int) or isinstance(seed, bool):
        problems.append(f"seed: expected an integer (got {seed!r})")
        seed = 0
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
                overrides=list(sc.get("set", []) or []),
                seed=sc_seed,
            )
        )
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
    )


# ----------------------------------------------------------------------------- running
def run_experiment(
    exp: Experiment, *, seed: int | None = None, start: str | None = None, end: str | None = None
) -> dict[str, Any]:
    """Run every scenario; return ``{name: Results}`` in file order."""
    import sim.api as api

    out: dict[str, Any] = {}
    for sc in exp.scenarios:
        out[sc.name] = api.run(
            sc.world_raw,
            seed=sc.seed if seed is None else seed,
            start=start or exp.start,
            end=end or exp.end,
        )
        out[sc.name].manifest["scenario_name"] = sc.name
        out[sc.name].manifest["experiment"] = exp.name
    return out


def run_experiment_file(
    path: str | Path,
    *,
    out: str | Path | None = None,
    seed: int | None = None,
    start: str | None = None,
    end: str | None = None,
    overrides: list[str] | None = None,
) -> int:
    """``ndsim run EXPERIMENT.toml``: run all scenarios, write results, figures and report.

    Returns:
        The exit code (0). User errors raise :class:`UserError` before anything is written.
    """
    from sim.io import write_results

    exp = load_experiment(path, overrides=overrides)
    if seed is not None:
        for sc in exp.scenarios:
            sc.seed = seed
    for key, val in (("start", start), ("end", end)):
        if val:
            try:
                parse_month(val)
            except ValueError as exc:
                raise UserError(f"--{key}: {exc}") from None
    dest = Path(out or f"runs/{exp.name}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        results = run_experiment(exp, start=start, end=end)
        for name, res in results.items():
            write_results(res, tmp / name, figures=False)
            print(
                f"{exp.name}/{name}: {res.manifest['months']} months, "
                f"{res.manifest['wall_seconds']:.2f} s",
                file=sys.stderr,
            )
        metrics = {name: scenario_metrics(res, exp.report) for name, res in results.items()}
        write_comparison_figures(results, tmp / "figures", exp.report)
        text = report_markdown(exp, metrics)
        (tmp / "report.md").write_text(text)
        pd.DataFrame(_flat(metrics)).to_csv(tmp / "metrics.csv", index=False)
        if dest.exists():
            shutil.rmtree(dest)
        tmp.rename(dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    print(text)
    print(f"results written to {dest}/ (one folder per scenario, figures/, report.md)")
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
        "vault_loans_usd",
        "vault_budget_left_usd",
        "vault_additional_capacity_t_per_yr",
        "vault_nonadditional_capacity_t_per_yr",
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


def _flat(metrics: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"scenario": s, "metric": k, "value": v} for s, d in metrics.items() for k, v in d.items()
    ]


# ----------------------------------------------------------------------------- figures
def write_comparison_figures(
    results: dict[str, Any], out: Path, report: dict[str, Any]
) -> list[Path]:
    """Side-by-side figures of all scenarios (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    paths = []
    focus = report.get("focus_region", "usa")

    def save(fig: Any, name: str) -> None:
        fig.tight_layout()
        path = out / name
        fig.savefig(path, dpi=90)
        plt.close(fig)
        paths.append(path)

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, prod in zip(axes, ("oxide", "magnet"), strict=True):
        for k, (name, res) in enumerate(results.items()):
            c = f"C{k}"
            s = res.series("price_usd_per_kg", prod, "china")
            ax.plot(s.index, s.values, "-", color=c, label=f"{name}: China")
            s = res.series("price_usd_per_kg", prod, "world")
            ax.plot(s.index, s.values, "--", color=c, label=f"{name}: ex-China")
        ax.set_title(f"{prod} price (USD/kg)")
    axes[0].legend(fontsize=7)
    save(fig, "prices.png")

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for k, (name, res) in enumerate(results.items()):
        s = china_exports(res)
        axes[0].plot(s.index, s.values, color=f"C{k}", label=name)
        s = china_exports(res, to_region=focus)
        axes[1].plot(s.index, s.values, color=f"C{k}", label=name)
    axes[0].set_title("China magnet exports (t/month)")
    axes[1].set_title(f"China magnet exports to {focus} (t/month)")
    axes[0].legend(fontsize=7)
    save(fig, "exports.png")

    fig, ax = plt.subplots(figsize=(7, 4))
    for k, (name, res) in enumerate(results.items()):
        ts = res.timeseries
        sel = ts[(ts["metric"] == "shortage_t") & (ts["region"] != "china")]
        s = sel.groupby("date")["value"].sum()
        ax.plot(s.index, s.values, color=f"C{k}", label=name)
    ax.set_title("magnet shortage outside China (t/month)")
    ax.legend(fontsize=7)
    save(fig, "shortage.png")

    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    for ax, prod in zip(axes, ("oxide", "metal", "magnet"), strict=True):
        for k, (name, res) in enumerate(results.items()):
            s = non_china_capacity(res, prod)
            ax.plot(s.index, s.values, color=f"C{k}", label=name)
        ax.set_title(f"non-Chinese {prod} capacity (t/yr)")
    axes[0].legend(fontsize=7)
    save(fig, "capacity_non_china.png")

    fig, ax = plt.subplots(figsize=(7, 4))
    for k, (name, res) in enumerate(results.items()):
        s = share_from_china(res, focus).rolling(3, min_periods=1).mean()
        ax.plot(s.index, s.values, color=f"C{k}", label=name)
    ax.set_title(f"share of {focus} magnet purchases from China (3-month mean)")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=7)
    save(fig, "share_from_china.png")
    return paths


# ------------------------------------------------------------------------------ report
def _fmt(v: Any, kind: str = "") -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "n/a"
    if kind == "pct":
        return f"{100 * v:+.0f}%"
    if kind == "share":
        return f"{100 * v:.1f}%"
    if kind == "usd":
        return f"${v / 1e9:.2f} B" if abs(v) >= 1e8 else f"${v / 1e6:.1f} M"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.2f}"


ROWS: list[tuple[str, str, str]] = [
    ("exports_t_event", "China magnet exports in the event month (t)", ""),
    ("exports_yoy_event", "... change y/y", "pct"),
    ("exports_to_usa_yoy_event", "... to the US, change y/y", "pct"),
    ("magnet_premium_event", "ex-China magnet price premium over China, event month", "pct"),
    ("shortage_ex_china_t", "magnet shortage outside China, whole run (t)", ""),
    ("stockpile_spent_usd", "stockpile spending", "usd"),
    ("stockpile_bought_t", "stockpile purchases (t)", ""),
    ("stockpile_released_t", "stockpile releases (t)", ""),
    ("vault_disbursed_usd", "Vault disbursed", "usd"),
    ("vault_lost_usd", "Vault lost on failed projects", "usd"),
    ("vault_loans_usd", "Vault gap loans (part of disbursed)", "usd"),
    ("vault_budget_left_usd", "Vault budget left at the end", "usd"),
    (
        "vault_additional_capacity_t_per_yr",
        "capacity that exists only because of the fund (t/yr)",
        "",
    ),
    (
        "vault_nonadditional_capacity_t_per_yr",
        "fund-financed capacity firms could have built alone (t/yr)",
        "",
    ),
    ("price_floor_paid_usd", "price floor payments", "usd"),
    ("recycled_share_of_oxide", "recycled share of NdPr oxide output, whole run", "share"),
    ("non_china_oxide_production_t", "non-Chinese NdPr oxide output, whole run (t)", ""),
    ("non_china_magnet_production_t", "non-Chinese magnet output, whole run (t)", ""),
]


def report_markdown(exp: Experiment, metrics: dict[str, dict[str, Any]]) -> str:
    """``report.md``: key numbers side by side, and what they mean."""
    names = list(metrics)
    lines = [f"# {exp.name}", "", exp.description.strip(), ""]
    lines += ["## Scenarios", ""]
    for sc in exp.scenarios:
        lines.append(f"- **{sc.name}**: {sc.description}")
    lines += [
        "",
        "## Key numbers",
        "",
        "| metric | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    focus = exp.report.get("focus_region", "usa")
    rows = [(k.replace("usa", focus), lab.replace("US", focus), kind) for k, lab, kind in ROWS]
    ev = exp.report.get("event_month")
    extra = []
    if ev:
        lines[-2] = lines[-2]
        regions = sorted(
            {
                k.split("shortage_share_12m_")[1]
                for d in metrics.values()
                for k in d
                if k.startswith("shortage_share_12m_")
            }
        )
        for r in regions:
            extra.append(
                (
                    f"shortage_share_event_{r}",
                    f"{r} shortage, event month (share of demand)",
                    "share",
                )
            )
            extra.append(
                (
                    f"shortage_share_12m_{r}",
                    f"{r} shortage over {exp.report.get('halt_months', 12)} months from the event",
                    "share",
                )
            )
        for k in range(1, 7):
            extra.append(
                (f"exports_yoy_event+{k}", f"China magnet exports y/y, event + {k} months", "pct")
            )
    years = sorted(
        {
            int(k.rsplit("_", 1)[1])
            for d in metrics.values()
            for k in d
            if k.startswith("magnet_price_china_") and k[-4:].isdigit()
        }
    )
    for y in years:
        extra += [
            (f"magnet_price_china_{y}", f"magnet price China {y} (USD/kg)", ""),
            (f"magnet_price_world_{y}", f"magnet price ex-China {y} (USD/kg)", ""),
            (f"oxide_price_china_{y}", f"NdPr oxide price China {y} (USD/kg)", ""),
            (f"oxide_price_world_{y}", f"NdPr oxide price ex-China {y} (USD/kg)", ""),
            (f"non_china_capacity_oxide_{y}", f"non-Chinese oxide capacity {y} (t/yr)", ""),
            (f"non_china_capacity_metal_{y}", f"non-Chinese metal capacity {y} (t/yr)", ""),
            (f"non_china_capacity_magnet_{y}", f"non-Chinese magnet capacity {y} (t/yr)", ""),
            (
                f"{focus}_magnets_from_china_share_{y}",
                f"{focus} magnets bought from China {y}",
                "share",
            ),
            (f"shortage_ex_china_t_{y}", f"magnet shortage outside China {y} (t)", ""),
            (f"recycled_share_of_oxide_{y}", f"recycled share of NdPr oxide {y}", "share"),
        ]
    for key, label, kind in rows + extra:
        vals = [metrics[n].get(key) for n in names]
        if all(v is None for v in vals):
            continue
        if all((v == 0 or v is None) for v in vals) and kind == "usd":
            continue
        lines.append(f"| {label} | " + " | ".join(_fmt(v, kind) for v in vals) + " |")
    lines += ["", "## What the numbers mean", ""]
    lines += interpret(exp, metrics)
    if exp.report.get("notes"):
        lines += ["", "## Notes", "", str(exp.report["notes"]).strip()]
    lines += [
        "",
        "Figures: `figures/prices.png`, `figures/exports.png`, `figures/shortage.png`, "
        "`figures/capacity_non_china.png`, `figures/share_from_china.png`. Per-scenario "
        "results (the results contract) are in the scenario folders; all numbers are in "
        "`metrics.csv`.",
        "",
    ]
    return "\n".join(lines)


def interpret(exp: Experiment, metrics: dict[str, dict[str, Any]]) -> list[str]:
    """Plain-language comparison of each scenario with the first one."""
    names = list(metrics)
    base = metrics[names[0]]
    out = []
    ev = exp.report.get("event_month")
    years = sorted(
        {
            int(k.rsplit("_", 1)[1])
            for k in base
            if k.startswith("magnet_price_china_") and k[-4:].isdigit()
        }
    )
    last = years[-1] if years else None
    for n in names[1:]:
        m = metrics[n]
        parts = [f"- **{n}** vs **{names[0]}**:"]
        if ev and np.isfinite(m.get("exports_yoy_event", np.nan)):
            yoy = _fmt(m["exports_yoy_event"], "pct")
            parts.append(
                f"in {ev} China's magnet exports change {yoy}"
                f" y/y ({_fmt(base.get('exports_yoy_event'), 'pct')} in {names[0]}); "
                f"the ex-China magnet premium is "
                f"{_fmt(m.get('magnet_premium_event'), 'pct')} "
                f"({_fmt(base.get('magnet_premium_event'), 'pct')})."
            )
        ds = m["shortage_ex_china_t"] - base["shortage_ex_china_t"]
        parts.append(f"magnet shortage outside China changes by {ds:+,.0f} t over the run.")
        spent = m.get("stockpile_spent_usd", 0.0)
        if spent > 0:
            avoided = -ds
            parts.append(
                f"the stockpile spent {_fmt(spent, 'usd')}: "
                f"{avoided / (spent / 1e6):,.2f} t of shortage avoided per USD million "
                "(net of release revenue "
                f"{_fmt(m.get('stockpile_revenue_usd', 0), 'usd')})."
            )
        if m.get("vault_disbursed_usd", 0) > 0:
            extra_ox = m["non_china_oxide_production_t"] - base["non_china_oxide_production_t"]
            extra_mag = m["non_china_magnet_production_t"] - base["non_china_magnet_production_t"]
            dcap = sum(
                m.get(f"non_china_capacity_{p}_{last}", 0.0)
                - base.get(f"non_china_capacity_{p}_{last}", 0.0)
                for p in ("oxide", "metal", "magnet")
            )
            parts.append(
                f"capacity that exists only because of the fund: "
                f"{m.get('vault_additional_capacity_t_per_yr', 0):,.0f} t/yr (its own account); "
                f"non-Chinese oxide+metal+magnet capacity {last} vs no fund: {dcap:+,.0f} t/yr."
            )
            parts.append(
                f"Vault disbursed {_fmt(m['vault_disbursed_usd'], 'usd')} and lost "
                f"{_fmt(m.get('vault_lost_usd', 0), 'usd')}; extra non-Chinese output "
                f"{extra_ox:+,.0f} t oxide and {extra_mag:+,.0f} t magnets"
                + (
                    f" (USD {m['vault_disbursed_usd'] / extra_mag / 1e3:,.1f} per kg "
                    "of extra magnet output)"
                    if extra_mag > 1
                    else ""
                )
                + "."
            )
        if last is not None:
            for prod in ("oxide", "magnet"):
                a, b = m.get(f"{prod}_price_china_{last}"), base.get(f"{prod}_price_china_{last}")
                if a and b:
                    parts.append(f"{prod} price in China {last}: {a:.1f} vs {b:.1f} USD/kg.")
            a = m.get(f"non_china_capacity_magnet_{last}")
            b = base.get(f"non_china_capacity_magnet_{last}")
            parts.append(f"non-Chinese magnet capacity {last}: {a:,.0f} vs {b:,.0f} t/yr.")
            a = m.get(f"recycled_share_of_oxide_{last}")
            b = base.get(f"recycled_share_of_oxide_{last}")
            parts.append(
                f"recycled share of oxide {last}: {_fmt(a, 'share')} vs {_fmt(b, 'share')}."
            )
        out.append(" ".join(parts))
    return out or ["- (one scenario only: nothing to compare)"]
