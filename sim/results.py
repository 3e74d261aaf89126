"""Results of a run as tidy pandas tables (the results contract in docs/outputs.md)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from sim.calendar import month_starts
from sim.ledger import KINDS, LOSS_STAGES
from sim.metrics import get as get_metric
from sim.metrics import price_markets
from sim.network import NP, ROLES
from sim.world import PRODUCTS, SECTORS

if TYPE_CHECKING:
    from sim.model import SupplyChainModel

TS_COLUMNS = ["date", "metric", "product", "region", "sector", "value"]
TS_DTYPES = {
    "date": "datetime64[ns]",
    "metric": object,
    "product": object,
    "region": object,
    "sector": object,
    "value": "float64",
}
TRANSFER_COLUMNS = ["date", "payer", "payee", "kind", "usd"]


@dataclass
class Results:
    """Tables of one run.

    Attributes:
        timeseries: Tidy monthly metrics: date, metric, product, region, sector, value.
        flows: Shipments: date, product, source, target, source_region, target_region, tonnes.
        agents: Per agent per month state.
        manifest: Run metadata (seed, versions, world, timings).
        transfers: Money: date, payer, payee, kind, usd (see :mod:`sim.ledger`).
    """

    timeseries: pd.DataFrame
    flows: pd.DataFrame
    agents: pd.DataFrame
    manifest: dict[str, Any] = field(default_factory=dict)
    transfers: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=TRANSFER_COLUMNS))

    def series(
        self, metric: str, product: str = "", region: str = "", sector: str = ""
    ) -> pd.Series:
        """One time series, indexed by date (sums over sectors unless ``sector`` is given)."""
        ts = self.timeseries
        sel = (ts["metric"] == metric) & (ts["product"] == product)
        if region:
            sel &= ts["region"] == region
        if sector:
            sel &= ts["sector"] == sector
        return ts[sel].groupby("date")["value"].sum()

    def __repr__(self) -> str:
        m = self.manifest
        name = m.get("scenario_name") or m.get("world_name") or m.get("world", "?")
        months = m.get("months", self.timeseries["date"].nunique())
        return (
            f"Results({name!r}, seed {m.get('seed', '?')}, {m.get('start', '?')}.."
            f"{m.get('end', '?')} ({months} months); timeseries {len(self.timeseries):,} rows "
            f"({self.timeseries['metric'].nunique()} metrics), flows {len(self.flows):,} rows, "
            f"agents {len(self.agents):,} rows)"
        )

    def plot(
        self,
        metric: str,
        product: str = "",
        region: str | list[str] | None = None,
        *,
        ax: Any = None,
    ) -> Any:
        """Plot a metric's monthly series, one line per region (sectors summed).

        Args:
            metric: A metric of the catalogue (``sim.metrics``), e.g. ``"shortage_t"``.
            product: The product (``"magnet"``; ``""`` for metrics without one).
            region: One region, a list, or None for every region with rows.
            ax: Matplotlib axes to draw on (default: a new figure).

        Returns:
            The axes, labelled with the metric's unit; levels start at zero.
        """
        import matplotlib.pyplot as plt

        from sim.figures import style_dates
        from sim.metrics import get

        meta = get(metric)
        ts = self.timeseries
        sel = ts[(ts["metric"] == metric) & (ts["product"] == product)]
        regions = sorted(sel["region"].unique()) if region is None else region
        regions = [regions] if isinstance(regions, str) else regions
        if ax is None:
            _, ax = plt.subplots(figsize=(8, 4))
        for reg in regions:
            s = self.series(metric, product, reg)
            ax.plot(s.index, s.to_numpy(), label=reg)
        ax.set_ylabel(meta.axis_label(f"{metric} {product}".strip()))
        if meta.kind != "price" or (sel["value"] >= 0).all():
            ax.set_ylim(bottom=0)
        style_dates(ax)
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False, fontsize=8)
        return ax

    def balance(self) -> pd.DataFrame:
        """Mass balance per product and month: production - consumption - change in stock."""
        ts = self.timeseries
        rows = []
        opening = self.manifest.get("opening_inventory_t", {})
        for prod in PRODUCTS:
            prod_t = self.series("production_t", prod)
            cons_t = self.series("consumption_t", prod)
            inv = ts[(ts["metric"] == "inventory_t") & (ts["product"] == prod)]
            stock = inv.groupby("date")["value"].sum()
            dates = stock.index
            prev = stock.shift(1)
            prev.iloc[0] = opening.get(prod, np.nan)
            frame = pd.DataFrame(
                {
                    "date": dates,
                    "product": prod,
                    "production_t": prod_t.reindex(dates, fill_value=0.0).to_numpy(),
                    "consumption_t": cons_t.reindex(dates, fill_value=0.0).to_numpy(),
                    "stock_change_t": (stock - prev).to_numpy(),
                }
            )
            rows.append(frame)
        out = pd.concat(rows, ignore_index=True)
        out["residual_t"] = out["production_t"] - out["consumption_t"] - out["stock_change_t"]
        return out


def group_sum(values: np.ndarray, keys: np.ndarray, n_groups: int) -> np.ndarray:
    """Sum columns of ``values`` (T x n) into ``n_groups`` groups by ``keys`` (n,)."""
    onehot = np.zeros((keys.size, n_groups))
    onehot[np.arange(keys.size), keys] = 1.0
    return values @ onehot


def tidy_block(
    dates: np.ndarray, metric: str, labels: list[tuple[str, str, str]], values: np.ndarray
) -> pd.DataFrame:
    """Tidy block: ``values`` is T x G for G (product, region, sector) labels."""
    T, G = values.shape
    prod, reg, sec = (np.array([lab[k] for lab in labels], dtype=object) for k in range(3))
    return pd.DataFrame(
        {
            "date": np.repeat(dates, G),
            "metric": metric,
            "product": np.tile(prod, T),
            "region": np.tile(reg, T),
            "sector": np.tile(sec, T),
            "value": values.reshape(-1),
        }
    )


def product_region_block(
    dates: np.ndarray,
    metric: str,
    values: np.ndarray,
    prod: np.ndarray,
    region: np.ndarray,
    regions: list[str],
) -> pd.DataFrame:
    """Tidy block of ``values`` (T x n) summed by (product, region) of each column.

    Columns with ``prod < 0`` are skipped; only (product, region) pairs present appear.
    """
    R = len(regions)
    ok = prod >= 0
    key = prod[ok] * R + region[ok]
    present = np.unique(key)
    remap = np.searchsorted(present, key)
    grouped = group_sum(values[:, ok], remap, present.size)
    labels = [(PRODUCTS[k // R], regions[k % R], "") for k in present]
    return tidy_block(dates, metric, labels, grouped)


@dataclass
class BuildContext:
    """What metric builders read: the finished model, its records and the month dates."""

    model: SupplyChainModel
    T: int
    dates: np.ndarray

    @property
    def regions(self) -> list[str]:
        """Region names in index order."""
        return list(self.model.nodes.regions)

    def by_prod_region(
        self, values: np.ndarray, prod: np.ndarray, metric: str, region: np.ndarray | None = None
    ) -> pd.DataFrame:
        """Tidy block of ``values`` (T x n) summed by (product, region) of each column."""
        region = self.model.nodes.region if region is None else region
        return product_region_block(
            self.dates, metric, values[: self.T], prod, region, self.regions
        )

    def oem_block(self, metric: str, values: np.ndarray) -> pd.DataFrame:
        """Tidy block of an OEM array (T x n) summed by (region, sector)."""
        oem = self.model.idx["oem"]
        nodes, S = self.model.nodes, len(SECTORS)
        key = nodes.region[oem] * S + self.model.state.sector[oem]
        present = np.unique(key)
        remap = np.searchsorted(present, key)
        labels = [("magnet", self.regions[k // S], SECTORS[k % S]) for k in present]
        grouped = group_sum(values[: self.T, oem], remap, present.size)
        return tidy_block(self.dates, metric, labels, grouped)


Builder = Callable[[BuildContext], list[pd.DataFrame]]
BUILDERS: dict[str, Builder] = {}


def builds(name: str) -> Callable[[Builder], Builder]:
    """Register the builder of catalogued model metric ``name`` (see ``sim.metrics``)."""
    get_metric(name)  # raises for an undeclared metric

    def wrap(fn: Builder) -> Builder:
        BUILDERS[name] = fn
        return fn

    return wrap


@builds("price_usd_per_kg")
def _prices(c: BuildContext) -> list[pd.DataFrame]:
    rec = c.model.recorder
    dom, ex = price_markets(c.model.world.market.domestic_region)
    prices = np.concatenate([rec.price_china[: c.T], rec.price_world[: c.T]], axis=1)
    labels = [(p, dom, "") for p in PRODUCTS] + [(p, ex, "") for p in PRODUCTS]
    return [tidy_block(c.dates, "price_usd_per_kg", labels, prices)]


@builds("production_t")
def _production(c: BuildContext) -> list[pd.DataFrame]:
    rec, nodes = c.model.recorder, c.model.nodes
    mask = (nodes.role == ROLES.index("magnet_plant")) | (nodes.role == ROLES.index("recycler"))
    scrap = np.where(mask, PRODUCTS.index("scrap"), -1)
    return [
        c.by_prod_region(rec.produced, c.model.state.out_product, "production_t"),
        c.by_prod_region(rec.swarf + rec.collected, scrap, "production_t"),
    ]


@builds("consumption_t")
def _consumption(c: BuildContext) -> list[pd.DataFrame]:
    return [c.by_prod_region(c.model.recorder.consumed, c.model.state.in_product, "consumption_t")]


@builds("inventory_t")
def _inventory(c: BuildContext) -> list[pd.DataFrame]:
    model, T = c.model, c.T
    rec, nodes, s = model.recorder, model.nodes, model.state
    inv = np.concatenate([rec.inv_out[:T].reshape(T, -1), rec.inv_in[:T]], axis=1)
    inv_prod = np.concatenate([np.tile(np.arange(NP), nodes.n), s.in_product])
    inv_reg = np.concatenate([np.repeat(nodes.region, NP), nodes.region])
    is_slot = np.zeros(nodes.n * NP, bool)
    is_slot[model.sell_slots] = True
    inv_prod[: nodes.n * NP] = np.where(is_slot, inv_prod[: nodes.n * NP], -1)
    blocks = [c.by_prod_region(inv, inv_prod, "inventory_t", inv_reg)]
    transit = [(p, "transit", "") for p in PRODUCTS]
    blocks.append(tidy_block(c.dates, "inventory_t", transit, rec.transit_p[:T]))
    for (metric, prod, region), arr in sorted(rec.policy_series.items()):
        if metric == "stockpile_t":
            blocks.append(tidy_block(c.dates, "inventory_t", [(prod, region, "")], arr[:T, None]))
    return blocks


def _firm_capacity_block(c: BuildContext, values: np.ndarray, metric: str) -> pd.DataFrame:
    """A firm array (T x n) summed by (output product, region)."""
    firms = c.model.idx["firm"]
    fprod = np.full(c.model.nodes.n, -1)
    fprod[firms] = c.model.state.out_product[firms]
    return c.by_prod_region(values, fprod, metric)


@builds("capacity_t_per_yr")
def _capacity(c: BuildContext) -> list[pd.DataFrame]:
    return [_firm_capacity_block(c, c.model.recorder.cap, "capacity_t_per_yr")]


@builds("running_capacity_t_per_yr")
def _running(c: BuildContext) -> list[pd.DataFrame]:
    return [_firm_capacity_block(c, c.model.recorder.running, "running_capacity_t_per_yr")]


@builds("buyer_stock_t")
def _buyer_stock(c: BuildContext) -> list[pd.DataFrame]:
    return [
        c.by_prod_region(c.model.recorder.buyer_stock, c.model.state.in_product, "buyer_stock_t")
    ]


@builds("precautionary_target_t")
def _precaution(c: BuildContext) -> list[pd.DataFrame]:
    rec, prod = c.model.recorder, c.model.state.in_product
    return [c.by_prod_region(rec.cover_extra, prod, "precautionary_target_t")]


@builds("substituted_t")
def _substituted(c: BuildContext) -> list[pd.DataFrame]:
    rec = c.model.recorder
    theta = rec.theta[: c.T]
    lost = np.divide(
        rec.demand[: c.T] * theta, 1.0 - theta, out=np.zeros_like(theta), where=theta < 1
    )
    return [c.oem_block("substituted_t", lost)]


@builds("border_rent_usd")
def _border_rent(c: BuildContext) -> list[pd.DataFrame]:
    links = c.model.links
    return [
        product_region_block(
            c.dates,
            "border_rent_usd",
            c.model.recorder.rent[: c.T],
            links.product,
            c.model.nodes.region[links.src],
            c.regions,
        )
    ]


@builds("demand_t")
def _demand(c: BuildContext) -> list[pd.DataFrame]:
    return [c.oem_block("demand_t", c.model.recorder.demand)]


@builds("shortage_t")
def _shortage(c: BuildContext) -> list[pd.DataFrame]:
    return [c.oem_block("shortage_t", c.model.recorder.shortage)]


# the NdPr world totals: columns of the recorder's monthly NdPr tally (see sim.ledger)
NDPR_COLUMNS: dict[str, list[int]] = {
    "ndpr_mined_t": [0],
    "ndpr_recovered_t": [1],
    "ndpr_lost_t": [2, 3, 4, 5],
    "ndpr_to_products_t": [6],
    "ndpr_stock_t": [7],
}


def _ndpr_total(metric: str, cols: list[int]) -> Builder:
    """Builder of a world NdPr total (region ``world``, product ``ndpr``)."""

    def build(c: BuildContext) -> list[pd.DataFrame]:
        values = c.model.recorder.ndpr[: c.T, cols].sum(axis=1)
        return [tidy_block(c.dates, metric, [("ndpr", "world", "")], values[:, None])]

    return build


for _metric, _cols in NDPR_COLUMNS.items():
    builds(_metric)(_ndpr_total(_metric, _cols))


@builds("ndpr_lost_by_stage_t")
def _ndpr_lost_by_stage(c: BuildContext) -> list[pd.DataFrame]:
    stages = [("ndpr", "world", role) for role in LOSS_STAGES]
    nd = c.model.recorder.ndpr[: c.T, 2:6]
    return [tidy_block(c.dates, "ndpr_lost_by_stage_t", stages, nd)]


def build_timeseries(model: SupplyChainModel, metrics: set[str] | None = None) -> pd.DataFrame:
    """The tidy time series of a finished model: every metric, or only ``metrics``.

    Model metrics come from their builders (``BUILDERS``), instruments' series from the
    recorder. Rows are sorted by metric, product, region, sector, date, so a subset equals
    the same rows of the full table.
    """
    rec = model.recorder
    if rec is None:
        raise ValueError("model was run with record=False")
    ctx = BuildContext(model=model, T=rec.t, dates=month_starts(model.start_abs, rec.t))
    blocks: list[pd.DataFrame] = []
    for name, build in BUILDERS.items():
        if metrics is None or name in metrics:
            blocks += build(ctx)
    for (metric, prod, region), arr in sorted(rec.policy_series.items()):
        if metrics is None or metric in metrics:
            blocks.append(tidy_block(ctx.dates, metric, [(prod, region, "")], arr[: ctx.T, None]))
    if not blocks:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in TS_DTYPES.items()})
    ts = pd.concat(blocks, ignore_index=True)[TS_COLUMNS]
    for col in ("metric", "product", "region", "sector"):
        ts[col] = ts[col].astype(str)
    ts["value"] = ts["value"].astype("float64")
    ts = ts.sort_values(["metric", "product", "region", "sector", "date"], kind="stable")
    return ts.reset_index(drop=True)


def build_results(model: SupplyChainModel, manifest: dict[str, Any] | None = None) -> Results:
    """Turn a finished model's records into tidy tables."""
    rec = model.recorder
    if rec is None:
        raise ValueError("model was run with record=False")
    T = rec.t
    dates = month_starts(model.start_abs, T)
    ts = build_timeseries(model)
    flows = _flows(model, dates, T)
    agents = _agents(model, dates, T)
    man = dict(manifest or {})
    man["opening_inventory_t"] = {p: float(rec.opening_stock_p[k]) for k, p in enumerate(PRODUCTS)}
    man.setdefault("domestic_region", model.world.market.domestic_region)
    man["opening_ndpr_t"] = float(rec.opening_ndpr_t)
    transfers = _transfers(model, dates, T)
    return Results(timeseries=ts, flows=flows, agents=agents, manifest=man, transfers=transfers)


