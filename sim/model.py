"""The supply-chain model: the monthly schedule (construction: sim.build; state: sim.state)."""

from __future__ import annotations

import heapq

import mesa
import numpy as np

from sim import payments
from sim.agents import OEM, Converter, Mine, Recycler
from sim.arrays import full
from sim.build import assemble
from sim.calendar import parse_month
from sim.deferral import defer_orders
from sim.expectations import update_expectations
from sim.finance import complete, invest, settle, track_risk
from sim.ledger import Capacity, Delivery, Transfer, stocks_now, tally_ndpr, tonnes_by_product
from sim.market import clear
from sim.network import NP
from sim.prices import border_rent, price_index, set_prices
from sim.recorder import Recorder
from sim.state import MonthTally, State
from sim.world import World

__all__ = ["MonthTally", "State", "SupplyChainModel"]


class SupplyChainModel(mesa.Model):
    """The NdPr supply chain as a Mesa model, stepping one month at a time.

    Args:
        world: A validated world.
        rng: Seed (int) or numpy Generator; the model's only source of randomness.
        start: First recorded month (``YYYY-MM``); defaults to the world calendar.
        end: Last month; defaults to the world calendar.
        record: Whether to keep monthly records (off for pure throughput benchmarks).
    """

    def __init__(
        self,
        world: World,
        *,
        rng: int | np.random.Generator | None = 0,
        start: str | None = None,
        end: str | None = None,
        record: bool = True,
    ):
        super().__init__(rng=rng)
        self.world = world
        self.start_abs = parse_month(start or world.calendar.start)
        self.end_abs = parse_month(end or world.calendar.end)
        if self.end_abs < self.start_abs:
            raise ValueError(f"end {end} is before start {start}")
        self.n_months = self.end_abs - self.start_abs + 1
        self.month_abs = self.start_abs
        self.tau = 0  # months stepped, spin-up included
        self.month = MonthTally()
        assemble(self, record=record)
        self.recorder: Recorder | None = None
        self._spin_up(world.calendar.spinup_months)
        self.recorder = Recorder(self) if record else None

    # ------------------------------------------------------------------ helpers
    def available_capacity_t(self, idx: np.ndarray) -> np.ndarray:
        """This month's usable capacity (t) of firms ``idx`` (online, minus outages)."""
        s = self.state
        return s.cap[idx] / 12.0 * s.online[idx] * s.outage_factor[idx]

    def end_of_life_magnets_t(self) -> np.ndarray:
        """Magnets reaching end of life this month, by region (t magnet)."""
        rows = (self.tau - self._eol_lag) % self._eol_h
        hist = self._eol_hist
        # hist[rows[k], :, k] for each sector k, as (sector, region), summed over sectors
        at = rows[:, None] * (hist.size // hist.shape[0]) + self._eol_at
        return hist.reshape(-1)[at].sum(axis=0)

    def record_use(self, idx: np.ndarray, use_t: np.ndarray) -> None:
        """Remember magnets put into use this month (for end-of-life flows later)."""
        row = self._eol_hist[self.tau % self._eol_h]
        row.fill(0.0)
        row.ravel()[:] = np.bincount(self._eol_slot[idx], use_t, minlength=row.size)

    def add_project(self, month: int, node: int, delta_t_per_yr: float, origin: str) -> None:
        """Schedule a capacity change of firm ``node`` at absolute ``month``.

        Args:
            month: Absolute month index (``sim.calendar.parse_month``) it comes online.
            node: Firm index.
            delta_t_per_yr: Capacity added (negative: removed), t output per year.
            origin: Label recorded with the change (e.g. ``"vault"``, ``"grant"``).
        """
        heapq.heappush(
            self.projects,
            (int(month), int(node), self._project_seq, float(delta_t_per_yr), origin),
        )
        self._project_seq += 1

    def add_projects(
        self, months: np.ndarray, nodes: np.ndarray, delta_t_per_yr: np.ndarray, origin: str
    ) -> None:
        """Schedule many capacity changes at once (as :meth:`add_project`, in array order)."""
        seq = self._project_seq
        rows = zip(
            months.tolist(),
            nodes.tolist(),
            range(seq, seq + len(months)),
            np.asarray(delta_t_per_yr, float).tolist(),
            [origin] * len(months),
            strict=True,
        )
        self.projects.extend(rows)  # sequence numbers are unique: the pop order is the same
        heapq.heapify(self.projects)
        self._project_seq += len(months)

    def _update_unit_cost(self) -> None:
        s = self.state
        s.unit_cost[:] = s.conv_cost + s.buy_price_ema * s.in_ratio

    def agent(self, node_id: str) -> mesa.Agent:
        """The agent with this node id."""
        return self.agent_of[self.nodes.ids.index(node_id)]

    # ------------------------------------------------------------------ phases
    def _spin_up(self, months: int) -> None:
        self._spinning = True
        self.ledger.month_row = -1  # spin-up payments move balances but are not reported
        for _ in range(months):
            self._month()
        self._spinning = False
        self.ledger.mark_opening()

    def step(self) -> None:
        """Advance one month: the phases of :meth:`_month`, then record."""
        if self.month_abs > self.end_abs:
            self.running = False
            return
        self.growth_factor = self._growth[self.month_abs - self.start_abs]
        self.ledger.month_row = self.recorder.t if self.recorder is not None else -1
        self._month()
        if self.recorder is not None:
            self.recorder.record(self)
        self.month_abs += 1
        if self.month_abs > self.end_abs:
            self.running = False

    def _month(self) -> None:
        """One month, phases in fixed order."""
        self.month.reset()
        self.state.reset_month()
        self.deliveries.clear()
        self.post(self.policies.update(self))  # governments set this month's instruments
        s = self.state  # planning cost: conversion cost less instruments' cuts, never negative
        np.maximum(s.op_cost - self.policies.cost_cut(self), 0.0, out=s.conv_cost)
        self.receive()
        self.build()
        self._update_unit_cost()
        Mine.produce(self)
        Recycler.collect(self)
        Converter.produce(self)  # separators, metal makers, magnet plants, recyclers
        OEM.use_magnets(self)
        if self.recorder is not None:  # NdPr flows are only counted for the record
            self.ndpr = tally_ndpr(self)
        self.place_orders()
        defer_orders(self)  # postpone purchases announced to cost less (sim.deferral)
        self.trade()
        self.pay_for_trade()
        self.post(self.policies.after_trade(self))
        self.pay_running_costs()
        self.price_index = price_index(self)
        set_prices(self)  # tatonnement, then border rents (sim.prices)
        update_expectations(self)  # and buyers' supply risk (sim.expectations)
        OEM.substitute(self)
        track_risk(self)
        settle(self)
        if not self._spinning:
            invest(self)
        self.tau += 1

    def receive(self) -> None:
        """Shipments due this month land in buyers' input stock."""
        s = self.state
        row = self.tau % self.horizon
        arriving = self.transit[row]
        if self.links.n:
            inflow = np.bincount(self.links.dst, arriving, minlength=self.nodes.n)
            s.inv_in += inflow
            s.pipeline -= inflow
            np.maximum(s.pipeline, 0.0, out=s.pipeline)
            s.feed_ndpr += np.bincount(
                self.links.dst, arriving * self.link_ndpr_share, minlength=self.nodes.n
            )
        arriving.fill(0.0)
        if not self.deliveries_pending:  # the delivery ring is empty
            return
        delivered = self.delivery[row]  # instruments' deliveries (stockpile releases)
        s.inv_in += delivered
        s.pipeline -= delivered
        np.maximum(s.pipeline, 0.0, out=s.pipeline)
        delivered.fill(0.0)
        self.deliveries_pending = bool(self.delivery.any())

    def build(self) -> None:
        """Capacity projects come online; random outages start and end."""
        s, b = self.state, self.world.behaviour
        while self.projects and self.projects[0][0] <= self.month_abs and not self._spinning:
            month, node, seq, delta, origin = heapq.heappop(self.projects)
            delta *= complete(self, seq, node)
            new = s.cap[node] <= 0.0 or not s.online[node]
            s.cap[node] = max(s.cap[node] + delta, 0.0)
            s.online[node] = True
            s.pending[node] = False
            if new:  # commissioning: a new plant plans to sell what its supply curve runs
                out = s.out_product[node]
                s.sales_ema[node, out] = max(
                    s.sales_ema[node, out], s.cap[node] / 12.0 * s.run_rate[node]
                )
            self.capacity_added.append((self.month_abs, node, delta, origin))
        if self._spinning:  # the spin-up settles stocks at start conditions: no shocks
            return
        firms, span = self.idx["firm"], self.firm_span  # span: a slice when firms are contiguous
        s.outage_left[span] = np.maximum(s.outage_left[span] - 1, 0)
        s.outage_factor[span] = np.where(s.outage_left[span] > 0, s.outage_factor[span], 1.0)
        hit = self.rng_outages.random(firms.size) < b.outage_probability_per_month
        if hit.any():
            who = firms[hit]
            s.outage_left[who] = self.rng_outages.geometric(
                1.0 / b.outage_mean_months, size=who.size
            )
            s.outage_factor[who] = 1.0 - b.outage_capacity_loss

    def place_orders(self) -> None:
        """Buyers order to cover expected use, their target cover and the supply line.

        Target cover is the normal cover scaled by ``1 + risk`` (precautionary stocks,
        ODD 7.5): buyers hoard in a scare and destock as it fades.
        """
        s, b = self.state, self.world.behaviour
        conv = self.idx["converter"]
        oem = self.idx["oem"]
        use = np.zeros(self.nodes.n)
        # inputs for the output planned this month (idle capacity creates no demand)
        use[conv] = s.plan[conv] * s.in_ratio[conv]
        use[oem] = s.demand_ema[oem]
        normal = full(self.nodes.n, b.buyer_target_cover_months)
        normal[oem] = s.target_cover[oem]
        s.cover_months[:] = normal * (1.0 + s.risk)
        self.precautionary_target_t = use * normal * s.risk  # stock wanted above normal cover
        self.expected_use_t = use
        # supply line at order time: shipments of the last (lead - 1) months are in transit
        target = use * (s.cover_months + np.maximum(s.lead_mean - 1.0, 0.0))
        self.orders = np.maximum(
            use + (target - s.inv_in - s.pipeline) / b.inventory_adjust_months, 0.0
        )
        self.orders[s.in_product < 0] = 0.0

    def trade(self) -> None:
        """Clear all markets; ship; goods enter transit for their lead time (plus delays)."""
        s, b = self.state, self.world.behaviour
        links = self.links
        # supplier qualification: a link carries at most its established share of the
        # buyer's orders plus `new_supplier_share` (switching suppliers takes time)
        orders_link = self.orders[links.dst]
        qualified = (self.relationship + b.new_supplier_share) * orders_link
        if links.n:  # the border rent on links under a binding export cap (sim.prices)
            self.link_rent = border_rent(self)
        c = clear(
            links,
            self.orders,
            s.inv_out.reshape(-1),
            s.ask.reshape(-1),
            self.policies.terms,
            self.link_rent,
            qualified,
            self.ref_price,
            b.price_sensitivity,
        )
        self.clearing = c
        s.inv_out -= c.sold_slot_t.reshape(s.inv_out.shape)
        np.maximum(s.inv_out, 0.0, out=s.inv_out)
        if links.n == 0:
            return
        if self._spinning:  # no shocks in the spin-up (see build)
            delay = 0
        else:
            delay = self.rng_shipping.random(links.n) < b.shipping_delay_probability
        # (row, link) in the raveled ring, row = (tau + lead + delay) % horizon: unique per
        # link; lead + delay < horizon, so one wrap at most (integer modulo is slow)
        at = self._link_lead_at + delay * links.n
        at += (self.tau % self.horizon) * links.n
        ring = self.transit.size
        np.subtract(at, ring, out=at, where=at >= ring)
        self.transit.reshape(-1)[at] += c.shipped_t
        got = np.bincount(links.dst, c.shipped_t, minlength=self.nodes.n)
        s.pipeline += got
        paid = np.bincount(links.dst, c.shipped_t * c.landed_usd_per_kg, minlength=self.nodes.n)
        lead = np.bincount(links.dst, c.shipped_t * links.lead_months, minlength=self.nodes.n)
        has = got > 1e-12
        a = b.expectation_smoothing
        got_or_1 = np.where(has, got, 1.0)  # buyers that got nothing keep their values
        ema = s.buy_price_ema
        ema[:] = np.where(has, (1 - a) * ema + a * paid / got_or_1, ema)
        ema = s.lead_mean
        ema[:] = np.where(has, (1 - a) * ema + a * lead / got_or_1, ema)
        # a link a policy closes keeps its share: qualification is not lost in a halt
        ordered = (orders_link > 1e-12) & (self.policies.terms.cap_t > 0)
        got_link = got[links.dst]
        share = np.divide(c.shipped_t, got_link, out=np.zeros(links.n), where=got_link > 1e-12)
        r = b.relationship_smoothing
        self.relationship = np.where(
            ordered, (1 - r) * self.relationship + r * share, self.relationship
        )

    def pay_for_trade(self) -> None:
        """Post the month's trade payments (:func:`sim.payments.pay_for_trade`)."""
        payments.pay_for_trade(self)

    def pay_running_costs(self) -> None:
        """Post conversion costs and magnet use (:func:`sim.payments.pay_running_costs`)."""
        payments.pay_running_costs(self)

    def post(self, effects: list[Transfer | Delivery | Capacity]) -> None:
        """Post instruments' effects.

        Transfers go to the ledger, deliveries into transit, capacity onto the project heap
        (online this month).
        """
        for e in effects:
            if isinstance(e, Capacity):
                self.add_project(self.month_abs, e.node, e.capacity_t_per_yr, e.origin)
            elif isinstance(e, Delivery):
                row = (self.tau + max(e.lead_months, 1)) % self.horizon
                np.add.at(self.delivery[row], e.nodes, e.tonnes)
                self.deliveries_pending = True
                np.add.at(self.state.pipeline, e.nodes, e.tonnes)
                self.deliveries.append(e)
            else:
                self.ledger.post(e.kind, e.payer, e.payee, e.usd)

    def delivery_stock_by_product(self) -> np.ndarray:
        """Tonnes instruments have delivered that are still in transit, per product."""
        if not self.deliveries_pending:
            return np.zeros(NP)
        inbound = self.delivery.sum(axis=0)
        buyers = self.state.in_product >= 0
        return np.bincount(self.state.in_product[buyers], inbound[buyers], minlength=NP)

    # ------------------------------------------------------------------ running
    def run(self) -> None:
        """Run to the end month (``model.run_for`` over the remaining months)."""
        self.run_for(self.end_abs - self.month_abs + 1)

    # ------------------------------------------------------------------ stocks
    def inventory_by_product(self) -> np.ndarray:
        """Total stock per product: firms' input and output stocks, transit, stockpiles."""
        return tonnes_by_product(self, stocks_now(self))

    def policies_stock_by_product(self) -> np.ndarray:
        """Stock held by policy instruments (strategic stockpiles), per product."""
        total = np.zeros(NP)
        for ins in self.policies.instruments:
            stock = getattr(ins, "stock_by_product", None)
            if stock is not None:
                total += stock()
        return total
