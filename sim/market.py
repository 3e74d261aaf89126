"""Monthly market clearing and price adjustment, vectorised over links and offer slots.

All products clear in one pass: each buyer buys exactly one product, and each seller offers
one or more products through "slots" (``node * NP + product``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.network import NP, Links


@dataclass
class Clearing:
    """Outcome of one month's clearing.

    Attributes:
        shipped_t: Tonnes shipped per link.
        landed_usd_per_kg: Landed cost per link (ask x (1 + tariff) + transport).
        demand_slot_t: Orders received per slot over both rounds (the demand signal).
        sold_slot_t: Tonnes sold per slot.
        received_order_t: Tonnes shipped per buyer.
    """

    shipped_t: np.ndarray
    landed_usd_per_kg: np.ndarray
    demand_slot_t: np.ndarray
    sold_slot_t: np.ndarray
    received_order_t: np.ndarray


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
    tariff: np.ndarray,
    cap_t: np.ndarray,
    ref_price_usd_per_kg: np.ndarray,
    price_sensitivity: float,
) -> Clearing:
    """Allocate buyers' orders to sellers over links; two rounds.

    Round 1 splits each buyer's order over its open links by a logit on landed cost (relative
    to the product's reference price, cheapest link of the buyer = weight 1); sellers short of
    stock fill pro rata. Round 2 re-routes what was not filled to links whose seller still has
    stock, weighted the same way. Link caps (export licences, quotas) bound each link's total.

    Args:
        links: Link arrays.
        orders_t: Tonnes each node wants to buy this month (by node).
        offer_slot_t: Tonnes each slot can sell (by slot).
        ask_slot_usd_per_kg: Asking price per slot.
        tariff: Ad valorem tariff/duty per link.
        cap_t: Maximum tonnes per link this month (``inf`` where unrestricted).
        ref_price_usd_per_kg: Reference price per product (scales the logit).
        price_sensitivity: Logit weight on relative landed cost.

    Returns:
        The clearing outcome.
    """
    n = orders_t.size
    n_slots = offer_slot_t.size
    landed = ask_slot_usd_per_kg[links.slot] * (1.0 + tariff) + links.transport_usd_per_kg
    if links.n == 0:
        z = np.zeros(0)
        return Clearing(z, z, np.zeros(n_slots), np.zeros(n_slots), np.zeros(n))
    rel = landed / ref_price_usd_per_kg[links.product]
    seg_min = np.minimum.reduceat(rel, links.seg_start)
    best = np.empty(n)
    best[links.seg_buyer] = seg_min
    open_ = cap_t > 0
    w = np.exp(-price_sensitivity * (rel - best[links.dst])) * open_

    # round 1
    want = np.minimum(_spread(links, w, orders_t, n), cap_t)
    demand_slot = np.bincount(links.slot, want, minlength=n_slots)
    fill = np.divide(offer_slot_t, demand_slot, out=np.ones(n_slots), where=demand_slot > 0)
    np.minimum(fill, 1.0, out=fill)
    ship = want * fill[links.slot]

    # round 2: unmet orders to sellers with stock left, within link caps
    got = np.bincount(links.dst, ship, minlength=n)
    unmet = np.maximum(orders_t - got, 0.0)
    sold = np.bincount(links.slot, ship, minlength=n_slots)
    left = np.maximum(offer_slot_t - sold, 0.0)
    room = np.maximum(cap_t - ship, 0.0)
    w2 = w * (left[links.slot] > 1e-12) * (room > 1e-12)
    want2 = np.minimum(_spread(links, w2, unmet, n), room)
    demand2 = np.bincount(links.slot, want2, minlength=n_slots)
    fill2 = np.divide(left, demand2, out=np.ones(n_slots), where=demand2 > 0)
    np.minimum(fill2, 1.0, out=fill2)
    ship2 = want2 * fill2[links.slot]
    ship = ship + ship2
    sold = sold + np.bincount(links.slot, ship2, minlength=n_slots)
    return Clearing(
        shipped_t=ship,
        landed_usd_per_kg=landed,
        demand_slot_t=demand_slot + demand2,
        sold_slot_t=sold,
        received_order_t=got + np.bincount(links.dst, ship2, minlength=n),
    )


def adjust_prices(
    ask: np.ndarray,
    demand_slot_t: np.ndarray,
    sold_slot_t: np.ndarray,
    stock_slot_t: np.ndarray,
    expected_sales_slot_t: np.ndarray,
    target_usd_per_kg: np.ndarray,
    anchor_rate: np.ndarray,
    target_cover_months: float,
    rate: float,
    floor_usd_per_kg: np.ndarray,
) -> np.ndarray:
    """Sellers' asks: market pressure plus slow reversion to a cost-plus target.

    ``pressure = unmet share of orders - (cover / target cover - 1)``, clipped to [-1, 1]
    (a seller with stock but no expected sales sees full downward pressure);
    ``log ask += rate * pressure + anchor_rate * log(target / ask)``; asks never fall below
    ``floor_usd_per_kg``.
    """
    unmet_share = np.divide(
        demand_slot_t - sold_slot_t,
        demand_slot_t,
        out=np.zeros_like(ask),
        where=demand_slot_t > 1e-12,
    )
    has_sales = expected_sales_slot_t > 1e-12
    cover = np.divide(stock_slot_t, expected_sales_slot_t, out=np.zeros_like(ask), where=has_sales)
    excess_cover = np.where(
        has_sales,
        np.clip(cover / target_cover_months - 1.0, -1.0, 1.0),
        (stock_slot_t > 1e-9).astype(float),
    )
    pressure = np.clip(unmet_share - excess_cover, -1.0, 1.0)
    anchor = np.log(np.maximum(target_usd_per_kg, 1e-9) / ask) * anchor_rate
    new = ask * np.exp(rate * pressure + anchor)
    return np.maximum(new, floor_usd_per_kg)


def slot_index(node: np.ndarray, product: int | np.ndarray) -> np.ndarray:
    """Offer slot of (node, product)."""
    return node * NP + product
