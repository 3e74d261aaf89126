"""Building a model from a World: nodes, links, initial state, demand, projects, instruments.

Each function fills in part of a freshly created :class:`sim.model.SupplyChainModel`;
:func:`assemble` calls them in order. Nothing here runs during a simulated month.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import mesa
import numpy as np
from mesa.discrete_space import Network

from sim.agents import ROLE_CLASSES, Government
from sim.calendar import parse_month
from sim.expectations import init_expectations
from sim.finance import init_finance
from sim.ledger import KIND, Delivery, Ledger, NdprTally, ndpr_contents
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
from sim.payments import trade_layout
from sim.policies import PolicySet, Tariffs
from sim.policies.registry import build_instruments
from sim.prices import slot_layout
from sim.state import State
from sim.world import PRODUCTS, SECTORS

if TYPE_CHECKING:
    from sim.model import SupplyChainModel


def assemble(model: SupplyChainModel, *, record: bool = True) -> None:
    """Build everything the schedule needs, in dependency order."""
    build_nodes(model)
    build_network(model)
    # one child stream per kind of draw, so that a policy that adds draws of one kind (say,
    # project milestones) leaves the others (outages, shipping delays) as they were: paired
    # scenarios see the same logistics shocks (common random numbers)
    model.rng_outages, model.rng_shipping, model.rng_projects = model.rng.spawn(3)
    build_state(model)
    build_demand(model)
    init_expectations(model)
    build_projects(model)
    build_ledger(model, record)
    model.finance = init_finance(model)
    model.ndpr_contents = ndpr_contents(model)
    model.governments = [Government(model, g.region, g.name) for g in model.world.governments]
    model.policies = build_policies(model)
    model.slot_layout = slot_layout(model)


def build_ledger(model: SupplyChainModel, record: bool) -> None:
    """The ledger with its standing parties, and the ring for instruments' deliveries."""
    regions = model.nodes.regions
    led = model.ledger = Ledger(list(model.nodes.ids), model.nodes.n, record=record)
    led.month_row = 0  # set-up entries (funds' budgets) are reported in the first month
    model.gov_party = np.array([led.party(f"government:{r}") for r in regions], np.int64)
    model.households = np.array([led.party(f"households:{r}") for r in regions], np.int64)
    model.carriers = led.party("carriers")
    model.lenders = led.party("lenders")
    n_firms = model.idx["firm"].size
    model._settle_kinds = np.repeat(
        [KIND[k] for k in ("interest", "credit", "debt_repayment", "loan_repayment", "dividend")],
        n_firms,
    )
    model._owners = model.households[model.nodes.region]
    firms, lend = model.idx["firm"], np.full(n_firms, model.lenders)
    # role sets are contiguous (build_nodes): slices give views instead of gathered copies
    model.firm_span = span(firms)
    model.oem_span = span(model.idx["oem"])
    model.sep_span = span(model.idx["separator"])
    model.buyer_span = span(model.idx["buyer"])
    # each node's main offer slot (node * NP + main output; meaningless for OEMs)
    model.out_slot = np.arange(model.nodes.n) * NP + model.state.out_product
    model.main_slot = model.out_slot[firms]  # firms' main offer slots
    model._settle_payer = np.concatenate([firms, lend, firms, firms, firms])
    model._settle_payee = np.concatenate([lend, firms, lend])  # then funds, owners
    model._owners_of_firms = model._owners[firms]
    # the same with lenders in place of funds (months when no fund is repaid: zero amounts)
    model._settle_payee_lenders = np.concatenate(
        [model._settle_payee, lend, model._owners_of_firms]
    )
    model._firm_zeros = np.zeros(n_firms)  # shared by kept entries: never written
    model.trade_layout = trade_layout(model)
    model.delivery = np.zeros((model.horizon, model.nodes.n))
    model.deliveries: list[Delivery] = []
    model.deliveries_pending = False
    model.ndpr = NdprTally()


