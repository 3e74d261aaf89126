"""The month's payments for goods and running costs, posted to the ledger as netted arrays.

Each phase computes its transfers as arrays over links or nodes, applies them to the balances
with one netted vector (:meth:`sim.ledger.Ledger.post_net`) and, when recording, keeps the
entries as whole arrays against index arrays built once (no per-transfer objects, no masks).
Entries of zero USD are kept too; ``transfers.parquet`` leaves them out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from sim.ledger import KG_PER_T, KIND

if TYPE_CHECKING:
    from sim.market import Clearing
    from sim.model import SupplyChainModel

TRADE_KINDS = ("trade", "border_rent", "tariff", "export_duty", "transport")
"""Components of a trade payment, in posting order (see :class:`sim.market.Clearing`)."""


@dataclass
class TradeLayout:
    """Who pays whom for each trade payment component, per link.

    Attributes:
        payer: Buyer of each link (pays every component).
        payee: Per component (rows, :data:`TRADE_KINDS` order) and link: the seller (ask and
            rent), the importing government (tariff), the exporting government (duty), the
            carriers (transport).
        rows: Per set of components paid this month: kinds, payers and payees raveled in
            (component, link) order, and a reusable (components, links) USD buffer.
    """

    payer: np.ndarray
    payee: np.ndarray
    rows: dict[tuple[int, ...], tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = field(
        default_factory=dict
    )

    def select(
        self, active: tuple[int, ...]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Kinds, payers, payees (raveled) and USD buffer of the components ``active``."""
        got = self.rows.get(active)
        if got is None:
            n, k = self.payer.size, len(active)
            kinds = np.repeat(np.array([KIND[TRADE_KINDS[j]] for j in active], np.int64), n)
            payers = np.tile(self.payer, k)
            payees = np.ascontiguousarray(self.payee[list(active)]).reshape(-1)
            got = self.rows[active] = (kinds, payers, payees, np.zeros((k, n)))
        return got


def trade_layout(model: SupplyChainModel) -> TradeLayout:
    """The trade payment layout of a built model's links."""
    links, region, gov = model.links, model.nodes.region, model.gov_party
    payee = np.stack(
        [
            links.src,
            links.src,
            gov[region[links.dst]],
            gov[region[links.src]],
            np.full(links.n, model.carriers, np.int64),
        ]
    ).astype(np.int64)
    return TradeLayout(payer=np.asarray(links.dst, np.int64), payee=payee)


def _components(c: Clearing) -> tuple[tuple[int, ...], list[np.ndarray]]:
    """Components paid on some link this month (the ask always) and their USD/kg arrays.

    A component that is zero on every link is left out: its entries add nothing to any sum.
    """
    parts = (
        c.price_usd_per_kg,
        c.rent_usd_per_kg,
        c.tariff_usd_per_kg,
        c.duty_usd_per_kg,
        c.transport_usd_per_kg,
    )
    active = (0, *[j for j in (1, 2, 3, 4) if parts[j].any()])
    return active, [parts[j] for j in active]


def pay_for_trade(model: SupplyChainModel) -> None:
    """Post the month's trade payments from the clearing, per link and component.

    The buyer pays the seller the ask (``trade``) and the scarcity rent of a binding cap
    (``border_rent``), the importing government the tariff, the exporting government the
    export duty and the carriers transport.
    """
    c, links, led = model.clearing, model.links, model.ledger
    if links.n == 0:
        return
    active, per_kg = _components(c)
    kinds, payers, payees, usd = model.trade_layout.select(active)
    keep = led.record and led.month_row >= 0
    if keep:  # kept entries own their amounts
        usd = np.empty_like(usd)
    kg = c.shipped_t * KG_PER_T
    if active[1:2] == (1,):  # the seller's ask is the price less the rent
        np.subtract(per_kg[0], per_kg[1], out=usd[0])
        usd[0] *= kg
    else:
        np.multiply(per_kg[0], kg, out=usd[0])
    for j in range(1, len(active)):
        np.multiply(per_kg[j], kg, out=usd[j])
    n = led.balance.size
    flat = usd.reshape(-1)
    net = np.bincount(payees, flat, minlength=n)
    per_link = usd.sum(axis=0)
    net -= np.bincount(links.dst, per_link, minlength=n)
    led.post_net(net, float(np.add.reduce(per_link)))
    if keep:
        led.keep(kinds, payers, payees, flat)


def pay_running_costs(model: SupplyChainModel) -> None:
    """Firms pay conversion costs to households; households pay OEMs for magnets used.

    Conversion cost is paid in two parts (ODD 7.1): ``variable_cost_share`` of the unit
    cost per tonne made, the rest per tonne of the plant's normal output (capacity x its
    start utilisation) whether it runs or not, so that at its normal rate a plant pays its
    unit cost. OEMs pass magnets on at their recent purchase price (``buy_price_ema``).
    """
    s, led = model.state, model.ledger
    firms, oem = model.firm_span, model.oem_span
    owners = model._owners
    v = model.world.behaviour.variable_cost_share
    normal_t = s.cap[firms] * s.u0[firms] / 12.0
    cost = s.op_cost[firms] * (v * s.produced[firms] + (1.0 - v) * normal_t)
    cost *= KG_PER_T
    use = s.consumed[oem] * s.buy_price_ema[oem]
    use *= KG_PER_T
    net = np.bincount(owners[firms], cost, minlength=led.balance.size)
    net -= np.bincount(owners[oem], use, minlength=net.size)
    net[firms] -= cost
    net[oem] += use
    led.post_net(net, float(np.add.reduce(cost) + np.add.reduce(use)))
    if led.record and led.month_row >= 0:
        led.keep("operating_cost", model.idx["firm"], owners[firms], cost)
        led.keep("magnet_use", owners[oem], model.idx["oem"], use)
