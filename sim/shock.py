"""A first-principles estimate of how far a supply halt moves the ex-domestic magnet price.

ODD 7.4 derives it: sellers' prices move by tatonnement, ``log(D / S) / (e_D + e_S)`` a month
over ``price_discovery_months``. In a halt of the domestic market's magnet exports, the
ex-domestic magnet market loses its largest supplier: supply ``S`` is the ex-domestic plants'
capacity (their price runs far above cost, so they run full: ``e_S`` ~ 0), demand ``D`` is
buyers' orders once their stocks are gone (use plus the precautionary stock they try to
rebuild over ``inventory_adjust_months``), and buyers cannot switch back to the domestic
market. The sectors' own elasticities (-0.1..-0.3) would clear a cut of this size only at
thousands of times the price (the Marshallian multiple below): in a halt, demand is destroyed
by shortage, not priced out, and the peak is set by how long the excess lasts and how fast
sellers reprice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from sim.model import SupplyChainModel


@dataclass(frozen=True)
class PeakEstimate:
    """The estimate and the quantities it is built from (tonnes per month unless said).

    Attributes:
        use_t: Ex-domestic OEMs' magnet use before the shock.
        capacity_t: Magnets the ex-domestic chain can make a month (its narrowest stage):
            the supply left.
        orders_t: Ex-domestic buyers' orders once their stocks are empty.
        excess_demand: ``orders_t / capacity_t`` (``D / S``).
        months: Months the excess weighs on prices: the halt.
        peak_multiple: Estimated peak price / price before the shock.
        marshallian_multiple: The price multiple that would clear the cut at the sectors'
            own demand elasticity (for contrast).
    """

    use_t: float
    capacity_t: float
    orders_t: float
    excess_demand: float
    months: float
    peak_multiple: float
    marshallian_multiple: float


def _chain_capacity_t(model: SupplyChainModel) -> float:
    """Magnets the ex-domestic chain can make a month from its own capacity alone (t).

    Each stage outside the domestic market (NdPr oxide from separators and recyclers, metal,
    magnets) is converted to magnet tonnes through the recipes (capacity-weighted input
    ratios); the chain makes no more than its narrowest stage.
    """
    s = model.state
    out = {}
    for role in ("separator", "recycler", "metal_maker", "magnet_plant"):
        idx = model.idx[role]
        idx = idx[s.region[idx] != model._domestic]
        cap = model.available_capacity_t(idx)
        ratio = float(np.average(s.in_ratio[idx], weights=cap)) if cap.sum() > 0 else 1.0
        out[role] = (float(cap.sum()), ratio)
    magnet, per_magnet = out["magnet_plant"]
    metal, per_metal = out["metal_maker"]
    oxide = out["separator"][0] + out["recycler"][0]
    return min(magnet, metal / per_magnet, oxide / (per_metal * per_magnet))


def halt_peak_estimate(model: SupplyChainModel, halt_months: int) -> PeakEstimate:
    """Estimate the ex-domestic magnet price peak of a halt starting next month.

    Supply is what the ex-domestic chain can make (:func:`_chain_capacity_t`); demand is the
    orders of buyers whose stocks are gone and whose cover is at its precautionary maximum;
    sellers read a rise in demand at once (ODD 7.4), so the log price rises by
    ``log(D / S) / (e_D x T)`` in each month of the halt.

    Args:
        model: A model stepped to the month before the halt (no controls yet).
        halt_months: Length of the halt.

    Returns:
        The estimate with its ingredients.
    """
    s, b = model.state, model.world.behaviour
    oem = model.idx["oem"]
    ex_oem = oem[s.region[oem] != model._domestic]
    use = float(s.demand_ema[ex_oem].sum())
    cap = _chain_capacity_t(model)
    w = s.demand_ema[ex_oem]
    cover = float(np.average(s.target_cover[ex_oem], weights=w)) if use > 0 else 0.0
    lead = float(np.average(s.lead_mean[ex_oem], weights=w)) if use > 0 else 1.0
    # stocks gone, buyers at their most cautious: orders = use + (target - pipeline) / A,
    # target = use x (cover x (1 + m) + lead - 1), pipeline = what supply delivers x (lead - 1)
    scared = cover * (1.0 + b.precaution_max_extra_cover)
    gap = use * (scared + lead - 1.0) - cap * (lead - 1.0)
    orders = use + max(gap, 0.0) / b.inventory_adjust_months
    ratio = orders / cap if cap > 0 else np.inf
    rise = halt_months * np.log(max(ratio, 1.0))
    rise /= b.price_discovery_months * b.perceived_demand_elasticity
    el = np.abs(s.elasticity[ex_oem])
    eps = float(np.average(el, weights=w)) if use > 0 else 0.2
    return PeakEstimate(
        use_t=use,
        capacity_t=cap,
        orders_t=orders,
        excess_demand=ratio,
        months=float(halt_months),
        peak_multiple=float(np.exp(rise)),
        marshallian_multiple=float((cap / use) ** (-1.0 / eps)) if use > 0 and cap > 0 else np.inf,
    )
