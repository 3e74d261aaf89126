"""Monthly market clearing, vectorised over links and offer slots (prices: sim.prices).

All products clear in one pass: each buyer buys exactly one product, and each seller offers
one or more products through "slots" (``node * NP + product``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.arrays import full
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
    """Split each buyer's amount over its links in proportion to ``weight`` (``>= 0``)."""
    total = np.bincount(links.dst, weight, minlength=n)[links.dst]
    share = np.divide(weight, total, out=np.zeros(weight.size), where=total > 0)
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
    slot_ids, slot = links.offer_slots  # the slots links sell from; each link's among them
    offer = offer_slot_t[slot_ids]
    open_ = (terms.cap_t > 0) & (offer[slot] > 1e-9)
    rel_open = np.where(open_, rel, np.inf)
    best = full(n, np.inf)  # each buyer's cheapest link (a minimum: exact in any order)
    np.minimum.at(best, links.dst, rel_open)
    w = np.where(open_, np.exp(-price_sensitivity * np.maximum(rel - best[links.dst], 0.0)), 0.0)

    # round 1
    wanted = _spread(links, w, orders_t, n)
    want = np.minimum(wanted, cap_t)
    offered = np.bincount(slot, want, minlength=slot_ids.size)
    fill = np.divide(offer, offered, out=full(slot_ids.size, 1.0), where=offered > 1e-12)
    np.minimum(fill, 1.0, out=fill)
    ship = want * fill[slot]

    # re-routing rounds: unmet orders go to sellers with stock left, within link caps, by the
    # same weights, until nothing more can be placed (or REROUTE_ROUNDS passes)
    sold = np.bincount(slot, ship, minlength=slot_ids.size)
    received = _reroute(links.dst, slot, orders_t, offer, cap_t, w, ship, sold)
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
        demand_slot_t=_by_slot(
            sold + np.bincount(slot, unmet_link, minlength=slot_ids.size), slot_ids, n_slots
        ),
        offered_slot_t=_by_slot(offered, slot_ids, n_slots),
        sold_slot_t=_by_slot(sold, slot_ids, n_slots),
        received_order_t=received,
    )


def _by_slot(values: np.ndarray, slot_ids: np.ndarray, n_slots: int) -> np.ndarray:
    """Values of the slots links sell from, spread to all ``n_slots`` slots (zero elsewhere)."""
    out = np.zeros(n_slots)
    out[slot_ids] = values
    return out


def _reroute(
    links_dst: np.ndarray,
    links_slot: np.ndarray,
    orders_t: np.ndarray,
    offer_t: np.ndarray,
    cap_t: np.ndarray,
    w: np.ndarray,
    ship: np.ndarray,
    sold: np.ndarray,
) -> np.ndarray:
    """Re-routing rounds of :func:`clear`: add to ``ship`` (per link) and ``sold`` (per slot).

    A round splits each buyer's unmet orders over its links whose seller has stock left
    (``offer_t - sold``, per slot) and whose cap leaves room (weights ``w``), sellers fill pro
    rata. Unmet orders, stock left and room only shrink from round to round, so each round
    works on the links still eligible after the previous one (all links at first): the
    arithmetic per link and per slot is that of a pass over all links, where the others would
    add exact zeros.

    Returns:
        Tonnes shipped per buyer (``ship`` summed per buyer, in link order).
    """
    n, n_slots, n_links = orders_t.size, sold.size, w.size
    dst, slot, weight, eligible = links_dst, links_slot, w, None  # None: all links
    stop = 1e-9 * max(orders_t.sum(), 1.0)
    received = None  # per buyer, while ``ship`` has not changed since it was summed
    for _ in range(REROUTE_ROUNDS):
        received = np.bincount(links_dst, ship, minlength=n)
        unmet_b = np.maximum(orders_t - received, 0.0)
        left_s = np.maximum(offer_t - sold, 0.0)
        # eligible: weight (w2 = w * stock left * room) > 0 and the buyer's orders unmet
        if eligible is None:
            room = np.maximum(cap_t - ship, 0.0)
            ok = (unmet_b > 0)[dst] & (left_s > 1e-12)[slot] & (room > 1e-12) & (w > 0)
        else:  # the links left all have weight > 0 (weights do not change)
            room = np.maximum(cap_t[eligible] - ship[eligible], 0.0)
            ok = (unmet_b > 0)[dst] & (left_s > 1e-12)[slot] & (room > 1e-12)
        keep = ok.nonzero()[0]
        if keep.size == 0:
            return received  # nothing more can be placed
        eligible = keep if eligible is None else eligible[keep]
        dst, slot, weight, room = dst[keep], slot[keep], weight[keep], room[keep]
        total = np.bincount(dst, weight, minlength=n)[dst]
        want2 = np.minimum(weight / total * unmet_b[dst], room)
        demand2 = np.bincount(slot, want2, minlength=n_slots)  # per slot, then its links
        fill2 = np.divide(left_s, demand2, out=full(n_slots, 1.0), where=demand2 > 1e-12)
        ship2 = want2 * np.minimum(fill2, 1.0)[slot]
        ship[eligible] += ship2
        sold += np.bincount(slot, ship2, minlength=n_slots)
        received = None
        # placed >= its largest entry (a sum of non-negative terms): only sum when it may stop
        if not ship2.max() > stop:
            placed = np.zeros(n_links)  # summed in link order, as in a pass over all links
            placed[eligible] = ship2
            if placed.sum() <= stop:
                break
    return np.bincount(links_dst, ship, minlength=n) if received is None else received


def slot_index(node: np.ndarray, product: int | np.ndarray) -> np.ndarray:
    """Offer slot of (node, product)."""
    return node * NP + product
