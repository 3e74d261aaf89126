"""Trade payments posted as netted arrays (sim/payments.py) equal the per-component postings.

`pay_for_trade` leaves out components that are zero on every link this month and keeps the
entries unmasked; the balances it posts must be bit-for-bit those of posting all five components
(ask, border rent, tariff, export duty, transport) per link, with and without rents and levies.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from sim.build import span
from sim.ledger import KG_PER_T, KIND
from sim.model import SupplyChainModel
from sim.payments import TRADE_KINDS, pay_for_trade
from sim.world import load_world

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model():
    world, _ = load_world(ROOT / "models" / "classroom.toml")
    m = SupplyChainModel(world, rng=5, end="2024-12")
    m.run_for(3)
    return m


def _reference(m: SupplyChainModel) -> tuple[np.ndarray, list[tuple[int, int, int, float]]]:
    """Net receipts per party and the positive entries, every component posted per link."""
    c, links, led = m.clearing, m.links, m.ledger
    region, gov = m.nodes.region, m.gov_party
    payee = np.stack(
        [
            links.src,
            links.src,
            gov[region[links.dst]],
            gov[region[links.src]],
            np.full(links.n, m.carriers),
        ]
    )
    per_kg = np.stack(
        [
            c.price_usd_per_kg - c.rent_usd_per_kg,
            c.rent_usd_per_kg,
            c.tariff_usd_per_kg,
            c.duty_usd_per_kg,
            c.transport_usd_per_kg,
        ]
    )
    usd = per_kg * (c.shipped_t * KG_PER_T)
    n = led.balance.size
    net = np.bincount(payee.ravel(), usd.ravel(), minlength=n)
    net -= np.bincount(links.dst, usd.sum(axis=0), minlength=n)
    kinds = np.repeat([[KIND[k]] for k in TRADE_KINDS], links.n, axis=1)
    payer = np.tile(links.dst, (len(TRADE_KINDS), 1))
    paid = usd > 0
    entries = list(
        zip(
            kinds[paid].tolist(),
            payer[paid].tolist(),
            payee[paid].tolist(),
            usd[paid].tolist(),
            strict=True,
        )
    )
    return net, entries


def _posted(m: SupplyChainModel) -> list[tuple[int, int, int, float]]:
    """Post this month's trade payments; return the positive entries kept."""
    led = m.ledger
    rows = len(led.rows)
    pay_for_trade(m)
    entries = []
    for _, payer, payee, kinds, usd in led.rows[rows:]:
        pos = usd > 0
        entries += zip(
            kinds[pos].tolist(),
            payer[pos].tolist(),
            payee[pos].tolist(),
            usd[pos].tolist(),
            strict=True,
        )
    return entries


@pytest.mark.parametrize(
    "levies",
    [(), ("rent",), ("tariff",), ("duty",), ("rent", "tariff", "duty")],
    ids=lambda x: "+".join(x) or "none",
)
def test_trade_payments_match_posting_every_component(model, levies):
    rng = np.random.default_rng(len(levies))
    c, n_links = model.clearing, model.links.n
    some = rng.random(n_links) < 0.3  # levies on about a third of the links

    def levy(name: str, scale: float) -> np.ndarray:
        if name not in levies:
            return np.zeros(n_links)
        return np.where(some, rng.random(n_links) * scale, 0.0)

    rent, tariff, duty = levy("rent", 20.0), levy("tariff", 5.0), levy("duty", 3.0)
    model.clearing = replace(
        c,
        shipped_t=np.where(rng.random(n_links) < 0.8, rng.random(n_links) * 50, 0.0),
        price_usd_per_kg=c.price_usd_per_kg + rent,
        rent_usd_per_kg=rent,
        tariff_usd_per_kg=tariff,
        duty_usd_per_kg=duty,
    )
    try:
        expected_net, expected_entries = _reference(model)
        # balances are cumulative: compare what this posting adds, from the same balances
        start = model.ledger.balance.copy()
        entries = _posted(model)
        assert np.array_equal(model.ledger.balance, start + expected_net)
        assert entries == expected_entries
    finally:
        model.clearing = c


def test_reference_sees_a_wrong_split(model):
    """The comparison above fails when a component is paid to the wrong party."""
    c = model.clearing
    rent = np.full(model.links.n, 1.0)
    model.clearing = replace(c, price_usd_per_kg=c.price_usd_per_kg + rent, rent_usd_per_kg=rent)
    try:
        expected_net, _ = _reference(model)
        layout = model.trade_layout
        saved = layout.payee.copy()
        layout.payee[1] = model.carriers  # rent paid to the carriers instead of the seller
        layout.rows.clear()
        start = model.ledger.balance.copy()
        _posted(model)
        assert not np.array_equal(model.ledger.balance, start + expected_net)
    finally:
        layout.payee[:] = saved
        layout.rows.clear()
        model.clearing = c


def test_span_is_a_slice_only_for_contiguous_ranges():
    assert span(np.array([3, 4, 5])) == slice(3, 6)
    gaps = np.array([3, 5, 6])
    assert span(gaps) is gaps
    empty = np.array([], np.int64)
    assert span(empty) is empty


def test_index_arrays_give_the_same_months_as_slices():
    """Role sets are contiguous, so the hot paths index with slices; index arrays (the
    general case) must give the same balances, debt, volatility and records bit for bit."""
    world, _ = load_world(ROOT / "models" / "classroom.toml")
    a = SupplyChainModel(world, rng=3, end="2025-06")
    b = SupplyChainModel(world, rng=3, end="2025-06")
    assert isinstance(a.firm_span, slice)
    b.firm_span, b.oem_span = b.idx["firm"], b.idx["oem"]
    b.sep_span, b.buyer_span = b.idx["separator"], b.idx["buyer"]
    a.run()
    b.run()
    assert np.array_equal(a.ledger.balance, b.ledger.balance)
    assert np.array_equal(a.finance.debt_usd, b.finance.debt_usd)
    assert np.array_equal(a.finance.price_var, b.finance.price_var)
    assert np.array_equal(a.recorder.ndpr, b.recorder.ndpr)
    assert np.array_equal(a.recorder.ask, b.recorder.ask)
