"""Agents: one Mesa class per role, with their rules as short verbs.

Agent state lives in the model's struct-of-arrays (:class:`sim.state.State`) so that each rule
runs once per month over all agents of a role (numpy), not once per agent in Python. An agent
object is a named view on its row: ``agent.capacity_t_per_yr`` reads the array.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import numpy as np
from mesa.discrete_space import FixedAgent

from sim.government import Government  # noqa: F401  (re-export; lives in sim.government)
from sim.network import NP, P
from sim.prices import oxide_price_for, running_share, variable_cost

if TYPE_CHECKING:
    from sim.model import SupplyChainModel


class Trader(FixedAgent):
    """A node of the trade network (firm or OEM): a view on row ``idx`` of the state arrays.

    Each trader sits in its own cell of the model's ``mesa.discrete_space.Network`` (built
    from the trade graph), so Mesa's space API and visualisation see the network.
    """

    role: ClassVar[str] = ""

    def __init__(self, model: SupplyChainModel, idx: int, node_id: str, name: str, region: str):
        super().__init__(model)
        self.idx = idx
        self.node_id = node_id
        self.name = name or node_id
        self.region = region

    @property
    def inventory_in_t(self) -> float:
        """Input inventory (tonnes of the input product)."""
        return float(self.model.state.inv_in[self.idx])

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.node_id} ({self.region})>"


class Firm(Trader):
    """A producing firm: capacity, costs, utilisation, investment."""

    @property
    def capacity_t_per_yr(self) -> float:
        """Installed capacity (t output per year)."""
        return float(self.model.state.cap[self.idx])

    @property
    def ask_usd_per_kg(self) -> float:
        """Asking price of the main output."""
        s = self.model.state
        return float(s.ask[self.idx, s.out_product[self.idx]])

    @classmethod
    def plan_output(cls, model: SupplyChainModel, idx: np.ndarray) -> np.ndarray:
        """Output wanted this month: expected sales plus stock correction, within capacity.

        The capacity running moves toward the supply curve over ``restart_months``; a firm
        of a role with an ``order_fill_utilisation`` runs at least that share of its capacity
        to fill orders while its price covers variable cost (ODD 7.1): its idle capacity
        costs about the same a tonne, so its supply curve sets the price it asks as
        utilisation rises (sim.prices), not a ceiling on what it makes.

        Returns tonnes per firm.
        """
        s, b = model.state, model.world.behaviour
        main = model.out_slot[idx]  # (firm, main output) in the raveled per-slot arrays
        sales = s.sales_ema.reshape(-1)[main]
        stock = s.inv_out.reshape(-1)[main]
        desired = np.maximum(
            sales + (b.seller_target_cover_months * sales - stock) / b.inventory_adjust_months,
            0.0,
        )
        price = model.policies.price_received(model, idx, s.ask.reshape(-1)[main])
        # the running rate follows the supply curve; idle capacity restarts over restart_months
        wanted = running_share(model, idx, price)
        fill = model.order_fill[idx]
        if fill.any():
            wanted = np.where(price >= variable_cost(model, idx), np.maximum(wanted, fill), wanted)
        s.run_rate[idx] += (wanted - s.run_rate[idx]) / b.restart_months
        plan = np.minimum(desired, model.available_capacity_t(idx) * s.run_rate[idx])
        s.plan[idx] = plan
        return plan

    @classmethod
    def book_output(cls, model: SupplyChainModel, idx: np.ndarray, out_t: np.ndarray) -> None:
        """Add output to stock and to the month's production tally."""
        s = model.state
        s.inv_out.reshape(-1)[model.out_slot[idx]] += out_t
        s.produced[idx] += out_t
        model.month.production_p += np.bincount(s.out_product[idx], out_t, minlength=NP)