def span(idx: np.ndarray) -> slice | np.ndarray:
    """``idx`` as a slice when it is a contiguous ascending range (else ``idx`` itself)."""
    if idx.size and idx[-1] - idx[0] == idx.size - 1 and bool(np.all(np.diff(idx) == 1)):
        return slice(int(idx[0]), int(idx[-1]) + 1)
    return idx


def build_nodes(model: SupplyChainModel) -> None:
    """Nodes (firms by role, then OEMs), index sets by role and one agent per node."""
    w = model.world
    tables = w.firm_tables()
    rows: list[tuple[str, object]] = []
    for role in ROLES[:-1]:
        rows += [(role, spec) for spec in sorted(tables[role], key=lambda s: s.id)]
    rows += [("oem", spec) for spec in sorted(w.oems, key=lambda s: s.id)]
    regions = sorted({spec.region for _, spec in rows} | {g.region for g in w.governments})
    model.node_specs = [spec for _, spec in rows]
    model.nodes = Nodes(
        ids=tuple(spec.id for _, spec in rows),
        role=np.array([ROLES.index(r) for r, _ in rows], np.int64),
        region=np.array([regions.index(spec.region) for _, spec in rows], np.int64),
        regions=tuple(regions),
        in_product=np.array([P[INPUT[r]] if INPUT[r] else -1 for r, _ in rows], np.int64),
    )
    model.idx: dict[str, np.ndarray] = {
        r: np.flatnonzero(model.nodes.role == k) for k, r in enumerate(ROLES)
    }
    model.idx["firm"] = np.flatnonzero(model.nodes.role != ROLES.index("oem"))
    model.idx["buyer"] = np.flatnonzero(model.nodes.in_product >= 0)
    model.idx["converter"] = np.flatnonzero(
        (model.nodes.in_product >= 0) & (model.nodes.role != ROLES.index("oem"))
    )
    model.agent_of: list[mesa.Agent] = []
    for i, (role, spec) in enumerate(rows):
        cls = ROLE_CLASSES[role]
        model.agent_of.append(cls(model, i, spec.id, spec.name, spec.region))


