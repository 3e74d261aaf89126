"""Strategic stockpiles held by governments, bought and released as trade with transit.

Each holder is a fund (``stockpile:<holder>`` in the ledger) endowed with its budget by its
government. Its government decides each month (``Government.stockpile_decision``): release on
shortage or above a price, rotate, or buy toward a target in days of national use. Purchases
come out of sellers' unsold stock over the holder region's import links, pay the seller, the
levies and transport like any other trade, and reach the stockpile after the link's lead
time. Releases are shipped to the region's buyers (one month in transit), who pay the fund the
market price.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from sim.errors import UserError
from sim.government import government_of
from sim.ledger import KG_PER_T, Delivery, Transfer
from sim.network import NP, ROLES, P
from sim.policies import schemas as S  # noqa: N812
from sim.policies.base import Instrument
from sim.policies.instruments import DAYS_PER_MONTH, _region_index, _register_simple, _spinning
from sim.world import PRODUCTS

if TYPE_CHECKING:
    from sim.model import SupplyChainModel

RELEASE_LEAD_MONTHS = 1  # domestic delivery from a strategic store


@dataclass
class StockpileHolder:
    """One strategic stockpile.

    Attributes:
        name: Holder name (``[policies.stockpiles.<name>]``).
        spec: Its parsed table.
        region: Region whose buyers it serves.
        product: Product index.
        buyers: Node indices of the region's buyers of the product.
        inlinks: Links into the region carrying the product (purchase routes).
        fund: Ledger party of the stockpile's fund.
        stock_t: Tonnes held in store.
        inbound_t: Purchases in transit, by arrival row of the model's transit ring.
        spent_usd, revenue_usd: Cumulative money paid out and received.
        bought_t, released_t: This month's purchases and releases.
    """

    name: str
    spec: S.StockpileSpec
    region: str
    product: int
    buyers: np.ndarray
    inlinks: np.ndarray
    fund: int
    stock_t: float
    inbound_t: np.ndarray
    spent_usd: float = 0.0
    revenue_usd: float = 0.0
    bought_t: float = 0.0
    released_t: float = 0.0
    flows: list[tuple[int, str, str, str, str, float, float]] = field(default_factory=list)


class Stockpiles(Instrument):
    """Strategic stockpiles held by governments (one holder per named table)."""

    name = "stockpiles"

    def __init__(self, model: SupplyChainModel, specs: dict[str, S.StockpileSpec]):
        self.holders: list[StockpileHolder] = []
        self.regions: list[str] = []
        for name, spec in specs.items():
            region = spec.region or name
            where = f"policies.stockpiles.{name}.region"
            r = _region_index(model, region, where)
            p = P[spec.product]
            buyers = np.flatnonzero((model.nodes.in_product == p) & (model.nodes.region == r))
            if buyers.size == 0:
                raise UserError(f"{where}: no buyer of {spec.product} in {region!r}")
            inlinks = np.flatnonzero(
                (model.links.product == p) & (model.nodes.region[model.links.dst] == r)
            )
            fund = model.ledger.fund(f"stockpile:{name}", f"government:{region}", spec.budget_usd)
            self.holders.append(
                StockpileHolder(
                    name, spec, region, p, buyers, inlinks, fund, float(spec.initial_t),
                    np.zeros(model.horizon),
                )
            )  # fmt: skip
            if region not in self.regions:
                self.regions.append(region)

    def stock_by_product(self) -> np.ndarray:
        """Tonnes held or on the way to the stores, per product."""
        out = np.zeros(NP)
        for h in self.holders:
            out[h.product] += h.stock_t + h.inbound_t.sum()
        return out

    def update(self, model: SupplyChainModel) -> None:
        """Purchases due this month reach the stores."""
        row = model.tau % model.horizon
        for h in self.holders:
            h.stock_t += h.inbound_t[row]
            h.inbound_t[row] = 0.0

    @staticmethod
    def _use(model: SupplyChainModel, buyers: np.ndarray) -> np.ndarray:
        s = model.state
        oem = model.nodes.role[buyers] == ROLES.index("oem")
        return np.where(oem, s.demand_ema[buyers], s.prod_ema[buyers] * s.in_ratio[buyers])

    @staticmethod
    def _price(model: SupplyChainModel, h: StockpileHolder) -> float:
        china, world = model.price_index
        dom = model.world.market.domestic_region
        v = china[h.product] if h.region == dom else world[h.product]
        return float(v if np.isfinite(v) else china[h.product])

    def after_trade(self, model: SupplyChainModel) -> list[Transfer | Delivery]:
        """Each holder's government decides; purchases and releases become effects."""
        effects: list[Transfer | Delivery] = []
        for h in self.holders:
            h.bought_t = h.released_t = 0.0
        if _spinning(model):
            return effects
        for h in self.holders:
            if not h.spec.active(model.month_abs):
                continue
            price = self._price(model, h)
            short = float(model.state.shortage[h.buyers].sum()) > 1e-9
            d = government_of(model, h.region).stockpile_decision(h.spec, price, short, h.stock_t)
            if d.release:
                effects += self._release(model, h, None, price)
                continue
            if d.rotate:
                amount = h.stock_t * h.spec.rotation_share_per_yr / 12.0
                effects += self._release(model, h, amount, price)
            if d.buy:
                effects += self._buy(model, h)
        return effects

    def _release(
        self, model: SupplyChainModel, h: StockpileHolder, amount: float | None, price: float
    ) -> list[Transfer | Delivery]:
        s, b = model.state, h.buyers
        use = self._use(model, b)
        if amount is None:
            need = np.maximum(use * h.spec.release_cover_months - s.inv_in[b] - s.pipeline[b], 0.0)
        else:
            need = use.copy()
        total = float(need.sum())
        give_t = min(h.stock_t, total if amount is None else amount)
        if give_t <= 0 or total <= 0:
            return []
        give = need / total * give_t
        h.stock_t = max(h.stock_t - float(give.sum()), 0.0)
        h.released_t += float(give.sum())
        usd = give * price * KG_PER_T
        h.revenue_usd += float(usd.sum())
        src = f"stockpile:{h.name}"
        return [
            Delivery(h.product, b, give, RELEASE_LEAD_MONTHS, src, h.region, usd),
            Transfer("stockpile_release", b, h.fund, usd),
        ]

    def _buy(self, model: SupplyChainModel, h: StockpileHolder) -> list[Transfer | Delivery]:
        spec = h.spec
        s, links, c, led = model.state, model.links, model.clearing, model.ledger
        use_month = float(self._use(model, h.buyers).sum())
        target = use_month * spec.target_days / DAYS_PER_MONTH
        held = h.stock_t + float(h.inbound_t.sum())
        want = min(target - held, target / spec.build_months)
        budget_left = min(spec.budget_usd - h.spent_usd, led.available(h.fund))
        if want <= 1e-9 or budget_left <= 0 or h.inlinks.size == 0:
            return []
        L = h.inlinks
        terms = model.policies.terms
        cap = terms.cap_t[L] if terms.cap_t.size else np.full(L.size, np.inf)
        room = np.maximum(cap - c.shipped_t[L], 0.0)
        open_ = room > 1e-9
        if not open_.any():
            return []
        L, room = L[open_], room[open_]
        ask = s.ask.reshape(-1)[links.slot[L]]
        tariff = ask * terms.tariff[L] if terms.tariff.size else np.zeros(L.size)
        duty = ask * terms.duty[L] if terms.duty.size else np.zeros(L.size)
        landed = ask + tariff + duty + links.transport_usd_per_kg[L]
        # a buyer at market: no more than its region's buyers pay (the market price index,
        # before tariffs and duties), never the overpriced leftovers of a sold-out market
        market = self._price(model, h)
        ok = (ask + links.transport_usd_per_kg[L] <= market) if np.isfinite(market) else ask > 0
        inv = s.inv_out.reshape(-1)
        q_link = np.zeros(L.size)
        for k in np.argsort(landed, kind="stable"):
            if not ok[k]:
                continue
            if want <= 1e-9 or budget_left <= 1e-6:
                break
            slot = links.slot[L[k]]
            cost = float(landed[k]) * KG_PER_T
            q = min(float(inv[slot]), float(room[k]), want, budget_left / cost)
            if q <= 1e-9:
                continue
            inv[slot] -= q
            c.sold_slot_t[slot] += q  # the seller sees the stockpile's order as a sale
            c.demand_slot_t[slot] += q
            q_link[k] = q
            budget_left -= q * cost
            want -= q
        got = q_link > 0
        if not got.any():
            return []
        L, q_link = L[got], q_link[got]
        kg = q_link * KG_PER_T
        arrive = (model.tau + links.lead_months[L]) % model.horizon
        np.add.at(h.inbound_t, arrive, q_link)
        h.bought_t += float(q_link.sum())
        h.spent_usd += float((kg * landed[got]).sum())
        ids, regions = model.nodes.ids, model.nodes.regions
        row = model.recorder.t if model.recorder is not None else -1
        value = kg * landed[got]
        for e, q, v in zip(L.tolist(), q_link.tolist(), value.tolist(), strict=True):
            src = int(links.src[e])
            h.flows.append(
                (row, PRODUCTS[h.product], ids[src], f"stockpile:{h.name}",
                 regions[model.nodes.region[src]], q, v)
            )  # fmt: skip
        seller = links.src[L]
        region = model.nodes.region
        return [
            Transfer("stockpile_purchase", h.fund, seller, kg * ask[got]),
            Transfer("tariff", h.fund, model.gov_party[region[links.dst[L]]], kg * tariff[got]),
            Transfer("export_duty", h.fund, model.gov_party[region[seller]], kg * duty[got]),
            Transfer("transport", h.fund, model.carriers, kg * links.transport_usd_per_kg[L]),
        ]

    def flow_records(self) -> list[tuple[int, str, str, str, str, str, float, float]]:
        """Purchases as flows.

        Returns:
            (month row, product, source, target, source region, target region, tonnes, USD).
        """
        out = []
        for h in self.holders:
            out += [(t, p, a, b, ra, h.region, q, v) for t, p, a, b, ra, q, v in h.flows]
        return out

    def series(self) -> dict[tuple[str, str, str], float]:
        """Stock, purchases, releases and money by holder region and product."""
        out: dict[tuple[str, str, str], float] = {}
        for h in self.holders:
            prod, reg = PRODUCTS[h.product], h.region
            for metric, v in (
                ("stockpile_t", h.stock_t + float(h.inbound_t.sum())),
                ("stockpile_bought_t", h.bought_t),
                ("stockpile_released_t", h.released_t),
                ("stockpile_spent_usd", h.spent_usd),
                ("stockpile_revenue_usd", h.revenue_usd),
            ):
                out[(metric, prod, reg)] = out.get((metric, prod, reg), 0.0) + v
        return out


_register_simple("stockpiles", Stockpiles, S.StockpileSpec, named=True)
