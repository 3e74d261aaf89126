"""A Project Vault-style fund: milestone finance, gap loans and an offtake price floor.

The fund is a ledger party (``vault:<region>``) endowed with ``budget_usd`` by its government;
it never pays more than it holds. It

- finances candidate projects by milestones (feasibility, construction, commissioning,
  verified output), cheapest capital cost per t/yr first within its budget; a seeded draw can
  fail a milestone, losing what was disbursed; capacity comes online at commissioning;
- with ``gap_loans``, lends eligible firms (its stages, outside excluded regions) the part of
  an expansion's capex they cannot finance themselves (``sim.finance.invest``); a failed
  project's loan is written off; firms repay from surplus cash;
- pays covered sellers the gap below an offtake floor price on what they sell, while it has
  money; covered firms plan and assess risk on the floor only while the fund can pay.

Additionality: gap-loan capacity exists only because of the fund (the firm could not finance
it); a candidate is additional when its firm could not have financed it or it would not have
paid at the firm's own cost of capital at selection (``sim.finance``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from sim.errors import UserError
from sim.finance import Project, financing_room_usd, project_pays
from sim.ledger import KG_PER_T, Capacity, Transfer
from sim.network import NP, ROLES, P
from sim.policies import schemas as S  # noqa: N812
from sim.policies.base import Instrument
from sim.policies.instruments import _firm_index, _region_index, _register_simple, _spinning

if TYPE_CHECKING:
    from sim.model import SupplyChainModel


@dataclass
class VaultProject:
    """A candidate project of the fund.

    Attributes:
        k: Position in the candidate list.
        firm: Firm id; ``node`` its index; ``role`` and ``region`` its stage and region.
        capacity_t_per_yr: Capacity added at commissioning.
        cost_usd: Total capital cost; ``capex`` per t/yr.
        fail: Failure probability per milestone.
        status: candidate, active, done, failed, unverified or rejected.
        milestone: Next milestone (index into ``MILESTONES``).
        due: Model month (tau) the next milestone is due.
        disbursed_usd: Paid so far.
        waited: Months waited for verified output.
        online: Absolute month commissioned (None: not yet).
        additional: Whether the firm could not have done it alone (set at selection).
    """

    k: int
    firm: str
    node: int
    role: str
    region: str
    capacity_t_per_yr: float
    cost_usd: float
    capex: float
    fail: list[float]
    status: str = "candidate"
    milestone: int = 0
    due: int = -1
    disbursed_usd: float = 0.0
    waited: int = 0
    online: int | None = None
    additional: bool | None = None


class Vault(Instrument):
    """A Project Vault-style fund (see the module docstring)."""

    name = "vault"

    def __init__(self, model: SupplyChainModel, spec: S.VaultSpec):
        self.spec = spec
        self.rng = model.rng.spawn(1)[0]
        _region_index(model, spec.region, "policies.vault.region")
        self.region = spec.region
        self.fund = model.ledger.fund(
            f"vault:{spec.region}", f"government:{spec.region}", spec.budget_usd
        )
        self.projects: list[VaultProject] = []
        for k, c in enumerate(spec.candidates):
            where = f"policies.vault.candidates[{k}].firm"
            i = _firm_index(model, c.firm, where)
            role = ROLES[model.nodes.role[i]]
            region = model.nodes.regions[model.nodes.region[i]]
            if role not in spec.stages:
                raise UserError(f"{where}: {c.firm!r} is a {role}; the fund finances {spec.stages}")
            if region in spec.exclude_regions:
                raise UserError(f"{where}: {c.firm!r} is in excluded region {region!r}")
            self.projects.append(
                VaultProject(
                    k, c.firm, i, role, region, c.capacity_t_per_yr,
                    c.capacity_t_per_yr * c.capex_usd_per_t_per_yr, c.capex_usd_per_t_per_yr,
                    list(c.failure_probability or spec.failure_probability),
                )
            )  # fmt: skip
        self.committed = self.disbursed = self.lost = 0.0
        self.loans = self.repaid = 0.0
        self.gap_projects: list[Project] = []
        self.started = False
        self.log: list[tuple[int, str, str, float]] = []  # (month, firm, event, usd)
        fl = spec.price_floor
        self.floor_nodes = np.array(
            [
                _firm_index(model, f, "policies.vault.price_floor.firms")
                for f in (fl.firms if fl else [])
            ],
            np.int64,
        )
        self.floor_paid = 0.0
        self.floor_paid_month = 0.0
        self._pending: list[Transfer] = []
        self._pending_usd = 0.0
        self._month_abs = model.month_abs
        self._left = spec.budget_usd
        roles = [ROLES.index(r) for r in spec.stages]
        excluded = [
            model.nodes.regions.index(r) for r in spec.exclude_regions if r in model.nodes.regions
        ]
        self.eligible = np.isin(model.nodes.role, roles) & ~np.isin(model.nodes.region, excluded)

    # ----------------------------------------------------------------- money
    def available(self, model: SupplyChainModel) -> float:
        """What the fund can still pay this month."""
        return max(model.ledger.available(self.fund) - self._pending_usd, 0.0)

    def _pay(self, model: SupplyChainModel, node: int, usd: float, kind: str) -> float:
        usd = min(usd, self.available(model))
        if usd <= 0:
            return 0.0
        self._pending.append(Transfer(kind, self.fund, node, usd))
        self._pending_usd += usd
        if kind == "vault_disbursement":  # tranches are spent on construction at once
            hh = model.households[model.nodes.region[node]]
            self._pending.append(Transfer("capex", node, hh, usd))
        return usd

    # ----------------------------------------------------------------- candidates
    def _select(self, model: SupplyChainModel) -> None:
        cands = [p for p in self.projects if p.status == "candidate"]
        cands.sort(key=lambda p: (p.capex, p.k))
        for p in cands:
            cap = self.spec.max_capex_usd_per_t_per_yr
            if cap and p.capex > cap:
                p.status = "rejected"
                continue
            if self.committed + p.cost_usd <= self.spec.budget_usd + 1e-6:
                self.committed += p.cost_usd
                p.status = "active"
                p.due = model.tau + self.spec.milestone_months[0]
                node = np.array([p.node])
                alone = bool(
                    project_pays(
                        model, node, np.array([p.capacity_t_per_yr]), np.array([p.cost_usd])
                    )[0]
                    and financing_room_usd(model, node)[0] >= p.cost_usd
                )
                p.additional = not alone
                self.log.append((model.month_abs, p.firm, "selected", p.cost_usd))

    def update(self, model: SupplyChainModel) -> list[Capacity]:
        """Milestones due this month: fail (seeded) or disburse; commission capacity."""
        built: list[Capacity] = []
        if _spinning(model) or not self.spec.active(model.month_abs):
            return built
        if not self.started:
            self.started = True
            self._select(model)
        s = model.state
        freed = False
        for p in self.projects:
            if p.status != "active" or p.due > model.tau:
                continue
            k = p.milestone
            name = S.MILESTONES[k]
            if name == "verified_output":
                cap_m = s.cap[p.node] / 12.0
                util = s.prod_ema[p.node] / cap_m if cap_m > 0 else 0.0
                if util < self.spec.verified_output_share:
                    p.waited += 1
                    if p.waited > self.spec.verify_grace_months:
                        p.status = "unverified"
                        self.committed -= p.cost_usd - p.disbursed_usd
                        self.log.append((model.month_abs, p.firm, "unverified", 0.0))
                        freed = True
                    continue
            if self.rng.random() < p.fail[k]:
                p.status = "failed"
                self.lost += p.disbursed_usd
                self.committed -= p.cost_usd - p.disbursed_usd
                self.log.append((model.month_abs, p.firm, f"failed {name}", p.disbursed_usd))
                freed = True
                continue
            pay = self._pay(
                model, p.node, self.spec.milestone_share[k] * p.cost_usd, "vault_disbursement"
            )
            p.disbursed_usd += pay
            self.disbursed += pay
            self.log.append((model.month_abs, p.firm, name, pay))
            if name == "commissioning":
                built.append(Capacity(p.node, p.capacity_t_per_yr, "vault"))
                p.online = model.month_abs
            if k + 1 < len(S.MILESTONES):
                p.milestone = k + 1
                p.due = model.tau + self.spec.milestone_months[k + 1]
            else:
                p.status = "done"
        if freed:
            self._select(model)
        return built

    # ----------------------------------------------------------------- gap loans
    def gap_loans(
        self, model: SupplyChainModel, firms: np.ndarray, gap_usd: np.ndarray, pays: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Lend eligible firms the gap in their own financing, in firm order, while money lasts.

        Money committed to selected candidates but not yet paid is kept back.
        """
        loan = np.zeros(firms.size)
        if not self.spec.gap_loans or _spinning(model) or not self.spec.active(model.month_abs):
            return loan, np.full(firms.size, self.fund, np.int64)
        free = self.available(model) - (self.committed - self.disbursed)
        for k in np.flatnonzero(self.eligible[firms] & pays & (gap_usd > 0)).tolist():
            if gap_usd[k] > free:
                continue
            i = int(firms[k])
            loan[k] = gap_usd[k]
            free -= gap_usd[k]
            model.ledger.post("vault_disbursement", self.fund, i, float(gap_usd[k]))
            model.finance.fund_debt_usd[i] += float(gap_usd[k])
            model.finance.fund_of[i] = self.fund
            self.loans += float(gap_usd[k])
            self.disbursed += float(gap_usd[k])
            self.log.append((model.month_abs, model.nodes.ids[i], "gap_loan", float(gap_usd[k])))
        return loan, np.full(firms.size, self.fund, np.int64)

    def financed(self, project: Project) -> None:
        """Remember a project a gap loan made possible."""
        self.gap_projects.append(project)

    def write_off(self, model: SupplyChainModel, project: Project) -> None:
        """A project this fund lent to failed: its loan is lost."""
        if project.fund != self.fund:
            return
        self.lost += project.fund_loan_usd
        self.log.append(
            (model.month_abs, model.nodes.ids[project.node], "loan lost", project.fund_loan_usd)
        )

    def repaid_by(self, usd: float) -> None:
        """A borrower repaid ``usd`` (posted by ``sim.finance.settle``)."""
        self.repaid += usd

    # ----------------------------------------------------------------- price floor
    def _floor_on(self, model: SupplyChainModel) -> bool:
        fl = self.spec.price_floor
        return (
            fl is not None
            and self.floor_nodes.size > 0
            and fl.active(model.month_abs)
            and model.ledger.available(self.fund) > 0
        )

    def after_trade(self, model: SupplyChainModel) -> list[Transfer]:
        """Pay covered sellers the gap below the floor on tonnes sold (within the fund)."""
        self.floor_paid_month = 0.0
        effects, pending_usd = self._pending, self._pending_usd
        self._pending, self._pending_usd = [], 0.0
        fl = self.spec.price_floor
        if fl is None or _spinning(model) or not self._floor_on(model):
            return effects
        slots = self.floor_nodes * NP + P[fl.product]
        sold = model.clearing.sold_slot_t[slots]
        ask = model.state.ask.reshape(-1)[slots]
        due = np.maximum(fl.floor_usd_per_kg - ask, 0.0) * sold * KG_PER_T
        left = model.ledger.available(self.fund) - pending_usd
        total = float(due.sum())
        if total <= 0 or left <= 0:
            return effects
        pay = due * min(1.0, left / total)
        effects.append(Transfer("price_floor", self.fund, self.floor_nodes, pay))
        self.floor_paid_month = float(pay.sum())
        self.floor_paid += self.floor_paid_month
        return effects

    def price_received(
        self, model: SupplyChainModel, firms: np.ndarray, price: np.ndarray
    ) -> np.ndarray:
        """Covered firms plan and invest on at least the floor while the fund can pay it."""
        fl = self.spec.price_floor
        if fl is None or not self._floor_on(model):
            return price
        covered = np.isin(firms, self.floor_nodes) & (
            model.state.out_product[firms] == P[fl.product]
        )
        return np.where(covered, np.maximum(price, fl.floor_usd_per_kg), price)

    # ----------------------------------------------------------------- reporting
    def capacity_online(self, model: SupplyChainModel) -> dict[tuple[str, str], float]:
        """Vault-financed capacity online now, by (output product, region)."""
        out: dict[tuple[str, str], float] = {}
        for p in self.projects:
            if p.online is not None and p.online <= model.month_abs:
                key = (S.STAGE_PRODUCT[p.role], p.region)
                out[key] = out.get(key, 0.0) + p.capacity_t_per_yr
        return out

    def series(self) -> dict[tuple[str, str, str], float]:
        """Money (cumulative), financed capacity and its additionality."""
        r = self.spec.region
        m = self._month_abs
        cand_on = [p for p in self.projects if p.online is not None and p.online <= m]
        gap_on = [p for p in self.gap_projects if p.online_month <= m and not p.fails]
        additional = sum(p.capacity_t_per_yr for p in cand_on if p.additional) + sum(
            p.capacity_t_per_yr for p in gap_on
        )
        out = {
            ("vault_committed_usd", "", r): self.committed,
            ("vault_disbursed_usd", "", r): self.disbursed,
            ("vault_loans_usd", "", r): self.loans,
            ("vault_repaid_usd", "", r): self.repaid,
            ("vault_lost_usd", "", r): self.lost,
            ("vault_exposure_usd", "", r): self.disbursed - self.lost - self.repaid,
            ("vault_budget_left_usd", "", r): self._left,
            ("vault_projects_failed", "", r): float(
                sum(p.status == "failed" for p in self.projects)
                + sum(p.fails and p.online_month <= m for p in self.gap_projects)
            ),
            ("vault_additional_capacity_t_per_yr", "", r): additional,
            ("vault_nonadditional_capacity_t_per_yr", "", r): sum(
                p.capacity_t_per_yr for p in cand_on if not p.additional
            ),
        }
        for p in self.projects:
            key = ("vault_capacity_t_per_yr", S.STAGE_PRODUCT[p.role], p.region)
            out.setdefault(key, 0.0)
            if p.online is not None:
                out[key] += p.capacity_t_per_yr
        if self.spec.price_floor is not None:
            out[("price_floor_paid_usd", self.spec.price_floor.product, r)] = self.floor_paid
        return out

    def observe(self, model: SupplyChainModel) -> None:
        """Note the month and the fund's balance for :meth:`series`."""
        self._month_abs = model.month_abs
        self._left = model.ledger.available(self.fund)


_register_simple("vault", Vault, S.VaultSpec, named=False)
