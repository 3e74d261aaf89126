"""Monthly records kept as preallocated arrays; turned into tidy tables after the run."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from sim.finance import main_ask
from sim.ledger import Delivery, ndpr_stock_t, stocks_now, tonnes_by_product
from sim.network import NP, P

if TYPE_CHECKING:
    from sim.model import SupplyChainModel


class Recorder:
    """Keeps one row per month of every array the results contract needs."""

    def __init__(self, model: SupplyChainModel):
        T, n, e = model.n_months, model.nodes.n, model.links.n
        self.t = 0
        self.T = T
        f = lambda *shape: np.zeros(shape)  # noqa: E731
        self.price_china = f(T, NP)
        self.price_world = f(T, NP)
        self.cap = f(T, n)
        self.produced = f(T, n)
        self.swarf = f(T, n)
        self.collected = f(T, n)
        self.consumed = f(T, n)
        self.inv_in = f(T, n)
        self.inv_out = f(T, n, NP)
        self.ask = f(T, n)
        self.unit_cost = f(T, n)
        self.demand = f(T, n)
        self.shortage = f(T, n)
        self.theta = f(T, n)
        self._run_rate = f(T, n)  # share of capacity running
        self._outage = f(T, n)  # capacity left by outages
        self.cover_extra = f(T, n)  # buyers' target stock above normal cover (t)
        self._rent_per_kg = np.zeros((T, e), np.float64)  # border rent per kg shipped
        self.shipped = np.zeros((T, e), np.float64)
        self.landed = np.zeros((T, e), np.float64)
        self.transit_p = f(T, NP)
        self.production_p = f(T, NP)
        self.consumption_p = f(T, NP)
        self.stock_p = f(T, NP)
        self.policy_series: dict[str, np.ndarray] = {}
        self.opening_stock_p = model.inventory_by_product()
        # NdPr element (t): mined, recovered, lost (4 stages), to products, stock
        self.ndpr = f(T, 8)
        self.opening_ndpr_t = ndpr_stock_t(model)
        self.deliveries: list[tuple[int, Delivery]] = []

    def record(self, model: SupplyChainModel) -> None:
        """Copy this month's state into row ``t``."""
        t, s = self.t, model.state
        if t >= self.T:
            return
        self.price_china[t], self.price_world[t] = model.price_index
        np.multiply(s.cap, s.online, out=self.cap[t])
        self.produced[t] = s.produced
        np.multiply(s.produced, s.scrap_ratio, out=self.swarf[t])
        self.collected[t] = s.collected
        self.consumed[t] = s.consumed
        self.inv_in[t] = s.inv_in
        self.inv_out[t] = s.inv_out
        self.ask[t, model.firm_span] = main_ask(model)
        self.unit_cost[t] = s.unit_cost
        self.demand[t] = s.demand
        self.shortage[t] = s.shortage
        self.theta[t] = s.theta
        self._run_rate[t] = s.run_rate
        self._outage[t] = s.outage_factor
        self.cover_extra[t] = model.precautionary_target_t
        self._rent_per_kg[t] = model.clearing.rent_usd_per_kg
        self.shipped[t] = model.clearing.shipped_t
        self.landed[t] = model.clearing.landed_usd_per_kg
        st = stocks_now(model)
        np.add(st.transit_p, st.delivered_p, out=self.transit_p[t])
        self.production_p[t] = model.month.production_p
        self.consumption_p[t] = model.month.consumption_p
        self.stock_p[t] = tonnes_by_product(model, st)
        nd = model.ndpr
        row = self.ndpr[t]
        row[0] = nd.mined
        row[1] = nd.recovered
        row[2:6] = nd.lost
        row[6] = nd.to_products
        row[7] = ndpr_stock_t(model, st)
        if model.deliveries:
            self.deliveries += [(t, d) for d in model.deliveries]
        for ins in model.policies.instruments:
            observe = getattr(ins, "observe", None)
            if observe is not None:
                observe(model)
            series = getattr(ins, "series", None)
            if series is None:
                continue
            for key, value in series().items():
                arr = self.policy_series.setdefault(key, np.full(self.T, np.nan))
                arr[t] = value
        self.t += 1

    # series derived from recorded rows after the run (the same products, month by month)
    @property
    def running(self) -> np.ndarray:
        """Capacity running (t/yr): capacity online x run rate x what outages leave."""
        return self.cap * self._run_rate * self._outage

    @property
    def rent(self) -> np.ndarray:
        """Border rent earned per month and link (USD)."""
        return self._rent_per_kg * self.shipped * 1e3

    @property
    def buyer_stock(self) -> np.ndarray:
        """Buyers' input stock per month and node (t)."""
        return self.inv_in

    @property
    def scrap(self) -> int:
        """Index of the scrap product."""
        return P["scrap"]
