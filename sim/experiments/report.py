"""``report.md`` and figures of an experiment ensemble (means, 5-95 % ranges, paired effects)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

FIGURES = ("prices.png", "exports.png", "shortage.png", "capacity_ex_domestic.png", "share.png")

ROWS: list[tuple[str, str, str]] = [  # metric, label ({dom}: the domestic market), kind
    ("exports_t_event", "{dom} magnet exports in the event month (t)", ""),
    ("exports_yoy_event", "... change y/y", "pct"),
    ("exports_to_usa_yoy_event", "... to usa, change y/y", "pct"),
    ("magnet_premium_event", "ex-{dom} magnet price premium over {dom}, event month", "pct"),
    ("shortage_ex_domestic_t", "magnet shortage outside {dom}, whole run (t)", ""),
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
    ("ex_domestic_oxide_production_t", "NdPr oxide output outside {dom}, whole run (t)", ""),
    ("ex_domestic_magnet_production_t", "magnet output outside {dom}, whole run (t)", ""),
]
POLICY_ROWS = {
    "stockpile_spent_usd",
    "stockpile_bought_t",
    "stockpile_released_t",
    "vault_disbursed_usd",
    "vault_lost_usd",
    "vault_loans_usd",
    "vault_budget_left_usd",
    "vault_additional_capacity_t_per_yr",
    "vault_nonadditional_capacity_t_per_yr",
    "price_floor_paid_usd",
}
YEAR_ROWS: list[tuple[str, str, str]] = [
    ("magnet_price_domestic_{y}", "magnet price, {dom} {y} (USD/kg)", ""),
    ("magnet_price_ex_domestic_{y}", "magnet price, ex-{dom} {y} (USD/kg)", ""),
    ("oxide_price_domestic_{y}", "NdPr oxide price, {dom} {y} (USD/kg)", ""),
    ("oxide_price_ex_domestic_{y}", "NdPr oxide price, ex-{dom} {y} (USD/kg)", ""),
    ("capacity_ex_domestic_magnet_{y}", "magnet capacity outside {dom} {y} (t/yr)", ""),
    ("{focus}_magnets_from_domestic_share_{y}", "{focus} magnets from {dom} {y}", "share"),
    ("shortage_ex_domestic_t_{y}", "magnet shortage outside {dom} {y} (t)", ""),
    ("recycled_share_of_oxide_{y}", "recycled share of NdPr oxide {y}", "share"),
]


SHOCK_ROWS: list[tuple[str, str, str]] = [  # a supply shock (report.shock_months)
    *(
        (f"{k}_{prod}_{mk}", f"{lab.format(p=pl, m=ml)}", kind)
        for prod, pl in (("oxide", "NdPr oxide"), ("magnet", "magnet"))
        for mk, ml in (("ex_domestic", "ex-{dom}"), ("domestic", "{dom}"))
        for k, lab, kind in (
            ("peak_multiple", "{p} price {m}: peak / month before the shock", ""),
            ("months_to_peak", "... months from the shock to the peak", ""),
            ("months_to_halfway", "... months from the peak to halfway back", ""),
        )
    ),
    *(
        (f"{k}_{prod}_ex_domestic", lab.format(p=prod), "")
        for prod in ("oxide", "metal", "magnet")
        for k, lab in (
            (
                "precautionary_peak_t",
                "buyers outside {{dom}}: precautionary {p} stock target, peak (t)",
            ),
            ("buyer_stock_build_t", "... {p} stock build-up before the peak (t)"),
            ("buyer_stock_low_t", "... {p} stock at its lowest, against the month before (t)"),
            ("restarted_capacity_t_per_yr", "{p} capacity running outside {{dom}}: rise (t/yr)"),
        )
    ),
    ("substituted_t_ex_domestic", "magnet demand substituted outside {dom}, shock + 12 mo (t)", ""),
    ("border_rent_usd_shock", "border rent earned by exporters, shock + 12 mo", "usd"),
]


def label(region: str) -> str:
    """A region id for people: ``usa`` -> ``USA``, ``china`` -> ``China``."""
    return region.upper() if len(region) <= 3 else region.replace("_", " ").title()


def domestic_of(exp: Any) -> str:
    """The domestic market's region of an experiment (its first scenario's world)."""
    return str(exp.scenarios[0].world_raw.get("market", {}).get("domestic_region", "china"))


def fmt(v: Any, kind: str = "", *, diff: bool = False) -> str:
    """A number for the report: ``pct`` and ``share`` as percent (differences in points)."""
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "n/a"
    sign = "+" if diff else ""
    if kind in ("pct", "share"):
        if diff:
            return f"{100 * v:+.1f} pp"
        return f"{100 * v:+.0f}%" if kind == "pct" else f"{100 * v:.1f}%"
    if kind == "usd":
        plus = "+" if diff and v >= 0 else ""
        return f"{plus}${v / 1e9:.2f} B" if abs(v) >= 1e8 else f"{plus}${v / 1e6:.1f} M"
    if abs(v) >= 100:
        return f"{v:{sign},.0f}"
    return f"{v:{sign}.2f}"


def report_rows(exp: Any, metric_names: set[str]) -> list[tuple[str, str, str]]:
    """(metric, label, kind) of the report's table, in order, for the metrics present."""
    focus = exp.report.get("focus_region", "usa")
    dom = domestic_of(exp)
    rows = [
        (k.replace("usa", focus), lab.format(dom=label(dom)).replace("usa", label(focus)), kind)
        for k, lab, kind in ROWS
    ]
    rows += [(k, lab.format(dom=label(dom)), kind) for k, lab, kind in SHOCK_ROWS]
    rows += [
        (
            k,
            f"{label(k.removeprefix('shortage_t_shock_'))} magnet shortage during the shock (t)",
            "",
        )
        for k in sorted(metric_names)
        if k.startswith("shortage_t_shock_")
    ]
    regions = sorted(
        k.removeprefix("shortage_share_12m_")
        for k in metric_names
        if k.startswith("shortage_share_12m_")
    )
    months = exp.report.get("halt_months", 12)
    for r in regions:
        name = label(r)
        rows.append((f"shortage_share_event_{r}", f"{name} shortage, event month", "share"))
        rows.append((f"shortage_share_12m_{r}", f"{name} shortage over {months} months", "share"))
    for k in range(1, 7):
        rows.append(
            (f"exports_yoy_event+{k}", f"{label(dom)} magnet exports y/y, event + {k} mo", "pct")
        )
    years = sorted(
        int(k.rsplit("_", 1)[1])
        for k in metric_names
        if k.startswith("magnet_price_domestic_") and k[-4:].isdigit()
    )
    for y in years:
        rows += [
            (k.format(y=y, focus=focus), lab.format(y=y, dom=label(dom), focus=label(focus)), kind)
            for k, lab, kind in YEAR_ROWS
        ]
    return [r for r in rows if r[0] in metric_names]


