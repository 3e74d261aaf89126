"""A scenario: one world with its overrides, policies and calendar, made once and used everywhere.

Experiment files (``sim.scenarios``), sweep specs (``[base] experiment = ..., scenario = ...``)
and the Python API build the same :class:`Scenario`; the web app can adopt it through
:meth:`Scenario.build_model`. A scenario is data: the resolved raw world (the world file with
every ``set`` override and ``policies`` table applied), the period and the default seed.

Referencing a scenario: ``load_scenario("experiments/export_controls_2025.toml#controls")``
(an experiment file and a scenario name) or ``load_scenario("models/classroom.toml")`` (a world
file as is).
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sim.errors import UserError

if TYPE_CHECKING:
    from sim.model import SupplyChainModel
    from sim.results import Results
    from sim.world import World


@dataclass(frozen=True)
class Scenario:
    """World + overrides + policies + calendar: everything that decides a run but the seed.

    Attributes:
        name: Scenario name (letters, digits, ``_``, ``-``).
        world_raw: The resolved raw world dict (overrides and policies applied).
        world_file: The world file it came from (for messages and manifests).
        description: What the scenario is, in words.
        overrides: The ``key.path=value`` strings applied, as written (for the record).
        start: First month ``YYYY-MM`` (None: the world's calendar).
        end: Last month (None: the world's calendar).
        seed: Default seed of :meth:`build_model` and :meth:`run`.
    """

    name: str
    world_raw: dict[str, Any] = field(repr=False)
    world_file: str = "<world>"
    description: str = ""
    overrides: tuple[str, ...] = ()
    start: str | None = None
    end: str | None = None
    seed: int = 0

    def world(self) -> World:
        """The validated world.

        Raises:
            UserError: If the world does not validate.
        """
        from sim.world import validate_world

        return validate_world(copy.deepcopy(self.world_raw), file=self.world_file)

    def with_overrides(self, overrides: list[str] | tuple[str, ...]) -> Scenario:
        """A copy with more ``key.path=value`` overrides applied (validated on use)."""
        from sim.world import apply_override, parse_override

        raw = copy.deepcopy(self.world_raw)
        for text in overrides:
            keys, value = parse_override(text)
            apply_override(raw, keys, value, label=f"--set {text}")
        return replace(self, world_raw=raw, overrides=(*self.overrides, *overrides))

    def with_period(self, start: str | None = None, end: str | None = None) -> Scenario:
        """A copy with another first and/or last month (None keeps the current one)."""
        return replace(self, start=start or self.start, end=end or self.end)

    def fingerprint(self) -> str:
        """SHA-256 of the resolved world and the period (not the name or the seed)."""
        text = json.dumps([self.world_raw, self.start, self.end], sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    def build_model(self, seed: int | None = None, *, record: bool = True) -> SupplyChainModel:
        """A fresh, unstepped model of this scenario.

        Args:
            seed: Seed of the model's generator (default: the scenario's ``seed``).
            record: Keep monthly records (needed for :func:`sim.results.build_results`).
        """
        from sim.model import SupplyChainModel

        return SupplyChainModel(
            self.world(),
            rng=self.seed if seed is None else int(seed),
            start=self.start,
            end=self.end,
            record=record,
        )

    def run(
        self, seed: int | None = None, *, progress: Callable[[int, int], None] | None = None
    ) -> Results:
        """Run the scenario once and return its tables (``manifest['scenario_name']`` set)."""
        from sim.api import run

        return run(self, seed=self.seed if seed is None else int(seed), progress=progress)


def world_scenario(path: str | Path, overrides: list[str] | None = None) -> Scenario:
    """The scenario of a plain world file (plus ``--set`` overrides)."""
    from sim.world import load_world

    world, raw = load_world(path, overrides)
    return Scenario(
        name=world.meta.name,
        world_raw=raw,
        world_file=str(path),
        description=world.meta.description,
        overrides=tuple(overrides or ()),
    )


def load_scenario(ref: str | Path, *, base_dir: str | Path | None = None) -> Scenario:
    """A scenario by reference: ``EXPERIMENT.toml#NAME`` or a world file ``WORLD.toml``.

    Args:
        ref: The reference; relative paths are resolved against ``base_dir`` (default: cwd).
        base_dir: Directory relative references start from (e.g. a sweep spec's folder).

    Raises:
        UserError: If the file or the scenario does not exist, or does not validate.
    """
    text = str(ref)
    path_text, _, name = text.partition("#")
    path = Path(path_text)
    if base_dir is not None and not path.is_absolute():
        path = Path(base_dir) / path
    if not path.exists():
        raise UserError(f"scenario {text!r}: no file {path}")
    if not name:
        from sim.world import read_toml

        if "scenarios" in read_toml(path):
            raise UserError(
                f"scenario {text!r}: {path} is an experiment file; name one of its "
                f"scenarios as {path_text}#NAME"
            )
        return world_scenario(path)
    from sim.scenarios import load_experiment

    exp = load_experiment(path, check_build=False)
    return exp.scenario(name)
