"""The supply-chain model: Mesa model, state arrays and the monthly phase order."""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

import mesa
import numpy as np
from mesa.discrete_space import Network

from sim.agents import OEM, ROLE_CLASSES, Converter, Government, Mine, Recycler
from sim.calendar import parse_month
from sim.market import adjust_prices, clear
from sim.network import (
    INPUT,
    NP,
    OUTPUTS,
    ROLES,
    Links,
    Nodes,
    P,
    build_graph,
    build_links,
    stage_layout,
)
from sim.network import make_links as choose_links
from sim.policies import PolicySet, Tariffs
from sim.recorder import Recorder
from sim.world import PRODUCTS, SECTORS, World


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
        self.conv_cost = z()  # usd/kg output, excl. inputs
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
        self.input_bound = np.zeros(n, bool)
        self.plan = z()  # output planned this month (before input limits), t

    def reset_month(self) -> None:
        """Zero the per-month flow arrays."""
        self.produced.fill(0.0)
        self.consumed.fill(0.0)
        self.collected.fill(0.0)
        self.shortage.fill(0.0)


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
        self._build_nodes()
        self._build_network()
        self._build_state()
        self._build_demand()
        self._build_projects()
        self.governments = [Government(self, g.region, g.name) for g in world.governments]
        self.policies = self._build_policies()
        self.recorder: Recorder | None = None
        self._spin_up(world.calendar.spinup_months)
        self.recorder = Recorder(self) if record else None

    # ------------------------------------------------------------------ construction
    def _build_nodes(self) -> None:
        w = self.world
        tables = w.firm_tables()
        rows: list[tuple[str, object]] = []
        for role in ROLES[:-1]:
            rows += [(role, spec) for spec in sorted(tables[role], key=lambda s: s.id)]
        rows += [("oem", spec) for spec in sorted(w.oems, key=lambda s: s.id)]
        regions = sorted({spec.region for _, spec in rows} | {g.region for g in w.governments})
        self.node_specs = [spec for _, spec in rows]
        self.nodes = Nodes(
            ids=tuple(spec.id for _, spec in rows),
            role=np.array([ROLES.index(r) for r, _ in rows], np.int64),
            region=np.array([regions.index(spec.region) for _, spec in rows], np.int64),
            regions=tuple(regions),
            in_product=np.array([P[INPUT[r]] if INPUT[r] else -1 for r, _ in rows], np.int64),
        )
        self.idx: dict[str, np.ndarray] = {
            r: np.flatnonzero(self.nodes.role == k) for k, r in enumerate(ROLES)
        }
        self.idx["firm"] = np.flatnonzero(self.nodes.role != ROLES.index("oem"))
        self.idx["buyer"] = np.flatnonzero(self.nodes.in_product >= 0)
        self.idx["converter"] = np.flatnonzero(
            (self.nodes.in_product >= 0) & (self.nodes.role != ROLES.index("oem"))
        )
        self.agent_of: list[mesa.Agent] = []
        for i, (role, spec) in enumerate(rows):
            cls = ROLE_CLASSES[role]
            self.agent_of.append(cls(self, i, spec.id, spec.name, spec.region))

    def _build_network(self) -> None:
        src, dst, prod = choose_links(self.nodes, self.world.network, self.rng)
        self.links: Links = build_links(self.nodes, self.world.network, src, dst, prod)
        names = {spec.id: spec.name for spec in self.node_specs}
        self.graph = build_graph(self.nodes, self.links, names)
        # deterministic layout: stage order left to right, agents spread within a stage
        self.layout = stage_layout(self.nodes)
        self.space = Network(self.graph, random=self.random, layout=self.layout)
        for agent in self.agent_of:
            agent.cell = self.space[agent.node_id]
        lead_sum = np.bincount(self.links.dst, self.links.lead_months, minlength=self.nodes.n)
        lead_cnt = np.bincount(self.links.dst, minlength=self.nodes.n)
        self.horizon = int(self.links.lead_months.max(initial=1)) + 2
        self.transit = np.zeros((self.horizon, self.links.n))
        self.relationship = np.zeros(self.links.n)  # link's share of the buyer's purchases
        self.link_rent = np.zeros(self.links.n)  # usd/kg premium of a binding link cap
        self._lead_mean = np.divide(
            lead_sum, lead_cnt, out=np.ones(self.nodes.n), where=lead_cnt > 0
        )
        share = np.zeros(self.links.n)
        mines = self.idx["mine"]
        mine_share = np.zeros(self.nodes.n)
        mine_share[mines] = [self.node_specs[i].ndpr_share for i in mines]
        conc = self.links.product == P["concentrate"]
        share[conc] = mine_share[self.links.src[conc]]
        self.link_ndpr_share = share
        self.sell_slots = self._seller_slots()
        dom_name = self.world.market.domestic_region
        dom = self.nodes.regions.index(dom_name) if dom_name in self.nodes.regions else -1
        self._seller_dom = self.nodes.region[self.sell_slots // NP] == dom
        self._link_foreign = self.nodes.region[self.links.dst] != dom

    def _seller_slots(self) -> np.ndarray:
        role_names = [ROLES[r] for r in self.nodes.role]
        slots = [i * NP + P[p] for i, r in enumerate(role_names) for p in OUTPUTS[r]]
        return np.array(sorted(slots), np.int64)

    def _build_state(self) -> None:
        w, b, n = self.world, self.world.behaviour, self.nodes.n
        s = self.state = State(n)
        s.region[:] = self.nodes.region
        s.in_product[:] = self.nodes.in_product
        s.lead_mean[:] = self._lead_mean
        price0 = np.array([w.market.initial_price_usd_per_kg[p] for p in PRODUCTS])
        self.ref_price = price0.copy()
        self.price_index = (price0.copy(), np.full(NP, np.nan))
        s.ask[:] = price0
        mines = self.idx["mine"]
        sold_share = np.array([self.node_specs[i].ndpr_share for i in mines]) if mines.size else []
        cap_weights = np.array([self.node_specs[i].capacity_t_per_yr for i in mines])
        avg_share = (
            float(np.average(sold_share, weights=cap_weights))
            if mines.size and cap_weights.sum() > 0
            else 0.2
        )
        for i, spec in enumerate(self.node_specs):
            role = ROLES[self.nodes.role[i]]
            if role == "oem":
                continue
            s.out_product[i] = P[OUTPUTS[role][0]]
            s.cap[i] = spec.capacity_t_per_yr
            s.online[i] = spec.online is None or parse_month(spec.online) <= self.start_abs
            s.conv_cost[i] = spec.unit_cost_usd_per_kg
            s.expandable[i] = spec.expandable
            if role == "separator":
                s.recovery[i] = spec.recovery
                s.feed_share0[i] = avg_share
                s.in_ratio[i] = 1.0 / (avg_share * spec.recovery)
            elif role in ("metal_maker", "magnet_plant", "recycler"):
                s.in_ratio[i] = spec.input_t_per_t
            if role == "magnet_plant":
                s.scrap_ratio[i] = spec.scrap_t_per_t
            if role == "recycler":
                s.collection_rate[i] = spec.collection_rate
        # recyclers share their region's end-of-life flow by capacity
        rec = self.idx["recycler"]
        for r in np.unique(s.region[rec]):
            members = rec[s.region[rec] == r]
            caps = s.cap[members]
            s.collect_share[members] = caps / caps.sum() if caps.sum() > 0 else 1 / members.size
        self._balanced_start(avg_share)
        self._fill_supply_lines()
        self._markup = np.array([b.markup.get(ROLES[r], 0.0) for r in self.nodes.role], dtype=float)
        self._update_unit_cost()

    def _balanced_start(self, avg_share: float) -> None:
        """Set initial flows consistent with start-year demand.

        Each stage's required output, from magnets back to concentrate, is spread over its
        online firms pro rata to capacity (capped at capacity); stocks start at their target
        cover.
        """
        s, b = self.state, self.world.behaviour
        need = sum(self.node_specs[i].demand_t_per_yr for i in self.idx["oem"]) / 12.0
        cap_m = s.cap / 12.0 * s.online

        def spread(idx: np.ndarray, required: float) -> np.ndarray:
            total = cap_m[idx].sum()
            share = required / total if total > 0 else 0.0
            out = cap_m[idx] * min(share, 1.0)
            s.prod_ema[idx] = out
            s.plan[idx] = out
            return out

        mag = spread(self.idx["magnet_plant"], need)
        mag_use = float((mag * s.in_ratio[self.idx["magnet_plant"]]).sum())
        metal = spread(self.idx["metal_maker"], mag_use)
        oxide_need = float((metal * s.in_ratio[self.idx["metal_maker"]]).sum())
        rec = self.idx["recycler"]
        scrap = float((mag * s.scrap_ratio[self.idx["magnet_plant"]]).sum())
        rec_share = cap_m[rec] / cap_m[rec].sum() if cap_m[rec].sum() > 0 else cap_m[rec]
        rec_out = np.minimum(cap_m[rec], scrap * rec_share / np.maximum(s.in_ratio[rec], 1e-9))
        s.prod_ema[rec] = rec_out
        sep = spread(self.idx["separator"], max(oxide_need - float(rec_out.sum()), 0.0))
        spread(self.idx["mine"], float((sep * s.in_ratio[self.idx["separator"]]).sum()))
        for i in self.idx["firm"]:
            monthly = s.prod_ema[i]
            out = s.out_product[i]
            s.sales_ema[i, out] = monthly
            s.inv_out[i, out] = b.seller_target_cover_months * monthly
            if ROLES[self.nodes.role[i]] == "magnet_plant":
                s.sales_ema[i, P["scrap"]] = monthly * s.scrap_ratio[i]
            if s.in_product[i] >= 0:
                s.inv_in[i] = b.buyer_target_cover_months * monthly * s.in_ratio[i]
                s.buy_price_ema[i] = self.ref_price[s.in_product[i]]
            if ROLES[self.nodes.role[i]] == "separator":
                s.feed_ndpr[i] = s.inv_in[i] * avg_share

    def _fill_supply_lines(self) -> None:
        """Start with goods in transit as if the initial flows had run for their lead times.

        Each buyer's expected use is split over its links by sellers' sales and landed cost.
        """
        s, links, b = self.state, self.links, self.world.behaviour
        if links.n == 0:
            return
        use = np.zeros(self.nodes.n)
        conv = self.idx["converter"]
        use[conv] = s.prod_ema[conv] * s.in_ratio[conv]
        oem = self.idx["oem"]
        use[oem] = [self.node_specs[i].demand_t_per_yr / 12.0 for i in oem]
        landed = s.ask.reshape(-1)[links.slot] + links.transport_usd_per_kg
        rel = landed / self.ref_price[links.product]
        w = s.sales_ema.reshape(-1)[links.slot] * np.exp(-b.price_sensitivity * rel)
        tot = np.bincount(links.dst, w, minlength=self.nodes.n)
        flow = np.divide(w, tot[links.dst], out=np.zeros(links.n), where=tot[links.dst] > 0)
        flow *= use[links.dst]
        for k in range(int(links.lead_months.max())):
            self.transit[k % self.horizon] += np.where(links.lead_months > k, flow, 0.0)
        s.pipeline[:] = np.bincount(links.dst, flow * links.lead_months, minlength=self.nodes.n)
        self.relationship = np.divide(
            flow, use[links.dst], out=np.zeros(links.n), where=use[links.dst] > 0
        )
        got = np.bincount(links.dst, flow, minlength=self.nodes.n)
        s.lead_mean[:] = np.divide(s.pipeline, got, out=s.lead_mean.copy(), where=got > 0)

    def _build_demand(self) -> None:
        w, s = self.world, self.state
        oems = self.idx["oem"]
        p_mag = w.market.initial_price_usd_per_kg["magnet"]
        for i in oems:
            spec = self.node_specs[i]
            sec = w.sectors[spec.sector]
            s.sector[i] = SECTORS.index(spec.sector)
            s.base_demand[i] = spec.demand_t_per_yr / 12.0
            s.elasticity[i] = sec.price_elasticity
            s.theta_max[i] = sec.substitution_max
            s.price_ref[i] = p_mag
            s.buy_price_ema[i] = p_mag
            s.target_cover[i] = spec.target_cover_months
            s.demand_ema[i] = s.base_demand[i]
            s.inv_in[i] = spec.target_cover_months * s.base_demand[i]
        # demand growth factor by month and sector, relative to the start month
        mult = w.behaviour.demand_growth_multiplier
        months = np.arange(self.start_abs, self.end_abs + 1)
        rates = np.zeros((months.size, len(SECTORS)))
        for k, name in enumerate(SECTORS):
            sec = w.sectors.get(name)
            if sec is None:
                continue
            for year, rate in sec.growth:
                rates[months // 12 >= year, k] = rate * mult
        monthly = np.power(1.0 + rates, 1.0 / 12.0)
        gf = np.cumprod(monthly, axis=0) / monthly[0]
        self._growth = gf
        self.growth_factor = gf[0]
        # end-of-life history ring: magnets put into use by (region, sector), back-cast
        lifetimes = np.array(
            [round(w.sectors[n].lifetime_years * 12) if n in w.sectors else 1 for n in SECTORS]
        )
        self._eol_lag = lifetimes
        self._eol_h = int(lifetimes.max()) + 1
        n_reg = len(self.nodes.regions)
        hist = np.zeros((self._eol_h, n_reg, len(SECTORS)))
        base = np.zeros((n_reg, len(SECTORS)))
        np.add.at(base, (s.region[oems], s.sector[oems]), s.base_demand[oems])
        first_rate = rates[0] / mult if mult > 0 else rates[0]
        for k in range(1, self._eol_h):
            hist[(-k) % self._eol_h] = base * np.power(1.0 + first_rate, -k / 12.0)
        self._eol_hist = hist
        self._eol_slot = s.region * len(SECTORS) + s.sector

    def _build_projects(self) -> None:
        index = {nid: i for i, nid in enumerate(self.nodes.ids)}
        # a heap of (month, node, sequence, delta_t_per_yr, origin): cheap to add to, popped
        # in (month, node, insertion) order
        self.projects: list[tuple[int, int, int, float, str]] = []
        self._project_seq = 0
        for p in self.world.projects:
            self.add_project(parse_month(p.online), index[p.firm], p.capacity_t_per_yr, "planned")
        for i, spec in enumerate(self.node_specs):
            if getattr(spec, "online", None) and not self.state.online[i]:
                self.add_project(parse_month(spec.online), i, 0.0, "start")
        self.capacity_added = []  # (month, node, delta, origin) applied

    def _build_policies(self) -> PolicySet:
        instruments = []
        for gov, spec in zip(self.governments, self.world.governments, strict=True):
            if spec.tariffs:
                tariffs = Tariffs(self, spec.region, spec.tariffs)
                gov.instruments.append(tariffs)
                instruments.append(tariffs)
        from sim.policies.registry import build_instruments

        instruments += build_instruments(self, self.world.policies)
        return PolicySet(instruments)

    # ------------------------------------------------------------------ helpers
    def available_capacity_t(self, idx: np.ndarray) -> np.ndarray:
        """This month's usable capacity (t) of firms ``idx`` (online, minus outages)."""
        s = self.state
        return s.cap[idx] / 12.0 * s.online[idx] * s.outage_factor[idx]

    def end_of_life_magnets_t(self) -> np.ndarray:
        """Magnets reaching end of life this month, by region (t magnet)."""
        rows = (self.tau - self._eol_lag) % self._eol_h
        return self._eol_hist[rows, :, np.arange(len(SECTORS))].sum(axis=0)

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

    def _update_unit_cost(self) -> None:
        s = self.state
        s.unit_cost[:] = s.conv_cost + s.buy_price_ema * s.in_ratio

    def agent(self, node_id: str) -> mesa.Agent:
        """The agent with this node id."""
        return self.agent_of[self.nodes.ids.index(node_id)]

    # ------------------------------------------------------------------ phases
    def _spin_up(self, months: int) -> None:
        self._spinning = True
        for _ in range(months):
            self._month()
        self._spinning = False
        # the spin-up's shocks do not carry into the recorded period
        self.state.outage_factor.fill(1.0)
        self.state.outage_left.fill(0)

    def step(self) -> None:
        """Advance one month: the phases of :meth:`_month`, then record."""
        if self.month_abs > self.end_abs:
            self.running = False
            return
        self.growth_factor = self._growth[self.month_abs - self.start_abs]
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
        self.policies.update(self)  # governments set this month's instruments
        self.receive()
        self.build()
        self._update_unit_cost()
        Mine.produce(self)
        Recycler.collect(self)
        Converter.produce(self)  # separators, metal makers, magnet plants, recyclers
        OEM.use_magnets(self)
        self.place_orders()
        self.trade()
        self.policies.after_trade(self)
        self.price_index = self._price_index()
        self.set_prices()
        self.update_expectations()
        OEM.substitute(self)
        if not self._spinning:
            self.invest()
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

    def build(self) -> None:
        """Capacity projects come online; random outages start and end."""
        s, b = self.state, self.world.behaviour
        while self.projects and self.projects[0][0] <= self.month_abs and not self._spinning:
            month, node, _, delta, origin = heapq.heappop(self.projects)
            s.cap[node] = max(s.cap[node] + delta, 0.0)
            s.online[node] = True
            s.pending[node] = False
            self.capacity_added.append((self.month_abs, node, delta, origin))
        firms = self.idx["firm"]
        s.outage_left[firms] = np.maximum(s.outage_left[firms] - 1, 0)
        s.outage_factor[firms] = np.where(s.outage_left[firms] > 0, s.outage_factor[firms], 1.0)
        hit = self.rng.random(firms.size) < b.outage_probability_per_month
        if hit.any():
            who = firms[hit]
            s.outage_left[who] = self.rng.geometric(1.0 / b.outage_mean_months, size=who.size)
            s.outage_factor[who] = 1.0 - b.outage_capacity_loss

    def place_orders(self) -> None:
        """Buyers order to cover expected use, target cover and the supply line."""
        s, b = self.state, self.world.behaviour
        conv = self.idx["converter"]
        oem = self.idx["oem"]
        use = np.zeros(self.nodes.n)
        # inputs for the output planned this month (idle capacity creates no demand)
        use[conv] = s.plan[conv] * s.in_ratio[conv]
        use[oem] = s.demand_ema[oem]
        cover = np.full(self.nodes.n, b.buyer_target_cover_months)
        cover[oem] = s.target_cover[oem]
        target = use * (cover + s.lead_mean)
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
        qualified = (self.relationship + b.new_supplier_share) * self.orders[links.dst]
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
        delay = self.rng.random(links.n) < b.shipping_delay_probability
        arrive = (self.tau + links.lead_months + delay) % self.horizon
        np.add.at(self.transit, (arrive, np.arange(links.n)), c.shipped_t)
        got = np.bincount(links.dst, c.shipped_t, minlength=self.nodes.n)
        s.pipeline += got
        paid = np.bincount(links.dst, c.shipped_t * c.landed_usd_per_kg, minlength=self.nodes.n)
        lead = np.bincount(links.dst, c.shipped_t * links.lead_months, minlength=self.nodes.n)
        has = got > 1e-12
        a = b.expectation_smoothing
        s.buy_price_ema[has] = (1 - a) * s.buy_price_ema[has] + a * paid[has] / got[has]
        s.lead_mean[has] = (1 - a) * s.lead_mean[has] + a * lead[has] / got[has]
        ordered = self.orders[links.dst] > 1e-12
        share = np.divide(
            c.shipped_t, got[links.dst], out=np.zeros(links.n), where=got[links.dst] > 1e-12
        )
        r = b.relationship_smoothing
        self.relationship = np.where(
            ordered, (1 - r) * self.relationship + r * share, self.relationship
        )

    def _price_index(self) -> tuple[np.ndarray, np.ndarray]:
        """Market prices per product, China-domestic and ex-China.

        ``china`` = domestic sellers' asks weighted by this month's sales; ``world`` =
        landed prices paid by buyers outside the domestic region, weighted by tonnes
        (without such trade: the cheapest landed offer with stock). Carried forward when
        there is neither.
        """
        c, links, s = self.clearing, self.links, self.state
        slots = self.sell_slots
        prod = slots % NP
        ask = s.ask.reshape(-1)[slots]
        sold = c.sold_slot_t[slots]
        dom = self._seller_dom
        last_c, last_w = self.price_index
        w = np.bincount(prod[dom], sold[dom], minlength=NP)
        v = np.bincount(prod[dom], sold[dom] * ask[dom], minlength=NP)
        cnt = np.bincount(prod[dom], minlength=NP)
        mean_ask = np.divide(
            np.bincount(prod[dom], ask[dom], minlength=NP), cnt, out=last_c.copy(), where=cnt > 0
        )
        china = np.where(w > 1e-9, v / np.maximum(w, 1e-300), mean_ask)
        f = self._link_foreign
        tw = np.bincount(links.product[f], c.shipped_t[f], minlength=NP)
        tv = np.bincount(links.product[f], c.shipped_t[f] * c.landed_usd_per_kg[f], minlength=NP)
        avail = f & (s.inv_out.reshape(-1)[links.slot] > 1e-9)
        cheapest = np.full(NP, np.inf)
        np.minimum.at(cheapest, links.product[avail], c.landed_usd_per_kg[avail])
        quote = np.where(np.isfinite(cheapest), cheapest, last_w)
        world = np.where(tw > 1e-9, tv / np.maximum(tw, 1e-300), quote)
        return china, world

    def set_prices(self) -> None:
        """Sellers adjust asks: market pressure plus pull toward cost-plus."""
        s, b = self.state, self.world.behaviour
        slots = self.sell_slots
        node = slots // NP
        prod = slots % NP
        main = prod == s.out_product[node]
        cap_m = s.cap[node] / 12.0 * s.online[node]
        util = np.divide(s.prod_ema[node], cap_m, out=np.zeros(slots.size), where=cap_m > 0)
        markup = self._markup[node] + b.markup_utilisation_slope * (util - b.reference_utilisation)
        cost = s.unit_cost[node]
        scrap_target = b.scrap_payable_share * self.price_index[0][P["oxide"]]
        target = np.where(main, cost * (1.0 + markup), scrap_target)
        anchor = np.where(
            main, np.where(cost > 0, b.price_anchor_rate, 0.0), b.scrap_price_anchor_rate
        )
        floor = np.where(main, b.price_floor_cost_share * cost, 0.05 * self.ref_price[prod])
        ask = s.ask.reshape(-1)
        # a seller short of inputs passes input costs on but adds no scarcity premium
        demand = np.where(
            s.input_bound[node],
            self.clearing.sold_slot_t[slots],
            self.clearing.demand_slot_t[slots],
        )
        ask[slots] = adjust_prices(
            ask[slots],
            demand,
            self.clearing.sold_slot_t[slots],
            s.inv_out.reshape(-1)[slots],
            s.sales_ema.reshape(-1)[slots],
            target,
            anchor,
            b.seller_target_cover_months,
            b.price_adjust_rate,
            floor,
        )

    def update_expectations(self) -> None:
        """Exponential smoothing of sales, production, demand and margins."""
        s, a = self.state, self.world.behaviour.expectation_smoothing
        sales = s.sales_ema.reshape(-1)
        slots = self.sell_slots
        # expected sales follow the orders received (not only what could be delivered)
        sales[slots] = (1 - a) * sales[slots] + a * self.clearing.demand_slot_t[slots]
        firms = self.idx["firm"]
        s.prod_ema[firms] = (1 - a) * s.prod_ema[firms] + a * s.produced[firms]
        oem = self.idx["oem"]
        s.demand_ema[oem] = (1 - a) * s.demand_ema[oem] + a * s.demand[oem]
        cost = s.unit_cost[firms]
        price = self.policies.price_received(self, firms, s.ask[firms, s.out_product[firms]])
        margin = np.divide(price - cost, cost, out=np.zeros(firms.size), where=cost > 0)
        s.margin_ema[firms] = (1 - a / 3) * s.margin_ema[firms] + (a / 3) * margin

    def invest(self) -> None:
        """Each January firms expand on sustained margins and high use, or cut capacity."""
        if self.month_abs % 12 != 0:
            return
        s, b = self.state, self.world.behaviour
        firms = self.idx["firm"]
        cap_m = s.cap[firms] / 12.0
        util = np.divide(s.prod_ema[firms], cap_m, out=np.zeros(firms.size), where=cap_m > 0)
        grow = (
            s.expandable[firms]
            & s.online[firms]
            & ~s.pending[firms]
            & (s.cap[firms] > 0)
            & (util > b.investment_utilisation_trigger)
            & (s.margin_ema[firms] > self._markup[firms] + b.investment_hurdle_margin)
        )
        who = firms[grow]
        if who.size:
            mean = np.array([b.lead_time_years[ROLES[self.nodes.role[i]]] for i in who]) * 12
            lead = np.maximum(
                np.round(mean * np.exp(self.rng.normal(0.0, b.lead_time_sd_log, who.size))), 1
            ).astype(int)
            for i, months in zip(who.tolist(), lead.tolist(), strict=True):
                delta = b.expansion_step * float(s.cap[i])
                self.add_project(self.month_abs + months, i, delta, "expansion")
                s.pending[i] = True
        shrink = firms[
            s.online[firms] & (s.cap[firms] > 0) & (s.margin_ema[firms] < b.closure_margin)
        ]
        if shrink.size:
            delta = -b.closure_step * s.cap[shrink]
            s.cap[shrink] += delta
            for i, d in zip(shrink.tolist(), delta.tolist(), strict=True):
                self.capacity_added.append((self.month_abs, i, d, "closure"))

    # ------------------------------------------------------------------ running
    def run(self) -> None:
        """Run to the end month (``model.run_for`` over the remaining months)."""
        self.run_for(self.end_abs - self.month_abs + 1)

    # ------------------------------------------------------------------ stocks
    def inventory_by_product(self) -> np.ndarray:
        """Total stock per product: firms' input and output stocks, transit, stockpiles."""
        s = self.state
        inv = s.inv_out.sum(axis=0)
        buyers = s.in_product >= 0
        inv += np.bincount(s.in_product[buyers], s.inv_in[buyers], minlength=NP)
        inv += np.bincount(self.links.product, self.transit.sum(axis=0), minlength=NP)
        inv += self.policies_stock_by_product()
        return inv

    def policies_stock_by_product(self) -> np.ndarray:
        """Stock held by policy instruments (strategic stockpiles), per product."""
        total = np.zeros(NP)
        for ins in self.policies.instruments:
            stock = getattr(ins, "stock_by_product", None)
            if stock is not None:
                total += stock()
        return total
