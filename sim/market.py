"""Monthly market clearing, vectorised over links and offer slots (prices: sim.prices).

All products clear in one pass: each buyer buys exactly one product, and each seller offers
one or more products through "slots" (``node * NP + product``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.network import NP, Links
from sim.policies.base import LinkTerms


@dataclass
class Clearing:
    """Outcome of one month's clearing (per link unless said otherwise).

    What a buyer pays per kg on link ``e`` is ``landed_usd_per_kg[e]`` =
    ``price_usd_per_kg`` (to the seller; includes ``rent_usd_per_kg``, the premium a binding
    link cap earns the seller) + ``tariff_usd_per_kg`` (to the importing government) +
    ``duty_usd_per_kg`` (to the exporting government) + ``transport_usd_per_kg`` (to carriers).

    Attributes:
        shipped_t: Tonnes shipped per link.
        landed_usd_per_kg: Landed cost per link (the buyer's price per kg).
        price_usd_per_kg: What the seller receives per kg (ask + rent).
        rent_usd_per_kg: Scarcity rent of a binding link cap, earned by the seller.
        tariff_usd_per_kg: Import tariff per kg, paid to the importing government.
        duty_usd_per_kg: Export duty per kg, paid to the exporting government.
        transport_usd_per_kg: Transport cost per kg.
        wanted_t: Tonnes buyers wanted on each open link (a policy cap above zero, a seller
            with goods to sell) in round 1, before link caps.
        demand_slot_t: Orders attributed to each slot: its sales plus its share of the orders
            left unmet after both rounds (sums to total orders; no double count).
        offered_slot_t: Orders reaching each slot within link caps in round 1 (the demand a
            seller can serve; rationed demand shows in ``wanted_t`` on capped links).
        sold_slot_t: Tonnes sold per slot.
        received_order_t: Tonnes shipped per buyer.
    """

    shipped_t: np.ndarray
    landed_usd_per_kg: np.ndarray
    price_usd_per_kg: np.ndarray
    rent_usd_per_kg: np.ndarray
    tariff_usd_per_kg: np.ndarray
    duty_usd_per_kg: np.ndarray
    transport_usd_per_kg: np.ndarray
    wanted_t: np.ndarray
    demand_slot_t: np.ndarray
    offered_slot_t: np.ndarray
    sold_slot_t: np.ndarray
    received_order_t: np.ndarray


REROUTE_ROUNDS = 4
"""Most passes re-routing unmet orders to sellers with stock left (each pass is vectorised)."""


def _spread(links: Links, weight: np.ndarray, amount_by_buyer: np.ndarray, n: int) -> np.ndarray:
    """Split each buyer's amount over its links in proportion to ``weight``."""
    total = np.bincount(links.dst, weight, minlength=n)
    share = np.divide(
        weight, total[links.dst], out=np.zeros_like(weight), where=total[links.dst] > 0
    )
    return share * amount_by_buyer[links.dst]


def clear(
    links: Links,
    orders_t: np.ndarray,
    offer_slot_t: np.ndarray,
    ask_slot_usd_per_kg: np.ndarray,
    terms: LinkTerms,
    rent_usd_per_kg: np.ndarray,
    qualified_t: np.ndarray,
    ref_price_usd_per_kg: np.ndarray,
    price_sensitivity: float,
) -> Clearing:
    """Allocate buyers' orders to sellers over links: a first round, then re-routing rounds.

    Round 1 splits each buyer's order over its open links by a logit on landed cost (relative
    to the product's reference price, cheapest link of the buyer = weight 1); sellers short of
    stock fill pro rata. Later rounds re-route what was not filled to links whose seller still
    has stock, weighted the same way, until nothing more can be placed. Link caps (policy caps
    and supplier qualification) bound each link's total.

    Args:
        links: Link arrays.
        orders_t: Tonnes each node wants to buy this month (by node).
        offer_slot_t: Tonnes each slot can sell (by slot).
        ask_slot_usd_per_kg: Asking price per slot.
        terms: This month's policy terms per link (tariff, duty, caps).
        rent_usd_per_kg: Premium per link that a binding cap lets the seller charge.
        qualified_t: Most tonnes each link may carry given supplier qualification.
        ref_price_usd_per_kg: Reference price per product (scales the logit).
        price_sensitivity: Logit weight on relative landed cost.

    Returns:
        The clearing outcome.
    """
    n = orders_t.size
    n_slots = offer_slot_t.size
    price = ask_slot_usd_per_kg[links.slot] + rent_usd_per_kg
    tariff = price * terms.tariff
    duty = price * terms.duty
    transport = links.transport_usd_per_kg
    landed = price + tariff + duty + transport
    if links.n == 0:
        z, zs = np.zeros(0), np.zeros(n_slots)
        return Clearing(z, z, z, z, z, z, z, z, zs, zs.copy(), zs.copy(), np.zeros(n))
    cap_t = np.minimum(terms.cap_t, qualified_t)
    rel = landed / ref_price_usd_per_kg[links.product]
    # buyers order from sellers in business (with goods to sell) over links a policy leaves open
    open_ = (terms.cap_t > 0) & (offer_slot_t[links.slot] > 1e-9)
    rel_open = np.where(open_, rel, np.inf)
    seg_min = np.minimum.reduceat(rel_open, links.seg_start)
    best = np.empty(n)
    best[links.seg_buyer] = seg_min
    w = np.where(open_, np.exp(-price_sensitivity * np.maximum(rel - best[links.dst], 0.0)), 0.0)

    # round 1
    wanted = _spread(links, w, orders_t, n)
    want = np.minimum(wanted, cap_t)
    offered = np.bincount(links.slot, want, minlength=n_slots)
    fill = np.divide(offer_slot_t, offered, out=np.ones(n_slots), where=offered > 1e-12)
    np.minimum(fill, 1.0, out=fill)
    ship = want * fill[links.slot]

    # re-routing rounds: unmet orders go to sellers with stock left, within link caps, by the
    # same weights, until nothing more can be placed (or REROUTE_ROUNDS passes)
    sold = np.bincount(links.slot, ship, minlength=n_slots)
    for _ in range(REROUTE_ROUNDS):
        got = np.bincount(links.dst, ship, minlength=n)
        unmet = np.maximum(orders_t - got, 0.0)
        left = np.maximum(offer_slot_t - sold, 0.0)
        room = np.maximum(cap_t - ship, 0.0)
        w2 = w * (left[links.slot] > 1e-12) * (room > 1e-12)
        want2 = np.minimum(_spread(links, w2, unmet, n), room)
        demand2 = np.bincount(links.slot, want2, minlength=n_slots)
        fill2 = np.divide(left, demand2, out=np.ones(n_slots), where=demand2 > 1e-12)
        np.minimum(fill2, 1.0, out=fill2)
        ship2 = want2 * fill2[links.slot]
        placed = ship2.sum()
        ship = ship + ship2
        sold = sold + np.bincount(links.slot, ship2, minlength=n_slots)
        if placed <= 1e-9 * max(orders_t.sum(), 1.0):
            break
    received = np.bincount(links.dst, ship, minlength=n)
    # orders still unmet are demand for the sellers the buyer wanted but did not get enough
    # from (qualification limits included); what a policy cap blocks seeks the other open
    # links of sellers in business (by the logit weights) instead
    still = np.maximum(orders_t - received, 0.0)
    short_w = np.maximum(np.minimum(wanted, terms.cap_t) - ship, 0.0)
    has_w = np.bincount(links.dst, short_w, minlength=n) > 1e-12
    room_w = w * (terms.cap_t > ship + 1e-12)
    unmet_link = _spread(links, np.where(has_w[links.dst], short_w, room_w), still, n)
    return Clearing(
        shipped_t=ship,
        landed_usd_per_kg=landed,
        price_usd_per_kg=price,
        rent_usd_per_kg=np.asarray(rent_usd_per_kg, float) * (ship >= 0),
        tariff_usd_per_kg=tariff,
        duty_usd_per_kg=duty,
        transport_usd_per_kg=transport,
        wanted_t=wanted,
        demand_slot_t=sold + np.bincount(links.slot, unmet_link, minlength=n_slots),
        offered_slot_t=offered,
        sold_slot_t=sold,
        received_order_t=received,
    )


def slot_index(node: np.ndarray, product: int | np.ndarray) -> np.ndarray:
    """Offer slot of (node, product)."""
    return node * NP + product
