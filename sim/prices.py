"""Prices by mechanism (ODD 7.4): sellers' tatonnement, border rents, the market indices.

No clip and no cost anchor bounds how far a price goes: each month a seller's ask moves a
share ``1 / price_discovery_months`` of the way to the price that would clear its market at
the elasticities it perceives (a damped Newton step on excess demand). Demand a licence or
quota rations still reaches sellers (it seeks other open links, or counts as unmet at the
sellers the buyer wanted), and a binding export cap lets exporters charge foreign buyers the
price of their alternatives: the quota rent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from sim.arrays import full
from sim.network import NP, P

if TYPE_CHECKING:
    from sim.model import SupplyChainModel

EXCESS_DEMAND_EPS = 0.05
"""Regularises ``log(D / S)`` when demand or supply is zero: 5 % of the seller's normal sales."""

_OTHER_MARKET = np.roll(np.arange(2 * NP), NP)
"""For each market key (location x product), the key of the other location's market."""


@dataclass(frozen=True)
class SlotLayout:
    """What the price rule reads per offer slot that does not change during a run.

    Attributes:
        slots: The sellers' offer slots (``model.sell_slots``).
        node: Each slot's node.
        prod: Each slot's product.
        main: Whether the slot sells the node's main output (else: magnet plants' scrap).
        ref_price: The reference price of each slot's product (USD/kg).
        key: Each slot's market (seller location x product: domestic, then the rest).
        link_key: Each link's market (buyer location x product).
        link_markets: The markets some link trades in (``2 * NP`` flags).
    """

    slots: np.ndarray
    node: np.ndarray
    prod: np.ndarray
    main: np.ndarray
    ref_price: np.ndarray
    key: np.ndarray
    link_key: np.ndarray
    link_markets: np.ndarray


def slot_layout(model: SupplyChainModel) -> SlotLayout:
    """The slot layout of a built model (its offer slots, outputs and reference prices)."""
    slots = model.sell_slots
    node, prod = slots // NP, slots % NP
    link_key = model._link_foreign.astype(np.int64) * NP + model.links.product
    return SlotLayout(
        slots=slots,
        node=node,
        prod=prod,
        main=prod == model.state.out_product[node],
        ref_price=model.ref_price[prod],
        key=(~model._seller_dom).astype(np.int64) * NP + prod,
        link_key=link_key,
        link_markets=np.bincount(link_key, minlength=2 * NP) > 0,
    )