class Mine(Firm):
    """Mixed rare-earth concentrate producer (t REO)."""

    role = "mine"

    @classmethod
    def produce(cls, model: SupplyChainModel) -> None:
        """Mine at planned utilisation (within capacity and quotas)."""
        idx = model.idx["mine"]
        planned = cls.plan_output(model, idx)
        out = model.policies.cap_production(model, idx, planned)
        model.state.output_bound[idx] = out < planned * 0.98  # held back by a quota
        cls.book_output(model, idx, out)


class Converter(Firm):
    """A firm that turns an input product into its output with a fixed input ratio."""

    @classmethod
    def produce(cls, model: SupplyChainModel) -> None:
        """Every converter (separators, metal makers, magnet plants, recyclers) at once.

        Each firm converts only what is in its own input stock, so the roles can act in one
        vectorised pass: separators first set their yield from the feed they hold; magnet
        plants' swarf is booked as scrap.
        """
        idx = model.idx["converter"]
        if idx.size == 0:
            return
        share = Separator.blend_feed(model)
        out = cls.convert(model, idx)
        MagnetPlant.book_swarf(model, idx, out)
        Separator.settle_feed(model, share)

    @classmethod
    def convert(cls, model: SupplyChainModel, idx: np.ndarray) -> np.ndarray:
        """Produce within capacity and input stock; consume inputs. Returns output (t)."""
        s = model.state
        # planned after the separators set their yield (variable cost reads in_ratio)
        planned = cls.plan_output(model, idx)
        possible = np.divide(s.inv_in[idx], s.in_ratio[idx])
        out = np.minimum(planned, possible)
        out = model.policies.cap_production(model, idx, out)
        # output-bound: short of inputs or quota for the output planned (ODD 7.4)
        s.output_bound[idx] = out < planned * 0.98
        used = np.minimum(out * s.in_ratio[idx], s.inv_in[idx])
        s.inv_in[idx] -= used
        s.consumed[idx] += used
        model.month.consumption_p += np.bincount(s.in_product[idx], used, minlength=NP)
        cls.book_output(model, idx, out)
        return out


class Separator(Converter):
    """Concentrate (t REO) -> NdPr oxide, yield set by the NdPr content of its feed."""

    role = "separator"

    @classmethod
    def blend_feed(cls, model: SupplyChainModel) -> np.ndarray:
        """Set each separator's input ratio from the NdPr share of the feed it holds."""
        s = model.state
        idx = model.idx["separator"]
        share = np.divide(
            s.feed_ndpr[idx],
            s.inv_in[idx],
            out=s.feed_share0[idx].copy(),
            where=s.inv_in[idx] > 1e-9,
        )
        s.in_ratio[idx] = 1.0 / (np.maximum(share, 1e-6) * s.recovery[idx])
        return share

    @classmethod
    def settle_feed(cls, model: SupplyChainModel, share: np.ndarray) -> None:
        """The feed left in stock keeps its NdPr share."""
        s = model.state
        idx = model.idx["separator"]
        s.feed_ndpr[idx] = s.inv_in[idx] * share


class MetalMaker(Converter):
    """NdPr oxide -> NdPr metal/alloy."""

    role = "metal_maker"


class MagnetPlant(Converter):
    """NdPr metal -> sintered NdFeB magnets; machining swarf leaves as scrap (t NdPr)."""

    role = "magnet_plant"

    @classmethod
    def book_swarf(cls, model: SupplyChainModel, idx: np.ndarray, out_t: np.ndarray) -> None:
        """Swarf (``scrap_t_per_t`` x output; zero for other roles) joins the scrap stock."""
        s = model.state
        swarf = out_t * s.scrap_ratio[idx]
        s.inv_out[idx, P["scrap"]] += swarf
        model.month.production_p[P["scrap"]] += swarf.sum()


