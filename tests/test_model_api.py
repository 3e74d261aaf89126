"""The model as a Mesa model: agents by type, the network space, stepping, topology."""

from __future__ import annotations

import networkx as nx
from mesa.discrete_space import Network

import sim
from sim.agents import OEM, Government, MagnetPlant, Mine
from tests.conftest import BASELINE, CLASSROOM


def test_agents_space_and_graph():
    world, _ = sim.load_world(BASELINE)
    model = sim.SupplyChainModel(world, rng=5)
    assert isinstance(model.space, Network)
    for agent in model.agent_of:
        assert agent.cell.coordinate == agent.node_id
        assert agent in agent.cell.agents
    by_type = model.agents_by_type
    assert len(by_type[Mine]) == len(world.mines)
    assert len(by_type[MagnetPlant]) == len(world.magnet_plants)
    assert len(by_type[OEM]) == len(world.oems)
    assert len(by_type[Government]) == len(world.governments)
    g = model.graph
    assert g.number_of_nodes() == model.nodes.n and g.number_of_edges() == model.links.n
    # every OEM can reach a mine upstream through the graph (a connected chain)
    mine_ids = {a.node_id for a in by_type[Mine]}
    for oem in by_type[OEM]:
        assert nx.ancestors(g, oem.node_id) & mine_ids
    # stage layout: mines left of OEMs
    assert model.layout["cn_northern_bayanobo"][0] < model.layout["us_ev"][0]


def test_step_and_run_for_advance_months():
    model = sim.SupplyChainModel(sim.load_world(CLASSROOM)[0], rng=1, end="2024-12")
    start = model.month_abs
    model.step()
    model.run_for(2)
    assert model.month_abs == start + 3 and model.recorder.t == 3
    model.run()
    assert model.recorder.t == 12 and not model.running
    agent = model.agent("usa_mine")
    assert agent.capacity_t_per_yr > 0 and agent.ask_usd_per_kg > 0


def test_governments_hold_their_instruments():
    world, _ = sim.load_world(BASELINE)
    model = sim.SupplyChainModel(world, rng=0)
    usa = next(g for g in model.agents_by_type[Government] if g.region == "usa")
    assert [type(i).__name__ for i in usa.instruments] == ["Tariffs"]
    assert all(i in model.policies.instruments for i in usa.instruments)