def build_network(model: SupplyChainModel) -> None:
    """Trade links, the Mesa network space, transit ring and per-link NdPr shares."""
    src, dst, prod = choose_links(model.nodes, model.world.network, model.rng)
    model.links: Links = build_links(model.nodes, model.world.network, src, dst, prod)
    names = {spec.id: spec.name for spec in model.node_specs}
    model.graph = build_graph(model.nodes, model.links, names)
    # deterministic layout: stage order left to right, agents spread within a stage
    model.layout = stage_layout(model.nodes)
    model.space = Network(model.graph, random=model.random, layout=model.layout)
    for agent in model.agent_of:
        agent.cell = model.space[agent.node_id]
    lead_sum = np.bincount(model.links.dst, model.links.lead_months, minlength=model.nodes.n)
    lead_cnt = np.bincount(model.links.dst, minlength=model.nodes.n)
    model.horizon = int(model.links.lead_months.max(initial=1)) + 2
    model.transit = np.zeros((model.horizon, model.links.n))
    # each link's (lead row, link) position in the raveled transit ring, before the month
    model._link_lead_at = model.links.lead_months * model.links.n + np.arange(model.links.n)
    model.relationship = np.zeros(model.links.n)  # link's share of the buyer's purchases
    model.link_rent = np.zeros(model.links.n)  # usd/kg premium of a binding link cap
    model._lead_mean = np.divide(lead_sum, lead_cnt, out=np.ones(model.nodes.n), where=lead_cnt > 0)
    share = np.zeros(model.links.n)
    mines = model.idx["mine"]
    mine_share = np.zeros(model.nodes.n)
    mine_share[mines] = [model.node_specs[i].ndpr_share for i in mines]
    conc = model.links.product == P["concentrate"]
    share[conc] = mine_share[model.links.src[conc]]
    model.link_ndpr_share = share
    model.sell_slots = seller_slots(model)
    dom_name = model.world.market.domestic_region
    dom = model.nodes.regions.index(dom_name) if dom_name in model.nodes.regions else -1
    model._domestic = dom
    model._seller_dom = model.nodes.region[model.sell_slots // NP] == dom
    model._link_foreign = model.nodes.region[model.links.dst] != dom


def seller_slots(model: SupplyChainModel) -> np.ndarray:
    """Offer slots (``node * NP + product``) of every seller, sorted."""
    role_names = [ROLES[r] for r in model.nodes.role]
    slots = [i * NP + P[p] for i, r in enumerate(role_names) for p in OUTPUTS[r]]
    return np.array(sorted(slots), np.int64)


def build_state(model: SupplyChainModel) -> None:
    """State arrays from the firm specs; balanced initial flows and supply lines."""
    w, b, n = model.world, model.world.behaviour, model.nodes.n
    s = model.state = State(n)
    s.region[:] = model.nodes.region
    s.in_product[:] = model.nodes.in_product
    s.lead_mean[:] = model._lead_mean
    price0 = np.array([w.market.initial_price_usd_per_kg[p] for p in PRODUCTS])
    model.ref_price = price0.copy()
    model.price_index = (price0.copy(), np.full(NP, np.nan))
    s.ask[:] = price0
    mines = model.idx["mine"]
    sold_share = np.array([model.node_specs[i].ndpr_share for i in mines]) if mines.size else []
    cap_weights = np.array([model.node_specs[i].capacity_t_per_yr for i in mines])
    avg_share = (
        float(np.average(sold_share, weights=cap_weights))
        if mines.size and cap_weights.sum() > 0
        else 0.2
    )
    for i, spec in enumerate(model.node_specs):
        role = ROLES[model.nodes.role[i]]
        if role == "oem":
            continue
        s.out_product[i] = P[OUTPUTS[role][0]]
        s.cap[i] = spec.capacity_t_per_yr
        s.online[i] = spec.online is None or parse_month(spec.online) <= model.start_abs
        s.conv_cost[i] = spec.unit_cost_usd_per_kg
        s.op_cost[i] = spec.unit_cost_usd_per_kg
        s.expandable[i] = spec.expandable
        if role == "separator":
            s.recovery[i] = spec.recovery
            s.feed_share0[i] = avg_share
            s.in_ratio[i] = 1.0 / (avg_share * spec.recovery)
        elif role == "mine":
            s.ore_ndpr_share[i] = spec.ndpr_share
        elif role in ("metal_maker", "magnet_plant", "recycler"):
            s.in_ratio[i] = spec.input_t_per_t
        if role == "magnet_plant":
            s.scrap_ratio[i] = spec.scrap_t_per_t
        if role == "recycler":
            s.collection_rate[i] = spec.collection_rate
    # recyclers share their region's end-of-life flow by capacity
    rec = model.idx["recycler"]
    for r in np.unique(s.region[rec]):
        members = rec[s.region[rec] == r]
        caps = s.cap[members]
        s.collect_share[members] = caps / caps.sum() if caps.sum() > 0 else 1 / members.size
    balanced_start(model, avg_share)
    fill_supply_lines(model)
    model._markup = np.array([b.markup.get(ROLES[r], 0.0) for r in model.nodes.role], dtype=float)
    model.supply_elasticity = np.array(
        [b.supply_elasticity.get(ROLES[r], 0.0) for r in model.nodes.role], dtype=float
    )
    model.order_fill = np.array(
        [b.order_fill_utilisation.get(ROLES[r], 0.0) for r in model.nodes.role], dtype=float
    )
    model._update_unit_cost()


def balanced_start(model: SupplyChainModel, avg_share: float) -> None:
    """Set initial flows consistent with start-year demand.

    Each stage's required output, from magnets back to concentrate, is spread over its
    online firms pro rata to capacity (capped at capacity); stocks start at their target
    cover.
    """
    s, b = model.state, model.world.behaviour
    need = sum(model.node_specs[i].demand_t_per_yr for i in model.idx["oem"]) / 12.0
    cap_m = s.cap / 12.0 * s.online

    def spread(idx: np.ndarray, required: float) -> np.ndarray:
        total = cap_m[idx].sum()
        share = required / total if total > 0 else 0.0
        out = cap_m[idx] * min(share, 1.0)
        s.prod_ema[idx] = out
        s.plan[idx] = out
        return out

    mag = spread(model.idx["magnet_plant"], need)
    mag_use = float((mag * s.in_ratio[model.idx["magnet_plant"]]).sum())
    metal = spread(model.idx["metal_maker"], mag_use)
    oxide_need = float((metal * s.in_ratio[model.idx["metal_maker"]]).sum())
    rec = model.idx["recycler"]
    scrap = float((mag * s.scrap_ratio[model.idx["magnet_plant"]]).sum())
    rec_share = cap_m[rec] / cap_m[rec].sum() if cap_m[rec].sum() > 0 else cap_m[rec]
    rec_out = np.minimum(cap_m[rec], scrap * rec_share / np.maximum(s.in_ratio[rec], 1e-9))
    s.prod_ema[rec] = rec_out
    sep = spread(model.idx["separator"], max(oxide_need - float(rec_out.sum()), 0.0))
    spread(model.idx["mine"], float((sep * s.in_ratio[model.idx["separator"]]).sum()))
    for i in model.idx["firm"]:
        monthly = s.prod_ema[i]
        out = s.out_product[i]
        s.sales_ema[i, out] = monthly
        s.slot_demand_ema[i, out] = monthly
        s.inv_out[i, out] = b.seller_target_cover_months * monthly
        if ROLES[model.nodes.role[i]] == "magnet_plant":
            s.sales_ema[i, P["scrap"]] = monthly * s.scrap_ratio[i]
        if s.in_product[i] >= 0:
            s.inv_in[i] = b.buyer_target_cover_months * monthly * s.in_ratio[i]
            s.buy_price_ema[i] = model.ref_price[s.in_product[i]]
        if ROLES[model.nodes.role[i]] == "separator":
            s.feed_ndpr[i] = s.inv_in[i] * avg_share


def fill_supply_lines(model: SupplyChainModel) -> None:
    """Start with goods in transit as if the initial flows had run for their lead times.

    Each buyer's expected use is split over its links by sellers' sales and landed cost.
    """
    s, links, b = model.state, model.links, model.world.behaviour
    if links.n == 0:
        return
    use = np.zeros(model.nodes.n)
    conv = model.idx["converter"]
    use[conv] = s.prod_ema[conv] * s.in_ratio[conv]
    oem = model.idx["oem"]
    use[oem] = [model.node_specs[i].demand_t_per_yr / 12.0 for i in oem]
    landed = s.ask.reshape(-1)[links.slot] + links.transport_usd_per_kg
    rel = landed / model.ref_price[links.product]
    w = s.sales_ema.reshape(-1)[links.slot] * np.exp(-b.price_sensitivity * rel)
    tot = np.bincount(links.dst, w, minlength=model.nodes.n)
    flow = np.divide(w, tot[links.dst], out=np.zeros(links.n), where=tot[links.dst] > 0)
    flow *= use[links.dst]
    for k in range(int(links.lead_months.max())):
        model.transit[k % model.horizon] += np.where(links.lead_months > k, flow, 0.0)
    s.pipeline[:] = np.bincount(links.dst, flow * links.lead_months, minlength=model.nodes.n)
    model.relationship = np.divide(
        flow, use[links.dst], out=np.zeros(links.n), where=use[links.dst] > 0
    )
    got = np.bincount(links.dst, flow, minlength=model.nodes.n)
    s.lead_mean[:] = np.divide(s.pipeline, got, out=s.lead_mean.copy(), where=got > 0)


def build_demand(model: SupplyChainModel) -> None:
    """OEM demand, growth factors and the back-cast end-of-life history."""
    w, s = model.world, model.state
    oems = model.idx["oem"]
    p_mag = w.market.initial_price_usd_per_kg["magnet"]
    model.substitution_rate = np.zeros(model.nodes.n)  # most demand share substituted a month
    weights = [model.node_specs[i].demand_t_per_yr for i in oems]
    el = [abs(w.sectors[model.node_specs[i].sector].price_elasticity) for i in oems]
    # the sectors' own elasticity, demand-weighted: the least a seller's demand responds
    model.demand_elasticity = (
        max(float(np.average(el, weights=weights)), 0.05) if sum(weights) > 0 else 0.2
    )
    for i in oems:
        spec = model.node_specs[i]
        sec = w.sectors[spec.sector]
        s.sector[i] = SECTORS.index(spec.sector)
        s.base_demand[i] = spec.demand_t_per_yr / 12.0
        s.elasticity[i] = sec.price_elasticity
        s.theta_max[i] = sec.substitution_max
        model.substitution_rate[i] = (
            sec.substitution_rate_per_month
            if sec.substitution_rate_per_month is not None
            else w.behaviour.substitution_rate_per_month
        )
        s.price_ref[i] = p_mag
        s.buy_price_ema[i] = p_mag
        s.target_cover[i] = spec.target_cover_months
        s.demand_ema[i] = s.base_demand[i]
        s.inv_in[i] = spec.target_cover_months * s.base_demand[i]
    # demand growth factor by month and sector, relative to the start month
    mult = w.behaviour.demand_growth_multiplier
    months = np.arange(model.start_abs, model.end_abs + 1)
    rates = np.zeros((months.size, len(SECTORS)))
    for k, name in enumerate(SECTORS):
        sec = w.sectors.get(name)
        if sec is None:
            continue
        for year, rate in sec.growth:
            rates[months // 12 >= year, k] = rate * mult
    monthly = np.power(1.0 + rates, 1.0 / 12.0)
    gf = np.cumprod(monthly, axis=0) / monthly[0]
    model._growth = gf
    model.growth_factor = gf[0]
    # end-of-life history ring: magnets put into use by (region, sector), back-cast
    lifetimes = np.array(
        [round(w.sectors[n].lifetime_years * 12) if n in w.sectors else 1 for n in SECTORS]
    )
    model._eol_lag = lifetimes
    model._eol_h = int(lifetimes.max()) + 1
    n_reg = len(model.nodes.regions)
    hist = np.zeros((model._eol_h, n_reg, len(SECTORS)))
    base = np.zeros((n_reg, len(SECTORS)))
    np.add.at(base, (s.region[oems], s.sector[oems]), s.base_demand[oems])
    first_rate = rates[0] / mult if mult > 0 else rates[0]
    for k in range(1, model._eol_h):
        hist[(-k) % model._eol_h] = base * np.power(1.0 + first_rate, -k / 12.0)
    model._eol_hist = hist
    # (sector, region) -> position in a raveled row of the ring (end_of_life_magnets_t)
    model._eol_at = np.arange(n_reg)[None, :] * len(SECTORS) + np.arange(len(SECTORS))[:, None]
    model._eol_slot = s.region * len(SECTORS) + s.sector


def build_projects(model: SupplyChainModel) -> None:
    """The project heap: planned capacity and firms coming online later."""
    index = {nid: i for i, nid in enumerate(model.nodes.ids)}
    # a heap of (month, node, sequence, delta_t_per_yr, origin): cheap to add to, popped
    # in (month, node, insertion) order
    model.projects: list[tuple[int, int, int, float, str]] = []
    model._project_seq = 0
    for p in model.world.projects:
        model.add_project(parse_month(p.online), index[p.firm], p.capacity_t_per_yr, "planned")
    for i, spec in enumerate(model.node_specs):
        if getattr(spec, "online", None) and not model.state.online[i]:
            model.add_project(parse_month(spec.online), i, 0.0, "start")
    model.capacity_added = []  # (month, node, delta, origin) applied


def build_policies(model: SupplyChainModel) -> PolicySet:
    """Instruments: tariffs of each government, then the ``[policies]`` tables."""
    instruments = []
    for gov, spec in zip(model.governments, model.world.governments, strict=True):
        if spec.tariffs:
            tariffs = Tariffs(model, spec.region, spec.tariffs)
            gov.hold(tariffs)
            instruments.append(tariffs)
    instruments += build_instruments(model, model.world.policies)
    return PolicySet(instruments)