def _transfers(model: SupplyChainModel, dates: np.ndarray, T: int) -> pd.DataFrame:
    """Every posted USD of the recorded months, summed by (date, payer, payee, kind)."""
    led = model.ledger
    rows = [r for r in led.rows if 0 <= r[0] < T]
    if not rows:
        return pd.DataFrame(
            {c: pd.Series(dtype="float64" if c == "usd" else "object") for c in TRANSFER_COLUMNS}
        ).astype({"date": "datetime64[ns]"})
    t = np.concatenate([np.full(r[1].size, r[0]) for r in rows])
    payer = np.concatenate([r[1] for r in rows])
    payee = np.concatenate([r[2] for r in rows])
    kind = np.concatenate([r[3] for r in rows])
    usd = np.concatenate([r[4] for r in rows])
    P_, K = len(led.parties), len(KINDS)
    key = ((t * P_ + payer) * P_ + payee) * K + kind
    pos = usd > 0
    key, usd = key[pos], usd[pos]
    uniq, inv = np.unique(key, return_inverse=True)
    total = np.bincount(inv, usd)
    k = uniq % K
    rest = uniq // K
    pe = rest % P_
    rest //= P_
    pr = rest % P_
    tt = rest // P_
    names = np.array(led.parties, dtype=object)
    return pd.DataFrame(
        {
            "date": dates[tt],
            "payer": names[pr].astype(str),
            "payee": names[pe].astype(str),
            "kind": np.array(KINDS, dtype=object)[k].astype(str),
            "usd": total,
        }
    )


