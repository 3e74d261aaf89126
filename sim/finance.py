"""Firms' money: cash, debt, the cost of capital, financed investment, failures and exits.

Cash is what the ledger says a firm received net since the start plus its opening cash; debt
moves only by ledger entries with ``lenders`` (credit drawn, repaid, interest). The cost of
capital rises with the volatility of the price a firm receives (``FinanceSpec``). Investment
(:func:`invest`, each January) needs (a) a project return above the cost of capital and (b)
financing: cash above a reserve plus debt room under the lenders' limit. Where (b) binds, a
fund offering gap loans (``Vault``) may lend the shortfall; the project's capacity is then
*additional* (it exists only because of the fund).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from sim.ledger import KG_PER_T
from sim.network import ROLES

if TYPE_CHECKING:
    from sim.model import SupplyChainModel


@dataclass
class Project:
    """A capacity project under way (firm expansion or fund-financed).

    Attributes:
        node: Firm index.
        capacity_t_per_yr: Capacity it adds when commissioned.
        capex_usd: Capital cost, paid at the decision.
        online_month: Absolute month it is due.
        fails: Whether it will fail at commissioning (seeded draw at the decision).
        origin: ``expansion`` or a fund label.
        fund_loan_usd: Gap loan a fund lent for it (0: none).
        fund: Ledger party of that fund (-1: none).
    """

    node: int
    capacity_t_per_yr: float
    capex_usd: float
    online_month: int
    fails: bool
    origin: str = "expansion"
    fund_loan_usd: float = 0.0
    fund: int = -1


@dataclass
class Finance:
    """Balance-sheet arrays per node and the projects under way.

    Attributes:
        opening_cash_usd: Cash at the start (ledger balances are added to it).
        debt_usd: Debt owed to lenders.
        fund_debt_usd: Debt owed to funds (gap loans), by node.
        fund_of: Ledger party of the fund a node owes (-1: none).
        price_var: EWMA of squared monthly log changes of the price received.
        last_price: Last month's price received (main output).
        exited: Whether the firm has exited.
        projects: Projects under way, by sequence number.
    """

    opening_cash_usd: np.ndarray
    debt_usd: np.ndarray
    fund_debt_usd: np.ndarray
    price_var: np.ndarray
    last_price: np.ndarray
    exited: np.ndarray
    fund_of: np.ndarray
    projects: dict[int, Project] = field(default_factory=dict)
    financed_t_per_yr: float = 0.0  # expansions started on own financing (cumulative)
    blocked_t_per_yr: float = 0.0  # expansions a financing gap stopped (cumulative)
    failed_t_per_yr: float = 0.0  # capacity of projects that failed (cumulative)
    exits: int = 0


def init_finance(model: SupplyChainModel) -> Finance:
    """Opening cash (months of revenue) and debt (share of replacement capex) per firm."""
    s, f = model.state, model.world.finance
    n = model.nodes.n
    firms = model.idx["firm"]
    revenue_m = np.zeros(n)
    revenue_m[firms] = s.prod_ema[firms] * s.ask[firms, s.out_product[firms]] * KG_PER_T
    capex = np.zeros(n)
    capex[firms] = s.cap[firms] * capex_per_t(model, firms)
    price = np.zeros(n)
    price[firms] = s.ask[firms, s.out_product[firms]]
    return Finance(
        opening_cash_usd=f.initial_cash_months * revenue_m,
        debt_usd=f.initial_debt_share * capex,
        fund_debt_usd=np.zeros(n),
        price_var=np.zeros(n),
        last_price=price,
        exited=np.zeros(n, bool),
        fund_of=np.full(n, -1, np.int64),
    )


def capex_per_t(model: SupplyChainModel, idx: np.ndarray) -> np.ndarray:
    """Capital cost per t/yr of capacity of firms ``idx`` (by role)."""
    table = model.world.finance.capex_usd_per_t_per_yr
    return np.array([table[ROLES[r]] for r in model.nodes.role[idx]], dtype=float)


def cash_usd(model: SupplyChainModel, idx: np.ndarray) -> np.ndarray:
    """Cash of nodes ``idx``: opening cash plus net ledger receipts."""
    return model.finance.opening_cash_usd[idx] + model.ledger.balance[idx]


def cost_of_capital(model: SupplyChainModel, idx: np.ndarray) -> np.ndarray:
    """Annual cost of capital: risk-free + base premium + price-risk premium x volatility."""
    f = model.world.finance
    vol = np.sqrt(12.0 * model.finance.price_var[idx])
    return f.risk_free_rate_per_yr + f.base_risk_premium_per_yr + f.price_risk_premium * vol


def capital_recovery(rate: np.ndarray, years: float) -> np.ndarray:
    """Annual payment per USD of capital over ``years`` at ``rate``."""
    r = np.maximum(rate, 1e-9)
    return r / (1.0 - np.power(1.0 + r, -years))


def ebitda_usd_per_yr(model: SupplyChainModel, idx: np.ndarray) -> np.ndarray:
    """Annualised operating profit on the recent output at the recent margin."""
    s = model.state
    price = model.policies.price_received(model, idx, s.ask[idx, s.out_product[idx]])
    return (price - s.unit_cost[idx]) * s.prod_ema[idx] * KG_PER_T * 12.0


def financing_room_usd(model: SupplyChainModel, idx: np.ndarray) -> np.ndarray:
    """What firms ``idx`` can spend on a project: cash above the reserve plus debt room."""
    f, s = model.world.finance, model.state
    revenue_m = s.prod_ema[idx] * s.ask[idx, s.out_product[idx]] * KG_PER_T
    reserve = f.min_cash_months * revenue_m
    limit = f.max_debt_to_ebitda * np.maximum(ebitda_usd_per_yr(model, idx), 0.0)
    debt = model.finance.debt_usd[idx] + model.finance.fund_debt_usd[idx]
    return np.maximum(cash_usd(model, idx) - reserve, 0.0) + np.maximum(limit - debt, 0.0)


def project_pays(
    model: SupplyChainModel, idx: np.ndarray, delta_t_per_yr: np.ndarray, capex_usd: np.ndarray
) -> np.ndarray:
    """Whether the added capacity's profit at today's margin covers its capital cost."""
    s = model.state
    price = model.policies.price_received(model, idx, s.ask[idx, s.out_product[idx]])
    cap_m = s.cap[idx] / 12.0
    util = np.minimum(
        np.divide(s.prod_ema[idx], cap_m, out=np.ones(idx.size), where=cap_m > 0), 1.0
    )
    profit = (price - s.unit_cost[idx]) * KG_PER_T * delta_t_per_yr * util
    k = cost_of_capital(model, idx)
    return profit >= capex_usd * capital_recovery(k, model.world.finance.project_life_years)


def main_ask(model: SupplyChainModel) -> np.ndarray:
    """Every firm's ask for its main output (firms in ``idx["firm"]`` order), USD/kg."""
    return model.state.ask.reshape(-1)[model.main_slot]


