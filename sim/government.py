"""Governments: agents that hold a region's policy instruments and their decision rules."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import mesa

if TYPE_CHECKING:
    from sim.model import SupplyChainModel
    from sim.policies.schemas import StockpileSpec


@dataclass(frozen=True)
class StockpileDecision:
    """What a government does with one stockpile this month.

    Attributes:
        release: Release to top buyers up to the release cover (shortage or price trigger).
        rotate: Release the rotation share (old stock sold, replaced by purchases).
        buy: Buy toward the target (price at or below the buy trigger).
    """

    release: bool = False
    rotate: bool = False
    buy: bool = False


class Government(mesa.Agent):
    """A region's government: holds instruments (attached by the policy registry) and decides.

    Attributes:
        region: The region it governs.
        name: Display name.
        instruments: Instruments it holds (tariffs, export controls, stockpiles, funds, ...).
    """

    def __init__(self, model: SupplyChainModel, region: str, name: str = ""):
        super().__init__(model)
        self.region = region
        self.name = name or f"Government of {region}"
        self.instruments: list[Any] = []

    def hold(self, instrument: Any) -> None:
        """Take an instrument into this government's hands."""
        if instrument not in self.instruments:
            self.instruments.append(instrument)
        instrument.government = self

    def stockpile_decision(
        self, spec: StockpileSpec, price_usd_per_kg: float, shortage: bool, stock_t: float
    ) -> StockpileDecision:
        """Triggers of a stockpile (docs/policies.md 3).

        Release on shortage or above a price; otherwise rotate old stock and buy while the
        price is at or below the buy trigger.
        """
        hot = (
            spec.release_above_usd_per_kg is not None
            and price_usd_per_kg >= spec.release_above_usd_per_kg
        )
        if (shortage and spec.release_on_shortage) or hot:
            return StockpileDecision(release=True)
        cheap = spec.buy_below_usd_per_kg is None or price_usd_per_kg <= spec.buy_below_usd_per_kg
        return StockpileDecision(rotate=spec.rotation_share_per_yr > 0 and stock_t > 0, buy=cheap)

    def __repr__(self) -> str:
        return f"<Government {self.region}>"


def government_of(model: SupplyChainModel, region: str) -> Government:
    """The government of ``region``, created (without instruments) if the world names none."""
    for g in model.governments:
        if g.region == region:
            return g
    g = Government(model, region)
    model.governments.append(g)
    return g