def _flows(model: SupplyChainModel, dates: np.ndarray, T: int) -> pd.DataFrame:
    """Shipments over links, plus instruments' purchases and deliveries (stockpiles)."""
    rec, links, nodes = model.recorder, model.links, model.nodes
    t_idx, e_idx = np.nonzero(rec.shipped[:T] > 1e-9)
    ids = np.array(nodes.ids, dtype=object)
    regions = np.array(nodes.regions, dtype=object)
    src, dst = links.src[e_idx], links.dst[e_idx]
    tonnes = rec.shipped[t_idx, e_idx]
    main = pd.DataFrame(
        {
            "date": dates[t_idx],
            "product": np.array(PRODUCTS, dtype=object)[links.product[e_idx]].astype(str),
            "source": ids[src].astype(str),
            "target": ids[dst].astype(str),
            "source_region": regions[nodes.region[src]].astype(str),
            "target_region": regions[nodes.region[dst]].astype(str),
            "tonnes": tonnes,
            "value_usd": tonnes * rec.landed[t_idx, e_idx] * 1000.0,
        }
    )
    extra: list[tuple] = []
    for ins in model.policies.instruments:
        records = getattr(ins, "flow_records", None)
        if records is not None:
            extra += [r for r in records() if 0 <= r[0] < T]
    for t, d in rec.deliveries:
        if t >= T:
            continue
        for node, q, v in zip(
            d.nodes.tolist(), d.tonnes.tolist(), d.value_usd.tolist(), strict=True
        ):
            if q > 1e-9:
                extra.append(
                    (t, PRODUCTS[d.product], d.source, ids[node], d.source_region,
                     regions[nodes.region[node]], q, v)
                )  # fmt: skip
    if not extra:
        return main
    cols = ["t", "product", "source", "target", "source_region", "target_region", "tonnes"]
    more = pd.DataFrame(extra, columns=[*cols, "value_usd"])
    more.insert(0, "date", dates[more.pop("t").to_numpy()])
    out = pd.concat([main, more.astype({c: str for c in cols[1:6]})], ignore_index=True)
    return out.sort_values(["date", "source", "target", "product"], kind="stable").reset_index(
        drop=True
    )


