"""Conservation checks on a run's tables: NdPr element and money (tonnes: ``Results.balance``).

Each check compares two independent records: stocks against flows for NdPr, goods shipped
(``flows.value_usd``) against what their buyers paid (``transfers``) for money, and the funds'
balances rebuilt from ``transfers``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from sim.results import Results

# what a buyer pays for goods it receives, by kind (see sim.ledger.KINDS)
GOODS_KINDS = (
    "trade",
    "border_rent",
    "tariff",
    "export_duty",
    "transport",
    "stockpile_purchase",
    "stockpile_release",
)
FUND_PREFIXES = ("vault:", "stockpile:", "subsidy:")


def ndpr_balance(res: Results) -> pd.DataFrame:
    """NdPr per month: stock change against mined + recovered - lost - to products (t NdPr)."""
    ts = res.timeseries
    nd = ts[(ts["product"] == "ndpr") & (ts["region"] == "world") & (ts["sector"] == "")]
    wide = nd.pivot_table(index="date", columns="metric", values="value", aggfunc="sum")
    prev = wide["ndpr_stock_t"].shift(1)
    prev.iloc[0] = res.manifest.get("opening_ndpr_t", np.nan)
    out = pd.DataFrame(
        {
            "stock_change_t": wide["ndpr_stock_t"] - prev,
            "net_inflow_t": wide["ndpr_mined_t"]
            + wide["ndpr_recovered_t"]
            - wide["ndpr_lost_t"]
            - wide["ndpr_to_products_t"],
            "scale_t": wide[["ndpr_mined_t", "ndpr_to_products_t", "ndpr_stock_t"]]
            .abs()
            .max(axis=1),
        }
    )
    out["residual_t"] = out["stock_change_t"] - out["net_inflow_t"]
    out["relative"] = out["residual_t"].abs() / out["scale_t"]
    return out.reset_index()


def ndpr_losses_by_stage(res: Results) -> pd.DataFrame:
    """Process losses per stage and month (t NdPr): negative means a recipe made NdPr."""
    ts = res.timeseries
    sel = ts[ts["metric"] == "ndpr_lost_by_stage_t"]
    return sel.pivot_table(index="date", columns="sector", values="value", aggfunc="sum")


def goods_payments(res: Results) -> pd.DataFrame:
    """Per month and buyer: value of goods received (flows) against payments for goods.

    Returns:
        Columns date, buyer, value_usd, paid_usd, residual_usd.
    """
    fl = res.flows.groupby(["date", "target"])["value_usd"].sum()
    tr = res.transfers
    tr = tr[tr["kind"].isin(GOODS_KINDS)].groupby(["date", "payer"])["usd"].sum()
    fl.index.names = tr.index.names = ["date", "buyer"]
    out = pd.concat([fl.rename("value_usd"), tr.rename("paid_usd")], axis=1).fillna(0.0)
    out["residual_usd"] = out["paid_usd"] - out["value_usd"]
    return out.reset_index()


def usd_balance(res: Results) -> pd.DataFrame:
    """Per month: goods value shipped vs paid for, and the largest buyer-level gap."""
    g = goods_payments(res)
    g["abs_residual_usd"] = g["residual_usd"].abs()
    out = g.groupby("date").agg(
        value_usd=("value_usd", "sum"),
        paid_usd=("paid_usd", "sum"),
        worst_usd=("abs_residual_usd", "max"),
    )
    out["relative"] = out["worst_usd"] / out["value_usd"].clip(lower=1.0)
    return out.reset_index()


def fund_balances(res: Results) -> pd.DataFrame:
    """Each fund's balance at each month end, rebuilt from ``transfers`` (USD)."""
    tr = res.transfers
    funds = sorted(
        {p for p in pd.concat([tr["payer"], tr["payee"]]).unique() if p.startswith(FUND_PREFIXES)}
    )
    dates = pd.Index(sorted(res.timeseries["date"].unique()), name="date")
    cols = {}
    for f in funds:
        inflow = tr[tr["payee"] == f].groupby("date")["usd"].sum()
        outflow = tr[tr["payer"] == f].groupby("date")["usd"].sum()
        net = inflow.reindex(dates, fill_value=0.0) - outflow.reindex(dates, fill_value=0.0)
        cols[f] = net.cumsum()
    return pd.DataFrame(cols, index=dates)