def track_risk(model: SupplyChainModel) -> None:
    """Update each firm's price volatility from the price it receives this month."""
    fin, firms = model.finance, model.firm_span
    price = model.policies.price_received(model, model.idx["firm"], main_ask(model))
    last = fin.last_price[firms]
    ok = (price > 0) & (last > 0)
    if ok.all():
        r = np.log(price)
        r -= np.log(last)
    else:
        r = np.zeros(price.size)
        np.log(price, out=r, where=ok)
        r -= np.log(np.where(ok, last, 1.0))
        r[~ok] = 0.0
    a = model.world.finance.volatility_smoothing
    var = fin.price_var[firms]
    var *= 1 - a
    var += a * r * r
    fin.price_var[firms] = var
    fin.last_price[firms] = price


def settle(model: SupplyChainModel) -> None:
    """Month end: interest, credit, repayments and payouts.

    Credit keeps cash >= 0; surplus (cash above three times the ``min_cash_months`` reserve)
    repays lenders, then funds; cash above ``max_cash_months`` of revenue is paid out to
    owners (households of the region).
    """
    led, fin, s, f = model.ledger, model.finance, model.state, model.world.finance
    firms = model.firm_span
    lenders = model.lenders
    rate = f.risk_free_rate_per_yr + f.base_risk_premium_per_yr
    debt = fin.debt_usd[firms]  # a view when firms are a slice: updated in place below
    interest = debt * rate / 12.0
    cash = fin.opening_cash_usd[firms] + led.balance[firms]
    cash -= interest
    draw = np.maximum(-cash, 0.0)  # borrow to stay solvent
    cash += draw
    debt += draw
    revenue_m = s.prod_ema[firms] * main_ask(model)
    revenue_m *= KG_PER_T
    surplus = cash - 3.0 * f.min_cash_months * revenue_m
    np.maximum(surplus, 0.0, out=surplus)
    repay = np.minimum(surplus, debt)
    debt -= repay
    if not isinstance(firms, slice):  # a gathered copy: write it back
        fin.debt_usd[firms] = debt
    if fin.fund_debt_usd.any():
        back = np.minimum(surplus - repay, fin.fund_debt_usd[firms])
        fin.fund_debt_usd[firms] -= back
        cash -= repay + back
    else:  # no fund is owed anything: nothing goes back
        back = None
        cash -= repay
    payout = cash - f.max_cash_months * revenue_m
    np.maximum(payout, 0.0, out=payout)
    net = np.zeros(led.balance.size)
    out = draw - interest
    out -= repay
    if back is not None:
        out -= back
    out -= payout
    net[firms] = out
    add = np.add.reduce
    interest_usd, draw_usd, repay_usd = add(interest), add(draw), add(repay)
    net[lenders] += float(interest_usd - draw_usd + repay_usd)
    if back is not None:
        fund = np.where(fin.fund_of[firms] >= 0, fin.fund_of[firms], lenders)
        net += np.bincount(fund, back, minlength=net.size)
    owners = model._owners_of_firms
    net += np.bincount(owners, payout, minlength=net.size)
    gross = interest_usd + draw_usd + repay_usd + add(payout)
    led.post_net(net, float(gross if back is None else gross + add(back)))
    if led.record and led.month_row >= 0:
        if back is None:
            payee, back = model._settle_payee_lenders, model._firm_zeros
        else:
            payee = np.concatenate([model._settle_payee, fund, owners])
        led.keep(
            model._settle_kinds,
            model._settle_payer,
            payee,
            np.concatenate([interest, draw, repay, back, payout]),
        )
    if back is not None and back.any():
        for ins in model.policies.instruments:
            took = getattr(ins, "repaid_by", None)
            if took is not None:
                took(float(back[fin.fund_of[firms] == ins.fund].sum()))