def supply_share(
    model: SupplyChainModel, idx: np.ndarray, price: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Short-run supply curves (ODD 7.1): the share of capacity worth running at ``price``.

    ``1 - u = (1 - u0) x ((price / unit_cost) / r0)^(-k)``: spare capacity shrinks as the
    price rises (``k``, the role's ``supply_elasticity``), so supply is elastic while there is
    spare capacity and steep near full capacity (the commodity "hockey stick"). The curve
    passes through each firm's operating point at the start (utilisation ``u0`` at price/cost
    ratio ``r0``, see :func:`sim.expectations.init_expectations`). Below variable cost
    (:func:`variable_cost`) a firm makes nothing: each tonne would lose money, so it shuts
    down (the short-run shutdown rule: supply is zero below average variable cost). Its
    running rate follows over ``restart_months``.

    Returns:
        The share of capacity, and its elasticity to the price.
    """
    spare, k = _spare_share(model, idx, price)
    u = _running(spare)
    e = np.divide(k * np.minimum(spare, 1.0), u, out=np.zeros(u.size), where=u > 1e-9)
    return u, e


def running_share(model: SupplyChainModel, idx: np.ndarray, price: np.ndarray) -> np.ndarray:
    """The share of capacity worth running at ``price`` (:func:`supply_share` without e)."""
    return _running(_spare_share(model, idx, price)[0])


def _running(spare: np.ndarray) -> np.ndarray:
    """Share of capacity running, ``1 - spare`` within [0, 1]."""
    return np.minimum(np.maximum(1.0 - spare, 0.0), 1.0)  # np.clip's values, at less call cost


def _spare_share(
    model: SupplyChainModel, idx: np.ndarray, price: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Spare capacity share ``1 - u`` of the supply curve at ``price``, and its exponent."""
    s = model.state
    cost = s.unit_cost[idx]
    rel = np.divide(price, cost * s.normal_rel[idx], out=full(cost.size, 1.0), where=cost > 0)
    k = model.supply_elasticity[idx]
    spare = (1.0 - s.u0[idx]) * np.power(np.maximum(rel, 1e-12), -k)
    spare[price < variable_cost(model, idx)] = np.inf  # shutdown: each tonne would lose money
    return spare, k


def variable_cost(model: SupplyChainModel, idx: np.ndarray) -> np.ndarray:
    """What one more kg of output costs (USD/kg), the firm's shutdown price.

    The input at recent purchase prices plus the variable share of conversion
    (``variable_cost_share``); the rest of conversion is paid on the capacity whether it
    runs or not (:func:`sim.payments.pay_running_costs`).
    """
    s = model.state
    v = model.world.behaviour.variable_cost_share
    return s.buy_price_ema[idx] * s.in_ratio[idx] + v * s.conv_cost[idx]


def price_index(model: SupplyChainModel) -> tuple[np.ndarray, np.ndarray]:
    """Market prices per product: the domestic market and the rest (ex-domestic).

    Each is the average price buyers in that market paid on their links this month (seller's
    price incl. border rent, plus transport; before tariffs and duties), weighted by the
    tonnes shipped: a unit value, as in customs statistics. In a month with no trade in a
    market, its buyers' established open links (purchase share x orders) weight the quotes.
    A market without orders keeps its last value.

    Returns:
        ``(domestic, ex_domestic)`` arrays of length ``NP`` (``nan`` where a market never
        had orders).
    """
    c, links = model.clearing, model.links
    out = np.array(model.price_index)  # a market without orders keeps its last value
    if links.n == 0:
        return out[0], out[1]
    now = c.price_usd_per_kg + c.transport_usd_per_kg
    lay = model.slot_layout
    key = lay.link_key
    # transaction prices: each link weighted by the tonnes shipped on it (a unit value, as in
    # customs statistics); a market where nothing shipped: its buyers' established open links
    shipped = c.shipped_t
    traded_m = np.bincount(key, shipped, minlength=2 * NP) > 1e-9
    if traded_m[lay.link_markets].all():  # every market traded: the tonnes weight every link
        weight = shipped
    else:
        quoted = model.relationship * model.orders[links.dst] * (model.policies.terms.cap_t > 0)
        weight = np.where(traded_m[key], shipped, quoted)
    w = np.bincount(key, weight, minlength=2 * NP).reshape(2, NP)
    v = np.bincount(key, weight * now, minlength=2 * NP).reshape(2, NP)
    np.divide(v, w, out=out, where=w > 1e-12)
    return out[0], out[1]


def set_prices(model: SupplyChainModel) -> None:
    """Sellers' asks move by tatonnement on excess demand, then border rents update.

    Each seller offers ``S``: the capacity worth running at its ask (its short-run supply
    curve, or what it could make where inputs or a quota held it back) plus stock above its
    target cover, drawn down over ``inventory_adjust_months``. ``D`` is the smoothed demand
    reaching it: its sales plus its share of orders left unmet (demand rationed by supplier
    qualification included; demand a policy cap blocks seeks other sellers). Sellers of a
    product in one market (the domestic region, the rest) share a market price; it moves
    toward the price that would clear the market, ``log(sum D / sum S) / (e_D + e_S)``, by
    ``1 / price_discovery_months`` a month (``e_S`` the market's supply elasticity at the
    current point, ``e_D`` the perceived demand elasticity plus buyers' switching to the
    other market's spare supply). Each seller's price relative to its market moves the same
    way on its own excess demand against its own elasticities (logit demand, its supply
    curve). An input-limited seller offers only what it could make, so it prices its
    scarcity too. Scrap is index-priced to oxide.
    """
    s, b, c = model.state, model.world.behaviour, model.clearing
    lay = model.slot_layout
    slots, node, main = lay.slots, lay.node, lay.main
    ask = s.ask.reshape(-1)
    price = ask[slots]
    sales = s.sales_ema.reshape(-1)[slots]
    sold = c.sold_slot_t[slots]
    stock = s.inv_out.reshape(-1)[slots] + sold
    cap = model.available_capacity_t(node)
    run, e_s = supply_share(model, node, price)
    bound = s.output_bound[node]
    can = cap * run
    flow = np.where(bound, np.minimum(can, s.produced[node]), can)
    e_s = np.where(bound, 0.0, e_s)
    offer = np.maximum(
        flow + (stock - b.seller_target_cover_months * sales) / b.inventory_adjust_months, 0.0
    )
    a = b.expectation_smoothing
    dem = s.slot_demand_ema.reshape(-1)
    demand = c.demand_slot_t[slots]
    dem_now = (1 - a) * dem[slots] + a * demand
    dem[slots] = dem_now
    eps = EXCESS_DEMAND_EPS * np.maximum(np.maximum(sales, cap * b.reference_utilisation), 1e-9)
    active = main & ((cap > 0) | (stock > 1e-9))  # firms not yet operating keep their quotes
    # sellers read a rise in demand at once and a fall once it persists (smoothed): prices
    # rise as soon as orders go unmet ("rockets and feathers")
    d, sup = np.maximum(dem_now, demand) + eps, offer + eps
    rel_price = price / lay.ref_price
    move_m, gap_m, key = _market_step(model, d, sup, e_s, rel_price, active)
    move_own = (np.log(d / sup) - gap_m[key]) / _own_elasticity(model, slots, rel_price, e_s)
    step = (move_m[key] + move_own) / b.price_discovery_months
    scrap_target = b.scrap_payable_share * model.price_index[0][P["oxide"]]
    scrap_step = b.scrap_price_anchor_rate * np.log(np.maximum(scrap_target, 1e-9) / price)
    new = price * np.exp(np.where(main, np.where(active, step, 0.0), scrap_step))
    # sellers' reservation price: below it they hold stock rather than sell
    floor = np.where(main, b.price_floor_cost_share * s.unit_cost[node], 0.05 * lay.ref_price)
    ask[slots] = np.maximum(new, floor)
    update_export_premium(model)


def _market_step(
    model: SupplyChainModel,
    d: np.ndarray,
    sup: np.ndarray,
    e_s: np.ndarray,
    rel_price: np.ndarray,
    active: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The Newton step of each market (seller location x product) toward clearing.

    Returns:
        The log price move per market, its log excess demand, and each slot's market key.
    """
    b = model.world.behaviour
    key = model.slot_layout.key
    # sums over the active slots only: the others would add exact zeros
    on = active.nonzero()[0]
    key_on = key[on]
    d_on = d[on]
    d_m = np.bincount(key_on, d_on, minlength=2 * NP)
    s_m = np.bincount(key_on, sup[on], minlength=2 * NP)
    es_m = np.bincount(key_on, (sup * e_s)[on], minlength=2 * NP)
    es_m = np.divide(es_m, s_m, out=np.zeros(2 * NP), where=s_m > 0)
    gap_m = np.log(np.divide(d_m, s_m, out=full(2 * NP, 1.0), where=(s_m > 0) & (d_m > 0)))
    # buyers switch to the other market's spare supply over the links a policy leaves open:
    # demand there is more elastic
    other = _OTHER_MARKET
    spare = np.maximum(s_m[other] - d_m[other], 0.0)
    switch = np.minimum(np.divide(spare, d_m, out=np.zeros(2 * NP), where=d_m > 0), 1.0)
    switch *= _reach(model)
    p_m = np.divide(
        np.bincount(key_on, d_on * rel_price[on], minlength=2 * NP),
        d_m,
        out=full(2 * NP, 1.0),
        where=d_m > 0,
    )
    e_d = b.perceived_demand_elasticity + b.price_sensitivity * p_m * switch
    return gap_m / (e_d + es_m), gap_m, key


def _reach(model: SupplyChainModel) -> np.ndarray:
    """Per market (seller location x product): the share of cross-market links policy leaves open.

    A market's buyers can switch to the other market's sellers over links that cross between
    the two; where there are none the share is 0.
    """
    links = model.links
    if links.n == 0:
        return np.zeros(2 * NP)
    closed = model.policies.terms.cap_t <= 0
    if not closed.any() and model._reach_open is not None:
        return model._reach_open
    seller_rest = model.nodes.region[links.src] != model._domestic
    buyer_rest = model._link_foreign
    cross = seller_rest != buyer_rest
    key = model.slot_layout.link_key  # the market the buyer stands in
    total = np.bincount(key, cross, minlength=2 * NP)
    open_ = np.bincount(key, cross & ~closed, minlength=2 * NP)
    reach = np.divide(open_, total, out=np.zeros(2 * NP), where=total > 0)
    if not closed.any():
        model._reach_open = reach  # the same every month while no link is closed
    return reach


def _own_elasticity(
    model: SupplyChainModel, slots: np.ndarray, rel_price: np.ndarray, e_s: np.ndarray
) -> np.ndarray:
    """A seller's own-price elasticity against its market: logit demand plus its supply.

    Buyers switch only to suppliers that can deliver, so the logit elasticity is scaled by
    its buyers' fill rate; a node aggregates many competing firms, so its share does not
    lower it. Never below the perceived market demand elasticity: a seller reads its own
    excess demand no more sharply than its market's.
    """
    s, b, c, links = model.state, model.world.behaviour, model.clearing, model.links
    fill_b = np.divide(
        c.received_order_t, model.orders, out=full(model.nodes.n, 1.0), where=model.orders > 1e-12
    )
    fw = np.bincount(links.slot, c.wanted_t * fill_b[links.dst], minlength=s.ask.size)[slots]
    ww = np.bincount(links.slot, c.wanted_t, minlength=s.ask.size)[slots]
    fill = np.divide(fw, ww, out=full(slots.size, 1.0), where=ww > 1e-12)
    return np.maximum(b.price_sensitivity * rel_price * fill + e_s, b.perceived_demand_elasticity)


def update_export_premium(model: SupplyChainModel) -> None:
    """Exports under a binding licence or quota sell at the foreign price: a border rent.

    For each exporting region and product whose capped links are full (shipments at their
    caps), the exporters charge foreign buyers what those buyers' other suppliers ask (the
    order-weighted ask of sellers of the product outside the exporting region): the quota
    rent of trade theory, ``foreign price - domestic price`` per kg, earned by the exporting
    sellers (licence holders are the exporters themselves under China's 2025 regime). The
    log premium moves toward that target by ``1 / price_discovery_months`` a month and back
    toward zero once the caps no longer bind; :func:`border_rent` applies it to the links
    capped in a month.
    """
    links, c, b, s = model.links, model.clearing, model.world.behaviour, model.state
    cap = model.policies.terms.cap_t
    capped = np.isfinite(cap)
    if links.n == 0 or not (capped.any() or model.export_premium.any()):
        return  # no cap and no premium left to unwind
    n_reg = len(model.nodes.regions)
    ask = s.ask.reshape(-1)[links.slot]
    group = model.nodes.region[links.src] * NP + links.product
    ship_g = np.bincount(group, capped * c.shipped_t, minlength=n_reg * NP)
    cap_g = np.bincount(group, np.where(capped, cap, 0.0), minlength=n_reg * NP)
    binding = ((cap_g > 0) & (ship_g >= 0.95 * cap_g)) | ((cap_g == 0) & (ship_g == 0))
    w = c.wanted_t + 1e-12  # the exporters' own ask and the foreign alternative, order-weighted
    own = np.bincount(group, capped * w * ask, minlength=n_reg * NP)
    own_w = np.bincount(group, capped * w, minlength=n_reg * NP)
    target = np.zeros(n_reg * NP)
    src_reg = model.nodes.region[links.src]
    for r in np.unique(src_reg[capped]):
        other = src_reg != r
        alt = np.bincount(links.product[other], (w * ask)[other], minlength=NP)
        alt_w = np.bincount(links.product[other], w[other], minlength=NP)
        g = r * NP + np.arange(NP)
        ratio = np.divide(
            alt * own_w[g], alt_w * own[g], out=np.ones(NP), where=(alt_w > 0) & (own[g] > 0)
        )
        target[g] = np.log(np.maximum(ratio, 1.0))
    has = own_w > 0
    target = np.where(has & binding, target, 0.0)
    prem = model.export_premium + (target - model.export_premium) / b.price_discovery_months
    model.export_premium = np.where(has, prem, 0.0)


def border_rent(model: SupplyChainModel) -> np.ndarray:
    """This month's border rent per link (USD/kg): the export premium on links capped now."""
    links, s = model.links, model.state
    capped = np.isfinite(model.policies.terms.cap_t)
    if not capped.any():
        return np.zeros(links.n)
    ask = s.ask.reshape(-1)[links.slot]
    prem = model.export_premium[model.nodes.region[links.src] * NP + links.product]
    return np.where(capped, ask * np.expm1(prem), 0.0)


def oxide_price_for(model: SupplyChainModel, idx: np.ndarray) -> np.ndarray:
    """The NdPr oxide market price each node faces (its market's index), USD/kg."""
    dom, ex = model.price_index
    foreign = model.state.region[idx] != model._domestic
    p = np.where(foreign, ex[P["oxide"]], dom[P["oxide"]])
    return np.where(np.isfinite(p), p, dom[P["oxide"]])
