"""Expectations: smoothed sales, production, demand and margins; buyers' perceived supply risk.

One rule for every buyer's precautionary cover (ODD 7.5) and the supply curves' start points
(ODD 7.1) live here; the price rule is in :mod:`sim.prices`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from sim.arrays import full
from sim.finance import main_ask

if TYPE_CHECKING:
    from sim.model import SupplyChainModel


def init_expectations(model: SupplyChainModel) -> None:
    """Supply curves through each firm's starting point; buyers start calm.

    A firm running at the start sits on its supply curve at utilisation ``u0`` = its start
    output / capacity and price/cost ratio ``r0`` = start ask / unit cost; a firm not yet
    operating gets ``reference_utilisation`` at ``1 + markup`` of its role.
    """
    s, b = model.state, model.world.behaviour
    firms = model.idx["firm"]
    cap_m = model.available_capacity_t(firms)
    ask = s.ask[firms, s.out_product[firms]]
    cost = s.unit_cost[firms]
    running = (cap_m > 0) & (cost > 0) & (s.prod_ema[firms] > 0)
    util = np.divide(s.prod_ema[firms], cap_m, out=np.ones(firms.size), where=cap_m > 0)
    s.u0[firms] = np.where(running, np.clip(util, 0.05, 1.0), b.reference_utilisation)
    rel = np.divide(ask, cost, out=np.ones(firms.size), where=cost > 0)
    s.normal_rel[firms] = np.where(running, rel, 1.0 + model._markup[firms])
    s.run_rate[firms] = s.u0[firms]
    s.price_slow[:] = s.buy_price_ema
    s.cover_months[:] = b.buyer_target_cover_months
    oem = model.idx["oem"]
    s.cover_months[oem] = s.target_cover[oem]
    model.precautionary_target_t = np.zeros(model.nodes.n)
    # log premium of exports under a licence or quota, by (exporting region, product)
    model.export_premium = np.zeros(len(model.nodes.regions) * s.ask.shape[1])
    model._reach_open = None  # sim.prices caches buyers' reach while no link is closed


def update_expectations(model: SupplyChainModel) -> None:
    """Exponential smoothing of sales, production, demand, margins; then supply risk."""
    s, a = model.state, model.world.behaviour.expectation_smoothing
    sales = s.sales_ema.reshape(-1)
    slots = model.sell_slots
    # expected sales follow the orders received (not only what could be delivered)
    sales[slots] = (1 - a) * sales[slots] + a * model.clearing.demand_slot_t[slots]
    firms = model.firm_span  # slices when roles are contiguous: views, not copies
    s.prod_ema[firms] = (1 - a) * s.prod_ema[firms] + a * s.produced[firms]
    oem = model.oem_span
    s.demand_ema[oem] = (1 - a) * s.demand_ema[oem] + a * s.demand[oem]
    cost = s.unit_cost[firms]
    price = model.policies.price_received(model, model.idx["firm"], main_ask(model))
    margin = np.divide(price - cost, cost, out=np.zeros(cost.size), where=cost > 0)
    s.margin_ema[firms] = (1 - a / 3) * s.margin_ema[firms] + (a / 3) * margin
    update_risk(model)


def update_risk(model: SupplyChainModel) -> None:
    """Buyers' perceived supply risk (ODD 7.5), one rule for every buyer.

    ``x = w_u x max(unfilled - usual, 0) + w_p x max(momentum, 0) + w_c x controlled``:
    the rise of the smoothed share of the buyer's orders left unfilled over what it is used
    to (its slow average), the rise of the log input price it pays over its slow average, and
    the share of its supply bought over links under an export licence or quota. Each term
    fades as its cause does or as buyers get used to it. Perception saturates: ``risk =
    m x (1 - exp(-x / m))`` with ``m = precaution_max_extra_cover`` (about ``x`` when small).
    """
    s, b = model.state, model.world.behaviour
    a = b.expectation_smoothing
    buyers = model.buyer_span  # a slice when buyers are contiguous: views, not copies
    orders = model.orders[buyers]
    got = model.clearing.received_order_t[buyers]
    unfilled = np.divide(orders - got, orders, out=np.zeros(orders.size), where=orders > 1e-12)
    s.unfilled_ema[buyers] = (1 - a) * s.unfilled_ema[buyers] + a * np.maximum(unfilled, 0.0)
    slow = a / 4  # what buyers are used to: ~4x slower than their expectations
    s.unfilled_slow[buyers] = (1 - slow) * s.unfilled_slow[buyers] + slow * s.unfilled_ema[buyers]
    paid, base = s.buy_price_ema[buyers], s.price_slow[buyers]
    momentum = np.log(np.divide(paid, base, out=full(paid.size, 1.0), where=base > 0))
    s.price_slow[buyers] = (1 - slow) * base + slow * paid
    links = model.links
    controlled = np.zeros(model.nodes.n)
    capped = np.isfinite(model.policies.terms.cap_t)
    if links.n and capped.any():  # else every term is 0 x a share in [0, 1]: exact zeros
        controlled = np.bincount(links.dst, model.relationship * capped, minlength=model.nodes.n)
    raw = (
        b.precaution_unfilled_weight
        * np.maximum(s.unfilled_ema[buyers] - s.unfilled_slow[buyers], 0.0)
        + b.precaution_momentum_weight * np.maximum(momentum, 0.0)
        + b.precaution_controls_weight * np.minimum(controlled[buyers], 1.0)
    )
    # perception saturates: cover rises at most to (1 + precaution_max_extra_cover) x normal
    top = b.precaution_max_extra_cover
    s.risk[buyers] = top * -np.expm1(-raw / top) if top > 0 else 0.0
