"""Intertemporal deferral: buyers postpone purchases they expect to cost less next month (ODD 7.2).

When a tariff cut has been announced (``governments[].tariffs[].announced``), buying now on
the links it covers costs more than buying next month. A buyer then postpones the part of its
order it would normally place on those links (its established purchase shares) down to the
least order that keeps a safety cover when it lands (stock and supply line against use over the
lead time): no precautionary build-up at a price about to fall. What it still needs it orders as
usual. The share postponed follows the buyers' logit on landed cost (``price_sensitivity``):
``1 - exp(-beta x saving)``, the saving being next month's landed cost below this month's, net
of a month's cost of capital, relative to the product's reference price. Importers did this in
April-May 2025, when the US tariff on Chinese goods stood at 145 % and fell to 30 % from 14 May
(US-TARIFF-2025): US imports from China collapsed and rebounded in June (CNEXP-2025-JUN).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from sim.prices import border_rent

if TYPE_CHECKING:
    from sim.model import SupplyChainModel


def defer_orders(model: SupplyChainModel) -> None:
    """Cut this month's orders by the purchases buyers postpone (``model.deferred_t``, t).

    Reads the orders and expected use set by ``place_orders``; the tariff outlook comes from
    the policy set (announced changes only). Without an announced cut nothing changes.
    """
    n = model.nodes.n
    model.deferred_t = np.zeros(n)
    links = model.links
    if links.n == 0:
        return
    change = model.policies.tariff_outlook(model)
    if not (change < 0).any():
        return
    s, b, terms = model.state, model.world.behaviour, model.policies.terms
    fin = model.world.finance
    price = s.ask.reshape(-1)[links.slot] + border_rent(model)
    levy = terms.tariff + terms.duty
    landed_now = price * (1.0 + levy) + links.transport_usd_per_kg
    landed_next = price * (1.0 + levy + change) + links.transport_usd_per_kg
    carry = (fin.risk_free_rate_per_yr + fin.base_risk_premium_per_yr) / 12.0
    saving = np.maximum(landed_now - landed_next * (1.0 + carry), 0.0)
    saving /= model.ref_price[links.product]
    postpone = -np.expm1(-b.price_sensitivity * saving)
    share = np.minimum(np.bincount(links.dst, model.relationship * postpone, minlength=n), 1.0)
    # the least order that keeps a safety cover when it lands (use over the lead time)
    use = model.expected_use_t
    need = use * (np.maximum(s.lead_mean, 1.0) + b.deferral_safety_cover_months)
    least = np.maximum(need - s.inv_in - s.pipeline, 0.0)
    model.deferred_t = share * np.maximum(model.orders - least, 0.0)
    model.orders -= model.deferred_t