def _agents(model: SupplyChainModel, dates: np.ndarray, T: int) -> pd.DataFrame:
    rec, nodes, s = model.recorder, model.nodes, model.state
    n = nodes.n
    sector = np.where(
        nodes.role == ROLES.index("oem"), np.array(SECTORS, dtype=object)[s.sector], ""
    )
    out_main = np.where(s.out_product >= 0, s.out_product, 0)
    inv_out_main = rec.inv_out[:T][:, np.arange(n), out_main] * (s.out_product >= 0)
    return pd.DataFrame(
        {
            "date": np.repeat(dates, n),
            "agent_id": np.tile(np.array(nodes.ids, dtype=object), T).astype(str),
            "role": np.tile(np.array(ROLES, dtype=object)[nodes.role], T).astype(str),
            "region": np.tile(np.array(nodes.regions, dtype=object)[nodes.region], T).astype(str),
            "sector": np.tile(sector, T).astype(str),
            "capacity_t_per_yr": rec.cap[:T].reshape(-1),
            "production_t": rec.produced[:T].reshape(-1),
            "consumption_t": rec.consumed[:T].reshape(-1),
            "inventory_in_t": rec.inv_in[:T].reshape(-1),
            "inventory_out_t": inv_out_main.reshape(-1),
            "ask_usd_per_kg": rec.ask[:T].reshape(-1),
            "unit_cost_usd_per_kg": rec.unit_cost[:T].reshape(-1),
            "demand_t": rec.demand[:T].reshape(-1),
            "shortage_t": rec.shortage[:T].reshape(-1),
            "substitution_share": rec.theta[:T].reshape(-1),
        }
    )
