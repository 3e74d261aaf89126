"""The model's state arrays: one struct-of-arrays row per node, plus the month's tallies."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sim.network import NP


@dataclass
class MonthTally:
    """Per-product production and consumption of the current month (tonnes)."""

    production_p: np.ndarray = field(default_factory=lambda: np.zeros(NP))
    consumption_p: np.ndarray = field(default_factory=lambda: np.zeros(NP))

    def reset(self) -> None:
        """Zero the tallies."""
        self.production_p.fill(0.0)
        self.consumption_p.fill(0.0)


class State:
    """Struct-of-arrays agent state; row ``i`` belongs to node ``i`` (see :class:`Nodes`)."""

    def __init__(self, n: int):
        z = lambda: np.zeros(n)  # noqa: E731
        self.cap = z()  # installed capacity, t output / yr
        self.online = np.zeros(n, bool)
        self.outage_factor = np.ones(n)
        self.outage_left = np.zeros(n, np.int64)
        self.conv_cost = z()  # usd/kg output, excl. inputs, as firms plan (after subsidies)
        self.op_cost = z()  # usd/kg output, excl. inputs, actually paid
        self.ore_ndpr_share = z()  # mines: t NdPr oxide per t REO in their concentrate
        self.unit_cost = z()  # usd/kg output, incl. inputs at recent purchase prices
        self.in_product = np.full(n, -1, np.int64)
        self.out_product = np.full(n, -1, np.int64)
        self.region = np.zeros(n, np.int64)
        self.in_ratio = z()  # t input per t output
        self.recovery = np.ones(n)
        self.feed_share0 = z()
        self.feed_ndpr = z()  # separators: t NdPr oxide contained in input stock
        self.scrap_ratio = z()
        self.collection_rate = z()
        self.collect_share = z()
        self.expandable = np.zeros(n, bool)
        self.inv_in = z()
        self.inv_out = np.zeros((n, NP))
        self.pipeline = z()  # in transit towards the node
        self.ask = np.zeros((n, NP))
        self.sales_ema = np.zeros((n, NP))
        self.slot_demand_ema = np.zeros((n, NP))  # smoothed demand reaching each offer slot
        self.prod_ema = z()
        self.margin_ema = z()
        self.buy_price_ema = z()
        self.lead_mean = np.ones(n)
        # per-month flows (reset each month)
        self.produced = z()
        self.consumed = z()
        self.collected = z()
        # OEMs
        self.sector = np.zeros(n, np.int64)
        self.base_demand = z()  # t / month at start
        self.elasticity = z()
        self.price_ref = np.ones(n)
        self.theta = z()
        self.theta_max = z()
        self.target_cover = z()
        self.demand = z()
        self.demand_ema = z()
        self.shortage = z()
        self.pending = np.zeros(n, bool)
        self.output_bound = np.zeros(n, bool)  # output held back by inputs or a quota
        self.plan = z()  # output planned this month (before input limits), t
        # short-run supply (ODD 7.1)
        self.run_rate = np.ones(n)  # share of capacity running (ramps after idling)
        self.u0 = np.ones(n)  # supply curve: utilisation at the normal price/cost ratio
        self.normal_rel = np.ones(n)  # supply curve: normal price / unit cost
        # buyers' perceived supply risk and precautionary cover (ODD 7.5)
        self.unfilled_ema = z()  # smoothed share of own orders left unfilled
        self.unfilled_slow = z()  # what the buyer is used to (slow average of the above)
        self.price_slow = z()  # slow average of the input price paid (momentum baseline)
        self.risk = z()  # perceived supply risk (dimensionless)
        self.cover_months = z()  # target input cover in force, months of use
        self.theta_target = z()  # substitution share wanted (after the design lag)

    def reset_month(self) -> None:
        """Zero the per-month flow arrays."""
        self.produced.fill(0.0)
        self.consumed.fill(0.0)
        self.collected.fill(0.0)
        self.shortage.fill(0.0)
