"""Policy instruments held by Government agents, composed into one :class:`PolicySet`."""

from sim.policies.base import Instrument, PolicySet
from sim.policies.tariffs import Tariffs

__all__ = ["Instrument", "PolicySet", "Tariffs"]