class Recycler(Converter):
    """Collects end-of-life magnets, buys swarf, and recovers NdPr oxide."""

    role = "recycler"

    @classmethod
    def collect(cls, model: SupplyChainModel) -> None:
        """Collect end-of-life magnets (as t NdPr scrap) from the regions served."""
        idx = model.idx["recycler"]
        if idx.size == 0:
            return
        s = model.state
        eol_t = model.end_of_life_magnets_t()  # by region
        ndpr = eol_t * model.world.behaviour.magnet_ndpr_share
        rate = model.policies.collection_rate(model, idx, s.collection_rate[idx])
        got = rate * ndpr[s.region[idx]] * s.collect_share[idx]
        s.inv_in[idx] += got
        s.collected[idx] += got
        model.month.production_p[P["scrap"]] += got.sum()


class OEM(Trader):
    """A magnet-using industry (region x sector): demand, price response, substitution."""

    role = "oem"

    @property
    def demand_t_per_month(self) -> float:
        """Last month's magnet demand."""
        return float(self.model.state.demand[self.idx])

    @classmethod
    def use_magnets(cls, model: SupplyChainModel) -> None:
        """Draw this month's magnet demand from stock; record what cannot be met as shortage."""
        s = model.state
        idx = model.oem_span  # a slice when OEMs are contiguous: views, not copies
        price_ratio = s.buy_price_ema[idx] / s.price_ref[idx]
        choke = model.world.behaviour.choke_price_multiple
        demand = (
            s.base_demand[idx]
            * model.growth_factor[s.sector[idx]]
            * np.power(np.maximum(price_ratio, 1e-6), s.elasticity[idx])
            * np.maximum(1.0 - (price_ratio / choke) ** 4, 0.0)  # demand destroyed near choke
            * (1.0 - s.theta[idx])
        )
        use = np.minimum(demand, s.inv_in[idx])
        s.inv_in[idx] -= use
        s.demand[idx] = demand
        s.consumed[idx] += use
        s.shortage[idx] = demand - use
        model.month.consumption_p[P["magnet"]] += use.sum()
        model.record_use(idx, use)

    @classmethod
    def substitute(cls, model: SupplyChainModel) -> None:
        """Redesign away from NdPr when its cost in a magnet or the supply risk is high.

        The driver is the NdPr cost in a magnet (the OEM market's oxide price, relative to its
        start value) above ``substitution_price_threshold``, plus ``substitution_risk_weight``
        x the OEM's perceived supply risk. The share wanted, ``theta_max x (1 - exp(-driver))``,
        is smoothed over ``substitution_lag_months`` (the design cycle); the share in use rises
        at most at the sector's ``substitution_rate_per_month`` (x any R&D programme's boost)
        and relaxes at ``substitution_decay_per_month``.
        """
        s, b = model.state, model.world.behaviour
        idx = model.oem_span  # a slice when OEMs are contiguous: views, not copies
        ndpr = oxide_price_for(model, idx) / model.ref_price[P["oxide"]]
        driver = np.maximum(ndpr - b.substitution_price_threshold, 0.0)
        driver = driver + b.substitution_risk_weight * s.risk[idx]
        wanted = s.theta_max[idx] * (1.0 - np.exp(-driver))
        a = 1.0 / b.substitution_lag_months
        s.theta_target[idx] = (1 - a) * s.theta_target[idx] + a * wanted
        rate = model.substitution_rate[idx] * model.policies.substitution_boost(model)
        gap = s.theta_target[idx] - s.theta[idx]
        step = np.where(
            gap > 0, np.minimum(gap, rate), np.maximum(gap, -b.substitution_decay_per_month)
        )
        # np.clip's values (theta is never -0.0), at less call cost
        s.theta[idx] = np.minimum(np.maximum(s.theta[idx] + step, 0.0), s.theta_max[idx])


ROLE_CLASSES: dict[str, type[Trader]] = {
    "mine": Mine,
    "separator": Separator,
    "metal_maker": MetalMaker,
    "magnet_plant": MagnetPlant,
    "recycler": Recycler,
    "oem": OEM,
}
