"""Standard figures of a run (PNG): prices, production by region and stage, shortages, trade."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

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


def _annual(s: pd.Series, how: str = "sum") -> pd.Series:
    r = s.resample("YS")
    return r.sum() if how == "sum" else r.mean()


def plot_prices(res: Results, ax_grid: list) -> None:
    """China-domestic vs ex-China price per product."""
    for ax, prod in zip(ax_grid, PRODUCTS, strict=False):
        for region, style in (("china", "-"), ("world", "--")):
            s = res.series("price_usd_per_kg", prod, region)
            ax.plot(
                s.index,
                s.values,
                style,
                label="China domestic" if region == "china" else "ex-China (landed)",
            )
        ax.set_title(prod)
        ax.set_ylabel("USD/kg")
        ax.grid(alpha=0.3)
    ax_grid[0].legend(fontsize=8)


def write_figures(res: Results, out: str | Path) -> list[Path]:
    """Write the standard figures into ``out``; returns the paths written."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    ts = res.timeseries

    fig, axes = plt.subplots(2, 3, figsize=(14, 7))
    plot_prices(res, list(axes.flat))
    axes.flat[-1].axis("off")
    fig.suptitle("Prices: China-domestic vs ex-China")
    fig.tight_layout()
    paths.append(out / "prices.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(2, 2, figsize=(13, 8))
    for ax, prod in zip(axes.flat, STAGES, strict=True):
        sel = ts[(ts["metric"] == "production_t") & (ts["product"] == prod)]
        table = sel.pivot_table(index="date", columns="region", values="value", aggfunc="sum")
        table = table.resample("YS").sum() / 1e3
        table = table.loc[:, table.sum() > 0]
        if not table.empty:
            table.plot.area(ax=ax, linewidth=0)
        ax.set_title(f"{prod} production")
        ax.set_ylabel(f"kt/yr ({UNITS[prod]})")
        ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    paths.append(out / "production_by_region.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
    for ax, metric in zip(axes, ("shortage_t", "demand_t"), strict=True):
        sel = ts[(ts["metric"] == metric)]
        table = sel.pivot_table(index="date", columns="region", values="value", aggfunc="sum")
        (table.resample("YS").sum() / 1e3).plot(ax=ax)
        ax.set_title("OEM magnet " + ("shortage" if metric == "shortage_t" else "demand"))
        ax.set_ylabel("kt magnets / yr")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    paths.append(out / "shortages.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(10, 5))
    fl = res.flows
    if not fl.empty:
        intl = fl[(fl["source_region"] != fl["target_region"]) & (fl["product"] == "magnet")]
        if not intl.empty:
            pair = intl["source_region"] + " → " + intl["target_region"]
            table = intl.assign(pair=pair).pivot_table(
                index="date", columns="pair", values="tonnes", aggfunc="sum"
            )
            table = table.resample("YS").sum() / 1e3
            top = table.sum().sort_values(ascending=False).index[:8]
            table[top].plot(ax=ax)
    ax.set_title("Magnet trade between regions (top 8 routes)")
    ax.set_ylabel("kt magnets / yr")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    paths.append(out / "trade.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return paths
