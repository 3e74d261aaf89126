"""The instrument protocol and the composition of instruments into a model's policy set.

Each instrument may change link terms (tariffs, caps), production, recycling collection or
substitution. The model calls the :class:`PolicySet` hooks at fixed phases of the month; the
set applies every instrument in declaration order, so instruments compose.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from sim.ledger import Capacity, Delivery, Transfer
    from sim.model import SupplyChainModel

    Effect = Transfer | Delivery | Capacity


@dataclass
class LinkTerms:
    """This month's policy terms per link (arrays of length ``links.n``).

    Attributes:
        tariff: Ad valorem import tariff, paid by the buyer to the importing government.
        duty: Ad valorem export duty, paid by the buyer to the exporting government.
        cap_t: Most tonnes the link may carry this month (``inf``: unrestricted).
    """

    tariff: np.ndarray = field(default_factory=lambda: np.zeros(0))
    duty: np.ndarray = field(default_factory=lambda: np.zeros(0))
    cap_t: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def reset(self, n: int) -> None:
        """No tariff, no duty, no cap on ``n`` links."""
        if self.tariff.size != n:
            self.tariff, self.duty, self.cap_t = np.zeros(n), np.zeros(n), np.full(n, np.inf)
        else:
            self.tariff.fill(0.0)
            self.duty.fill(0.0)
            self.cap_t.fill(np.inf)


class Instrument:
    """Base class: every hook is a no-op. Subclasses override what they act on."""

    name: str = "instrument"

    def update(self, model: SupplyChainModel) -> list[Effect] | None:
        """Start of month: refresh the instrument's state (licences, budgets, schedules).

        May return effects (e.g. capacity commissioned) for the model to post.
        """
        return None

    def link_terms(self, model: SupplyChainModel, terms: LinkTerms) -> None:
        """Modify this month's per-link terms (tariff, duty, caps) in place."""

    def cap_production(
        self, model: SupplyChainModel, idx: np.ndarray, out_t: np.ndarray
    ) -> np.ndarray:
        """Return possibly reduced production for firms ``idx``."""
        return out_t

    def collection_rate(
        self, model: SupplyChainModel, idx: np.ndarray, rate: np.ndarray
    ) -> np.ndarray:
        """Return the end-of-life collection rate of recyclers ``idx``."""
        return rate

    def substitution_boost(self, model: SupplyChainModel) -> float:
        """Multiplier on the OEMs' substitution rate."""
        return 1.0

    def after_trade(self, model: SupplyChainModel) -> list[Effect] | None:
        """After the market cleared: act on flows and prices (licence use, stockpiles).

        Returns the instrument's effects (transfers, deliveries) for the model to post.
        """
        return None

    def cost_cut(self, model: SupplyChainModel) -> np.ndarray | None:
        """This month's cut in firms' planning cost, USD/kg output per node (None: none)."""
        return None

    def tariff_outlook(self, model: SupplyChainModel) -> np.ndarray | None:
        """Next month's ad valorem tariff as buyers expect it, less this month's, per link."""
        return None

    def gap_loans(
        self, model: SupplyChainModel, firms: np.ndarray, gap_usd: np.ndarray, pays: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Loans offered to close firms' financing gaps (USD) and the lending party (-1: none)."""
        return np.zeros(firms.size), np.full(firms.size, -1, np.int64)

    def price_received(
        self, model: SupplyChainModel, firms: np.ndarray, price: np.ndarray
    ) -> np.ndarray:
        """Price firms effectively receive for their main output (e.g. with a price floor).

        Used for their margins (utilisation and investment), not for the market.
        """
        return price


class PolicySet:
    """All instruments of a model, applied in order."""

    def __init__(self, instruments: list[Instrument]):
        self.instruments = list(instruments)
        self.terms = LinkTerms()

    @property
    def tariff(self) -> np.ndarray:
        """Ad valorem import tariff per link this month."""
        return self.terms.tariff

    @property
    def duty(self) -> np.ndarray:
        """Ad valorem export duty per link this month."""
        return self.terms.duty

    @property
    def cap_t(self) -> np.ndarray:
        """Tonnage cap per link this month."""
        return self.terms.cap_t

    def update(self, model: SupplyChainModel) -> list[Effect]:
        """Refresh instruments and this month's link terms; collect the instruments' effects."""
        self.terms.reset(model.links.n)
        effects: list[Effect] = []
        for ins in self.instruments:
            effects += ins.update(model) or []
        for ins in self.instruments:
            ins.link_terms(model, self.terms)
        return effects

    def cap_production(
        self, model: SupplyChainModel, idx: np.ndarray, out_t: np.ndarray
    ) -> np.ndarray:
        """Apply production limits (quotas) of every instrument."""
        for ins in self.instruments:
            out_t = ins.cap_production(model, idx, out_t)
        return out_t

    def collection_rate(
        self, model: SupplyChainModel, idx: np.ndarray, rate: np.ndarray
    ) -> np.ndarray:
        """Apply recycling-collection instruments."""
        for ins in self.instruments:
            rate = ins.collection_rate(model, idx, rate)
        return rate

    def substitution_boost(self, model: SupplyChainModel) -> float:
        """Product of the instruments' substitution multipliers."""
        boost = 1.0
        for ins in self.instruments:
            boost *= ins.substitution_boost(model)
        return boost

    def price_received(
        self, model: SupplyChainModel, firms: np.ndarray, price: np.ndarray
    ) -> np.ndarray:
        """Effective price of each firm's main output after every instrument."""
        for ins in self.instruments:
            price = ins.price_received(model, firms, price)
        return price

    def after_trade(self, model: SupplyChainModel) -> list[Effect]:
        """Let instruments act on the cleared market; collect their effects."""
        effects: list[Effect] = []
        for ins in self.instruments:
            effects += ins.after_trade(model) or []
        return effects

    def _sum(self, hook: str, model: SupplyChainModel, n: int) -> np.ndarray:
        """Sum of an array hook over the instruments (``None``: no contribution)."""
        total = np.zeros(n)
        for ins in self.instruments:
            part = getattr(ins, hook)(model)
            if part is not None:
                total += part
        return total

    def cost_cut(self, model: SupplyChainModel) -> np.ndarray:
        """Sum of the instruments' planning-cost cuts per node (USD/kg output)."""
        return self._sum("cost_cut", model, model.nodes.n)

    def tariff_outlook(self, model: SupplyChainModel) -> np.ndarray:
        """Expected change of each link's tariff next month (announced changes only)."""
        return self._sum("tariff_outlook", model, model.links.n)

    def gap_loans(
        self, model: SupplyChainModel, firms: np.ndarray, gap_usd: np.ndarray, pays: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """First instrument offering a loan closes each gap (loans and lender parties)."""
        loan = np.zeros(firms.size)
        lender = np.full(firms.size, -1, np.int64)
        for ins in self.instruments:
            todo = (loan <= 0) & (gap_usd > 0) & pays
            if not todo.any():
                break
            got, who = ins.gap_loans(model, firms[todo], gap_usd[todo], pays[todo])
            loan[todo] = got
            lender[todo] = np.where(got > 0, who, -1)
        return loan, lender