def _cell(rec: pd.Series | None, kind: str, *, diff: bool = False) -> str:
    if rec is None or not np.isfinite(rec["mean"]):
        return "n/a"
    mean = fmt(rec["mean"], kind, diff=diff)
    if rec["n_seeds"] < 2:
        return mean
    return f"{mean} [{fmt(rec['p05'], kind, diff=diff)}, {fmt(rec['p95'], kind, diff=diff)}]"


def _table(
    table: pd.DataFrame, columns: list[str], rows: list[tuple[str, str, str]], *, diff: bool
) -> list[str]:
    idx = table.set_index(["metric", "scenario"]) if not table.empty else None
    lines = ["| metric | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    for key, label, kind in rows:
        cells = []
        for c in columns:
            rec = idx.loc[(key, c)] if idx is not None and (key, c) in idx.index else None
            cells.append(_cell(rec, kind, diff=diff))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def experiment_report(
    exp: Any, summary: pd.DataFrame, effects: pd.DataFrame, runs: pd.DataFrame, n_seeds: int
) -> str:
    """The text of ``report.md``."""
    names = [sc.name for sc in exp.scenarios]
    ref = exp.reference
    lines = [f"# {exp.name}", "", exp.description.strip(), "", "## Scenarios", ""]
    for sc in exp.scenarios:
        tag = " (reference)" if sc.name == ref else ""
        lines.append(f"- **{sc.name}**{tag}: {sc.description or '(no description)'}")
    common = [f"`{text.partition('=')[0].strip()}`" for text in exp.defaults.get("set") or []]
    common += [f"`policies.{inst}`" for inst in exp.defaults.get("policies") or {}]
    if common:
        lines += [
            "",
            "Common to every scenario, the reference included (`[defaults]` of the experiment "
            "file): " + ", ".join(common) + ".",
        ]
    seeds = f"{exp.seed}..{exp.seed + n_seeds - 1}" if n_seeds > 1 else f"{exp.seed}"
    n_bad = int((runs["status"] != "ok").sum()) if len(runs) else 0
    sc0 = exp.scenarios[0]
    lines += [
        "",
        f"Each scenario ran on {n_seeds} seed{'s' if n_seeds > 1 else ''} ({seeds}); "
        "replicate *r* of every scenario uses the same seed (common random numbers), so "
        f"effects are paired by seed. Period: {sc0.start or 'world calendar'} to "
        f"{sc0.end or 'world calendar'}. Failed runs: {n_bad}.",
    ]
    if n_bad:
        bad = runs[runs["status"] != "ok"]
        lines += [f"- {r.scenario} seed {r.seed}: {r.error}" for r in bad.itertuples()]
    # instruments no scenario uses (all zero in every run) get no row; other zeros are data
    vals = summary.set_index("metric")[["mean", "p05", "p95"]].abs().groupby(level=0).max()
    unused = {m for m in POLICY_ROWS if m in vals.index and vals.loc[m].max() == 0}
    rows = report_rows(exp, set(summary["metric"]) - unused)
    by_year = [r for r in rows if r[0][-4:].isdigit()]
    headline = [r for r in rows if r not in by_year]
    spread = (
        "mean across seeds [5th, 95th percentile across seeds]"
        if n_seeds > 1
        else "one seed: no interval (run with --seeds N for intervals)"
    )
    others = [n for n in names if n != ref]
    for title, part in (("Key numbers", headline), ("Year by year", by_year)):
        if not part:
            continue
        lines += ["", f"## {title}", "", f"Each cell: {spread}.", ""]
        lines += _table(summary, names, part, diff=False)
        if others:
            lines += [
                "",
                f"### {title}: effects against {ref} (paired by seed)",
                "",
                f"Each cell: mean of (scenario - {ref}) over seeds [5th, 95th percentile]; "
                "shares and percentages in percentage points.",
                "",
            ]
            lines += _table(effects, others, part, diff=True)
    if exp.report.get("notes"):
        lines += ["", "## Notes", "", str(exp.report["notes"]).strip()]
    lines += [
        "",
        "## Files",
        "",
        "Figures (mean line, 5-95 % band across seeds): "
        + ", ".join(f"`figures/{f}`" for f in FIGURES)
        + ". Per-seed values: `metrics.parquet`; this table: `summary.parquet` and "
        f"`effects.parquet`; seed {exp.seed}'s full results (the results contract, with "
        "figures) in each scenario's folder.",
        "",
    ]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------- figures
def band(ax: Any, df: pd.DataFrame, color: str, style: str = "-", label: str = "") -> None:
    """Mean line and 5-95 % band across seeds of one series (columns seed, date, value)."""
    wide = df.pivot_table(index="date", columns="seed", values="value", aggfunc="sum")
    mean = wide.mean(axis=1)
    ax.plot(mean.index, mean.to_numpy(), style, color=color, lw=1.6, label=label)
    if wide.shape[1] > 1:
        lo = wide.quantile(0.05, axis=1)
        hi = wide.quantile(0.95, axis=1)
        ax.fill_between(mean.index, lo.to_numpy(), hi.to_numpy(), color=color, alpha=0.18, lw=0)


def write_band_figures(exp: Any, series: pd.DataFrame, out: Path) -> list[Path]:
    """The experiment's comparison figures (PNG), one line and band per scenario."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.ticker import PercentFormatter

    from sim.figures import style_dates

    out.mkdir(parents=True, exist_ok=True)
    if series.empty:
        return []
    names = [sc.name for sc in exp.scenarios]
    colors = {n: f"C{k}" for k, n in enumerate(names)}
    focus = exp.report.get("focus_region", "usa")
    dom = domestic_of(exp)
    dom_l, focus_l = label(dom), label(focus)
    event = exp.report.get("event_month")
    by = dict(tuple(series.groupby("series", sort=False)))
    paths: list[Path] = []

    def draw(ax: Any, key: str, style: str = "-") -> None:
        grp = by.get(key)
        if grp is None:
            return
        for name, sub in grp.groupby("scenario", sort=False):
            band(ax, sub, colors[name], style)

    def finish(fig: Any, axes: list, name: str, ylabel: str, *, extra: list | None = None) -> None:
        for ax in axes:
            style_dates(ax)
            ax.set_ylabel(ylabel)
            if event:
                ax.axvline(pd.Timestamp(f"{event}-01"), color="0.3", ls=":", lw=1)
        handles = [Line2D([], [], color=colors[n], lw=2, label=n) for n in names]
        handles += extra or []
        if event:
            handles.append(Line2D([], [], color="0.3", ls=":", label=f"event {event}"))
        fig.legend(
            handles=handles,
            loc="lower center",
            ncol=min(len(handles), 5),
            frameon=False,
            fontsize=8,
        )
        fig.tight_layout(rect=(0, 0.1, 1, 1))
        paths.append(out / name)
        fig.savefig(paths[-1], dpi=100)
        plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, prod in zip(axes, ("oxide", "magnet"), strict=True):
        draw(ax, f"price_usd_per_kg|{prod}|domestic", "-")
        draw(ax, f"price_usd_per_kg|{prod}|ex_domestic", "--")
        ax.set_title(f"NdPr {prod} price" if prod == "oxide" else "NdFeB magnet price")
        ax.set_ylim(bottom=0)
    styles = [
        Line2D([], [], color="k", ls="-", label=f"{dom_l} (domestic market)"),
        Line2D([], [], color="k", ls="--", label=f"ex-{dom_l} (buyers outside)"),
    ]
    finish(fig, list(axes), "prices.png", "price (USD/kg)", extra=styles)

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    draw(axes[0], "exports_t|magnet|all")
    draw(axes[1], f"exports_t|magnet|{focus}")
    axes[0].set_title(f"{dom_l}'s magnet exports, all destinations")
    axes[1].set_title(f"{dom_l}'s magnet exports to {focus_l}")
    for ax in axes:
        ax.set_ylim(bottom=0)
    finish(fig, list(axes), "exports.png", "magnets (t/month)")

    regions = sorted(k.split("|")[2] for k in by if k.startswith("shortage_t|"))
    ncol = min(len(regions), 3) or 1
    nrow = max(1, -(-len(regions) // ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.2 * nrow + 0.6), squeeze=False)
    for ax, reg in zip(axes.flat, regions, strict=False):
        draw(ax, f"shortage_t|magnet|{reg}")
        ax.set_title(f"magnet shortage: {label(reg)}")
        top = by[f"shortage_t|magnet|{reg}"]["value"].max()
        ax.set_ylim(0, max(top * 1.05, 1.0))
    for ax in list(axes.flat)[len(regions) :]:
        ax.axis("off")
    finish(fig, list(axes.flat)[: len(regions)], "shortage.png", "magnets short (t/month)")

    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2))
    for ax, prod in zip(axes, ("oxide", "metal", "magnet"), strict=True):
        draw(ax, f"capacity_t_per_yr|{prod}|ex_domestic")
        ax.set_title(f"{prod} capacity outside {dom_l}")
        ax.set_ylim(bottom=0)
    finish(fig, list(axes), "capacity_ex_domestic.png", "capacity (t/yr)")

    fig, ax = plt.subplots(figsize=(7, 4.2))
    draw(ax, f"share_from_domestic|magnet|{focus}")
    ax.set_title(f"share of {focus_l}'s magnet purchases shipped from {dom_l}")
    ax.set_ylim(0, 1.02)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    finish(fig, [ax], "share.png", "share of purchases")
    return paths
