"""Standard figures of a run (PNG): prices, production by region and stage, shortages, trade.

Axis labels carry units (from the ``sim.metrics`` catalogue; the trade figure reads the
``flows`` table, in tonnes), dates are concise, levels start at zero and legends sit outside
the data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402

from sim.metrics import get as get_metric  # noqa: E402
from sim.metrics import price_markets  # noqa: E402
from sim.results import Results  # noqa: E402
from sim.world import PRODUCTS  # noqa: E402

STAGES = ("concentrate", "oxide", "metal", "magnet")
UNITS = {
    "concentrate": "t REO",
    "oxide": "t NdPr oxide",
    "metal": "t NdPr metal",
    "magnet": "t NdFeB magnet",
    "scrap": "t NdPr in scrap",
}


def axis_label(metric: str, what: str, *, annual_kilo: bool = False, note: str = "") -> str:
    """An axis label with the metric's catalogue unit (annual sums in thousands if asked).

    ``axis_label("production_t", "production", annual_kilo=True)`` -> ``production (kt/yr)``.
    """
    unit = get_metric(metric).unit
    if annual_kilo:
        unit = f"k{unit}/yr"
    return f"{what} ({unit}{', ' + note if note else ''})"


def style_dates(ax: Any) -> None:
    """Concise, non-overlapping date ticks and a light grid."""
    loc = mdates.AutoDateLocator(minticks=3, maxticks=8)
    ax.xaxis.set_major_locator(loc)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(loc))
    ax.grid(alpha=0.3)


def legend_below(fig: Any, ax: Any, ncol: int = 4) -> None:
    """One legend for the figure, below the panels (never over the data)."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=ncol, frameon=False, fontsize=8)


def _save(fig: Any, path: Path, paths: list[Path], bottom: float = 0.1) -> None:
    fig.tight_layout(rect=(0, bottom, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    paths.append(path)


def plot_prices(res: Results, ax_grid: list) -> None:
    """Domestic-market vs ex-domestic price per product, USD/kg from zero."""
    dom, ex = price_markets(str(res.manifest.get("domestic_region", "china")))
    for ax, prod in zip(ax_grid, PRODUCTS, strict=False):
        for region, style, label in ((dom, "-", f"{dom} (domestic)"), (ex, "--", f"{ex}")):
            s = res.series("price_usd_per_kg", prod, region)
            ax.plot(s.index, s.values, style, label=label)
        ax.set_title(prod)
        ax.set_ylabel(axis_label("price_usd_per_kg", "price"))
        ax.set_ylim(bottom=0)
        style_dates(ax)


def _annual_table(ts: Any, metric: str, product: str | None = None) -> Any:
    sel = ts[ts["metric"] == metric]
    if product is not None:
        sel = sel[sel["product"] == product]
    table = sel.pivot_table(index="date", columns="region", values="value", aggfunc="sum")
    # annual rate from the months present (a partial first or last year is not a dip)
    table = table.resample("YS").mean() * 12 / 1e3
    return table.loc[:, table.sum() > 0]


def write_figures(res: Results, out: str | Path) -> list[Path]:
    """Write the standard figures into ``out``; returns the paths written."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    ts = res.timeseries

    fig, axes = plt.subplots(2, 3, figsize=(14, 7.5))
    plot_prices(res, list(axes.flat))
    axes.flat[-1].axis("off")
    legend_below(fig, axes.flat[0])
    fig.suptitle("Prices by market")
    _save(fig, out / "prices.png", paths, bottom=0.05)

    fig, axes = plt.subplots(2, 2, figsize=(13, 8.5))
    regions: dict[str, Any] = {}
    for ax, prod in zip(axes.flat, STAGES, strict=True):
        table = _annual_table(ts, "production_t", prod)
        if not table.empty:
            table.plot.area(ax=ax, linewidth=0, legend=False)
            for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
                regions.setdefault(lab, h)
        ax.set_title(f"{prod} production")
        ax.set_ylabel(axis_label("production_t", "production", annual_kilo=True, note=UNITS[prod]))
        ax.set_xlabel("")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    fig.legend(
        list(regions.values()),
        list(regions),
        loc="lower center",
        ncol=8,
        frameon=False,
        fontsize=8,
    )
    _save(fig, out / "production_by_region.png", paths, bottom=0.06)

    # per-region panels: an aggregate hides where the shortage falls
    short = _annual_table(ts, "shortage_t")
    dem = _annual_table(ts, "demand_t")
    regs = list(dem.columns)
    ncol = min(len(regs), 4) or 1
    nrow = max(1, -(-len(regs) // ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.6 * ncol, 2.8 * nrow + 0.6), squeeze=False)
    for ax, reg in zip(axes.flat, regs, strict=False):
        ax.plot(dem.index, dem[reg], color="0.5", label="demand")
        s = short[reg] if reg in short else dem[reg] * 0
        ax.fill_between(s.index, 0, s.to_numpy(), color="C3", alpha=0.6, label="shortage")
        ax.set_title(reg)
        ax.set_ylabel(axis_label("demand_t", "magnets", annual_kilo=True))
        ax.set_ylim(bottom=0)
        style_dates(ax)
    for ax in list(axes.flat)[len(regs) :]:
        ax.axis("off")
    legend_below(fig, axes.flat[0])
    fig.suptitle("OEM magnet demand and shortage by region")
    _save(fig, out / "shortages.png", paths, bottom=0.06)

    fig, ax = plt.subplots(figsize=(10, 5.5))
    fl = res.flows
    if not fl.empty:
        intl = fl[(fl["source_region"] != fl["target_region"]) & (fl["product"] == "magnet")]
        if not intl.empty:
            pair = intl["source_region"] + " → " + intl["target_region"]
            table = intl.assign(pair=pair).pivot_table(
                index="date", columns="pair", values="tonnes", aggfunc="sum"
            )
            table = table.fillna(0.0).resample("YS").mean() * 12 / 1e3
            top = table.sum().sort_values(ascending=False).index[:8]
            for col in top:
                ax.plot(table.index, table[col], label=col)
    ax.set_title("Magnet trade between regions (top 8 routes)")
    ax.set_ylabel("magnets shipped (kt/yr)")
    ax.set_ylim(bottom=0)
    style_dates(ax)
    legend_below(fig, ax)
    _save(fig, out / "trade.png", paths, bottom=0.12)
    return paths
