"""Subsidies for domestic processing, paid from a budget held by a fund of the government.

Production-linked incentives lower eligible firms' planning cost by the per-kg incentive on
the share of their expected output the scheme pays for (``max_output_t_per_yr``), only while
in force, outside the spin-up and while the fund has money; the payment goes to the firms pro
rata to output. Capital grants add capacity at a month and are paid when it comes online.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from sim.calendar import parse_month
from sim.errors import UserError
from sim.ledger import KG_PER_T, Transfer
from sim.network import ROLES
from sim.policies import schemas as S  # noqa: N812
from sim.policies.base import Instrument
from sim.policies.instruments import _firm_index, _region_index, _register_simple, _spinning

if TYPE_CHECKING:
    from sim.model import SupplyChainModel


@dataclass
class SubsidyScheme:
    """One subsidy scheme.

    Attributes:
        name: Table name; ``spec`` the parsed table; ``region`` the paying government's.
        eligible: Firm indices receiving the incentive.
        fund: Ledger party of the scheme's fund.
        grants: Capital grants (node, month online, USD), paid when online.
        grants_usd: Total of the grants (kept back from incentive payments).
        grants_paid_usd: Grants paid so far.
        paid_usd: Incentive paid so far.
    """

    name: str
    spec: S.SubsidySpec
    region: str
    eligible: np.ndarray
    fund: int
    grants: list[tuple[int, int, float]]
    grants_usd: float
    grants_paid_usd: float = 0.0
    paid_usd: float = 0.0


class Subsidies(Instrument):
    """Production incentives and capital grants (one scheme per named table)."""

    name = "subsidies"

    def __init__(self, model: SupplyChainModel, specs: dict[str, S.SubsidySpec]):
        self.schemes: list[SubsidyScheme] = []
        self.regions = sorted({spec.region for spec in specs.values()})
        for name, spec in specs.items():
            where = f"policies.subsidies.{name}"
            r = _region_index(model, spec.region, f"{where}.region")
            if spec.firms:
                elig = np.array([_firm_index(model, f, f"{where}.firms") for f in spec.firms])
            else:
                roles = [ROLES.index(x) for x in spec.roles]
                elig = np.flatnonzero(np.isin(model.nodes.role, roles) & (model.nodes.region == r))
            grants, total = [], 0.0
            for k, g in enumerate(spec.capacity):
                i = _firm_index(model, g.firm, f"{where}.capacity[{k}].firm")
                usd = g.capacity_t_per_yr * g.grant_usd_per_t_per_yr
                if total + usd > spec.budget_usd + 1e-6:
                    raise UserError(
                        f"{where}.capacity[{k}]: grants exceed budget_usd "
                        f"({total + usd:.3g} > {spec.budget_usd:.3g})"
                    )
                total += usd
                model.add_project(parse_month(g.online), i, g.capacity_t_per_yr, "subsidy")
                grants.append((i, parse_month(g.online), usd))
            fund = model.ledger.fund(
                f"subsidy:{name}", f"government:{spec.region}", spec.budget_usd
            )
            self.schemes.append(
                SubsidyScheme(name, spec, spec.region, elig.astype(np.int64), fund, grants, total)
            )

    def _incentive_left(self, model: SupplyChainModel, sc: SubsidyScheme) -> float:
        """Money for incentives: the fund less the grants still to pay."""
        owed = sc.grants_usd - sc.grants_paid_usd
        return max(model.ledger.available(sc.fund) - owed, 0.0)

    def cost_cut(self, model: SupplyChainModel) -> np.ndarray | None:
        """The incentive per kg on the share of expected output the scheme pays for."""
        if _spinning(model):
            return None
        s = model.state
        cut = np.zeros(model.nodes.n)
        for sc in self.schemes:
            spec = sc.spec
            if not (spec.active(model.month_abs) and spec.incentive_usd_per_kg > 0):
                continue
            if self._incentive_left(model, sc) <= 0:
                continue
            share = 1.0
            if spec.max_output_t_per_yr is not None:
                expected = float(s.prod_ema[sc.eligible].sum())
                cap = spec.max_output_t_per_yr / 12.0
                share = min(1.0, cap / expected) if expected > 0 else 1.0
            cut[sc.eligible] += spec.incentive_usd_per_kg * share
        return cut

    def after_trade(self, model: SupplyChainModel) -> list[Transfer]:
        """Pay the incentive on eligible output (capped by volume and fund) and due grants."""
        if _spinning(model):
            return []
        s, effects = model.state, []
        for sc in self.schemes:
            spec = sc.spec
            for node, month, usd in sc.grants:
                if month == model.month_abs and usd > 0:
                    effects.append(Transfer("capital_grant", sc.fund, node, usd))
                    sc.grants_paid_usd += usd
            if not (spec.active(model.month_abs) and spec.incentive_usd_per_kg > 0):
                continue
            out = s.produced[sc.eligible]
            paid_t = float(out.sum())
            if spec.max_output_t_per_yr is not None:
                paid_t = min(paid_t, spec.max_output_t_per_yr / 12.0)
            usd = min(
                paid_t * spec.incentive_usd_per_kg * KG_PER_T, self._incentive_left(model, sc)
            )
            if usd <= 0 or out.sum() <= 0:
                continue
            effects.append(Transfer("subsidy", sc.fund, sc.eligible, usd * out / out.sum()))
            sc.paid_usd += usd
        return effects

    def series(self) -> dict[tuple[str, str, str], float]:
        """Cumulative incentive payments and grants, by region."""
        out: dict[tuple[str, str, str], float] = {}
        for sc in self.schemes:
            for metric, v in (
                ("subsidy_paid_usd", sc.paid_usd),
                ("subsidy_grants_usd", sc.grants_paid_usd),
            ):
                key = (metric, "", sc.region)
                out[key] = out.get(key, 0.0) + v
        return out


_register_simple("subsidies", Subsidies, S.SubsidySpec, named=True)