def complete(model: SupplyChainModel, seq: int, node: int) -> float:
    """A project is due: the share of its capacity that comes online (0 when it failed).

    A fund that lent to a failed project writes the loan off (its loss).
    """
    fin = model.finance
    p = fin.projects.pop(seq, None)
    if p is None or not p.fails:
        return 1.0
    fin.failed_t_per_yr += p.capacity_t_per_yr
    if p.fund >= 0 and p.fund_loan_usd > 0:
        fin.fund_debt_usd[node] = max(fin.fund_debt_usd[node] - p.fund_loan_usd, 0.0)
        for ins in model.policies.instruments:
            lose = getattr(ins, "write_off", None)
            if lose is not None:
                lose(model, p)
    return 0.0


def invest(model: SupplyChainModel) -> None:
    """Each January firms expand if it pays and is financed, shrink on losses, exit if insolvent.

    Proposals: sustained margin above the role's markup plus the hurdle, and high use. A
    proposal goes ahead when the added profit covers the capital cost at the firm's cost of
    capital and it is financed (own room, else a fund's gap loan).
    """
    if model.month_abs % 12 != 0:
        return
    s, b, f, fin = model.state, model.world.behaviour, model.world.finance, model.finance
    firms = model.idx["firm"]
    cap_m = s.cap[firms] / 12.0
    util = np.divide(s.prod_ema[firms], cap_m, out=np.zeros(firms.size), where=cap_m > 0)
    grow = (
        s.expandable[firms]
        & s.online[firms]
        & ~s.pending[firms]
        & ~fin.exited[firms]
        & (s.cap[firms] > 0)
        & (util > b.investment_utilisation_trigger)
        & (s.margin_ema[firms] > model._markup[firms] + b.investment_hurdle_margin)
    )
    who = firms[grow]
    if who.size:
        delta = b.expansion_step * s.cap[who]
        capex = delta * capex_per_t(model, who)
        pays = project_pays(model, who, delta, capex)
        room = financing_room_usd(model, who)
        gap = np.maximum(capex - room, 0.0)
        loan, lender = model.policies.gap_loans(model, who, gap, pays)
        go = pays & (gap <= loan + 1e-6)
        fin.blocked_t_per_yr += float(delta[pays & ~go].sum())
        lead_years = np.array([b.lead_time_years.get(r, 1.0) for r in ROLES])
        mean = lead_years[model.nodes.role[who]] * 12
        lead = np.maximum(
            np.round(mean * np.exp(model.rng_projects.normal(0.0, b.lead_time_sd_log, who.size))), 1
        ).astype(int)
        fails = model.rng_projects.random(who.size) < f.project_failure_probability
        sel = np.flatnonzero(go)
        pay_capex(model, who[sel], capex[sel])
        borrowed = np.where(gap[sel] > 0, loan[sel], 0.0)
        fin.financed_t_per_yr += float(delta[sel][borrowed == 0].sum())
        s.pending[who[sel]] = True
        due = model.month_abs + lead[sel]
        seq0 = model._project_seq
        model.add_projects(due, who[sel], delta[sel], "expansion")
        # only projects that will fail or that a fund lent to need a record at completion
        for j in np.flatnonzero(fails[sel] | (borrowed > 0)).tolist():
            k = int(sel[j])
            proj = Project(
                int(who[k]),
                float(delta[k]),
                float(capex[k]),
                int(due[j]),
                bool(fails[k]),
                "vault_gap" if borrowed[j] > 0 else "expansion",
                float(borrowed[j]),
                int(lender[k]) if borrowed[j] > 0 else -1,
            )
            fin.projects[seq0 + j] = proj
            if proj.fund >= 0:
                for ins in model.policies.instruments:
                    if getattr(ins, "fund", None) == proj.fund:
                        ins.financed(proj)
    shrink = firms[s.online[firms] & (s.cap[firms] > 0) & (s.margin_ema[firms] < b.closure_margin)]
    if shrink.size:
        d = -b.closure_step * s.cap[shrink]
        s.cap[shrink] += d
        month = model.month_abs
        model.capacity_added += [
            (month, i, x, "closure") for i, x in zip(shrink.tolist(), d.tolist(), strict=True)
        ]
    # lenders stop lending to a loss-maker with no room left whose debt exceeds what its plant
    # is worth (capacity at replacement capex): it is insolvent and exits. A firm covering its
    # variable cost but not its fixed cost keeps running (ODD 7.1), borrowing, until then; a
    # new plant in its ramp-up owes no more than it cost.
    losing = firms[
        s.online[firms] & (s.cap[firms] > 0) & ~fin.exited[firms] & (s.margin_ema[firms] < 0.0)
    ]
    if losing.size:
        owed = fin.debt_usd[losing] + fin.fund_debt_usd[losing]
        worth = s.cap[losing] * capex_per_t(model, losing)
        broke = (financing_room_usd(model, losing) <= 0.0) & (owed > worth)
        for i in losing[broke].tolist():
            model.capacity_added.append((model.month_abs, i, -float(s.cap[i]), "exit"))
            s.cap[i] = 0.0
            s.online[i] = False
            fin.exited[i] = True
            fin.exits += 1


def pay_capex(model: SupplyChainModel, nodes: np.ndarray, usd: np.ndarray) -> None:
    """Firms pay construction (to households of their region), borrowing what cash lacks."""
    led, fin = model.ledger, model.finance
    need = np.maximum(usd - np.maximum(cash_usd(model, nodes), 0.0), 0.0)
    led.post("credit", model.lenders, nodes, need)
    fin.debt_usd[nodes] += need
    led.post("capex", nodes, model.households[model.nodes.region[nodes]], usd)
