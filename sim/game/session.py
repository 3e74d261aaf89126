"""Games: join codes, team tokens, one simulated year a turn, undo, scores and the debrief.

A :class:`Game` owns one :class:`~sim.app.live.LiveRun`. Each turn the teams' levers become
``[policies]`` tables in force from the turn's first month; the teacher advances a year.
Every action names a token; a team's token may change only its own role's levers. Undo
replays the kept decisions from the start (the run is seeded, so the replay is exact).
:class:`Games` holds many games, each isolated from the others.
"""

from __future__ import annotations

import functools
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sim.app.controls import Controls, world_choices
from sim.app.live import PRIVATE, LiveRun, series_of
from sim.calendar import format_month
from sim.game.levers import (
    ROLES,
    clamp,
    ev_maker_oems,
    game_firms,
    investments,
    magnet_maker_plants,
    neutral_levers,
    policy_tables,
    tariff_specs,
)
from sim.policies.instruments import KG_PER_T


class GameError(Exception):
    """A refused action; ``status`` is the HTTP status the server answers with."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass
class Team:
    """A team: its role, display name and secret token."""

    role: str
    name: str
    token: str


def _cum(x: np.ndarray) -> np.ndarray:
    return np.cumsum(np.nan_to_num(x))


def _private(rec, owner: str, metric: str, t: int) -> np.ndarray:
    """A firm team's cumulative instrument series (USD), zeros where it held none."""
    out = np.zeros(t)
    for (m, _, region), arr in rec.policy_series.items():
        if m == metric and region == PRIVATE + owner:
            out += np.nan_to_num(arr[:t])
    return out


def objective_series(
    m, raw: dict[str, Any], invested: list[tuple[int, str, float]]
) -> dict[str, dict[str, np.ndarray]]:
    """Each role's objectives month by month (cumulative since the start) for a model run.

    China: its share of world magnet output (%). USA, EU: magnet shortage of the region's
    users (t) and public money (million USD). EV maker: shortage of the US EV makers (t) and its
    cost: own stock bought less sold, contract payments and investment (million USD). Magnet
    maker: profit, i.e. margin over unit cost on magnets made by its plants, plus contract
    income from the EV maker, less its metal stock, metal contract and investment (M USD).
    """
    rec, t = m.recorder, m.recorder.t
    s = series_of(m)
    ids = {name: k for k, name in enumerate(m.nodes.ids)}

    def region_total(d: dict[str, np.ndarray], g: str) -> np.ndarray:
        return _cum(d[g][:t]) if g in d else np.zeros(t)

    def money(g: str) -> np.ndarray:
        return np.nan_to_num(s.money[g][:t]) / 1e6 if g in s.money else np.zeros(t)

    def spent(owner: str) -> np.ndarray:
        return (
            _private(rec, owner, "stockpile_spent_usd", t)
            - _private(rec, owner, "stockpile_revenue_usd", t)
            + _private(rec, owner, "price_floor_paid_usd", t)
        )

    def invest(role: str) -> np.ndarray:
        out = np.zeros(t)
        for month, who, usd in invested:
            k = month - m.start_abs
            if who == role and 0 <= k < t:
                out[k:] += usd
        return out

    world = sum(_cum(v[:t]) for v in s.production.values())
    china = region_total(s.production, "china")
    share = np.divide(100.0 * china, world, out=np.zeros(t), where=world > 0)
    ev = np.array([ids[i] for i in ev_maker_oems(raw) if i in ids], np.int64)
    plants = np.array([ids[i] for i in magnet_maker_plants(raw) if i in ids], np.int64)
    margin = (rec.ask[:t, plants] - rec.unit_cost[:t, plants]) * rec.produced[:t, plants]
    profit = (
        _cum(margin.sum(axis=1) * KG_PER_T)
        + _private(rec, "ev_maker", "price_floor_paid_usd", t)
        - spent("magnet_maker")
        - invest("magnet_maker")
    )
    return {
        "china": {"China share of magnet output (%)": share},
        "usa": {
            "US shortage (t)": region_total(s.shortage, "usa"),
            "US public money (M USD)": money("usa"),
        },
        "eu": {
            "EU shortage (t)": region_total(s.shortage, "eu"),
            "EU public money (M USD)": money("eu"),
        },
        "ev_maker": {
            "EV maker shortage (t)": _cum(rec.shortage[:t, ev].sum(axis=1)),
            "EV maker cost (M USD)": (spent("ev_maker") + invest("ev_maker")) / 1e6,
        },
        "magnet_maker": {"Magnet maker profit (M USD)": profit / 1e6},
    }


@functools.lru_cache(maxsize=8)
def baseline_objectives(world: str, seed: int) -> dict[str, dict[str, np.ndarray]]:
    """The no-decision game's objectives over the whole run (cached per world and seed)."""
    run = _game_run(world, seed)
    while run.model.running:
        run.model.step()
    return objective_series(run.model, run.raw, [])


def _game_run(world: str, seed: int) -> LiveRun:
    """A fresh run of the game's world (the world plus :func:`game_firms`)."""
    from sim.world import read_toml

    path = world_choices().get(world)
    if path is None:
        raise GameError(f"world {world!r} is not available here", 400)
    return LiveRun(Controls(world=world, seed=seed), firms=game_firms(read_toml(path)))


def scores(
    now: dict[str, dict[str, np.ndarray]], base: dict[str, dict[str, np.ndarray]], t: int
) -> dict[str, dict[str, tuple[float, float]]]:
    """Each objective after ``t`` months: (this game, the no-decision run)."""
    return {
        r: {
            k: (float(v[t - 1]) if t else 0.0, float(base[r][k][t - 1]) if t else 0.0)
            for k, v in obj.items()
        }
        for r, obj in now.items()
    }


@dataclass
class Game:
    """One game: its code, teacher token, teams, year and decisions."""

    code: str
    world: str = "classroom"
    seed: int = 0
    teacher_token: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    teams: dict[str, Team] = field(default_factory=dict)
    deadline_unix: float | None = None
    decisions: list[dict[str, dict[str, float]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.lock = threading.RLock()
        self.levers = neutral_levers()
        self.run = self._fresh()

    def _fresh(self) -> LiveRun:
        run = _game_run(self.world, self.seed)
        run.invested = []  # (month, role, USD) of the teams' investments
        return run

    # ------------------------------------------------------------------ who is who
    def role_of(self, token: str) -> str:
        """The role of a team token; ``teacher`` for the teacher's; 403 otherwise."""
        if token and secrets.compare_digest(token, self.teacher_token):
            return "teacher"
        for t in self.teams.values():
            if token and secrets.compare_digest(token, t.token):
                return t.role
        raise GameError("unknown token for this game", 403)

    def join(self, role: str, name: str) -> Team:
        """A new team in a free role."""
        with self.lock:
            if role not in ROLES:
                raise GameError(f"no role {role!r}; roles are {sorted(ROLES)}", 400)
            if role in self.teams:
                raise GameError(f"role {role!r} is taken", 409)
            team = Team(role, (name or ROLES[role].name)[:40], secrets.token_urlsafe(16))
            self.teams[role] = team
            return team

    # ------------------------------------------------------------------ turns
    @property
    def year(self) -> int:
        """The calendar year the teams are deciding for."""
        return self.run.model.month_abs // 12

    @property
    def open(self) -> bool:
        """Whether levers may still be changed this turn (before the deadline)."""
        return self.deadline_unix is None or time.time() <= self.deadline_unix

    def set_lever(self, token: str, role: str, key: str, value: float) -> float:
        """Set one lever of ``role``; only that role's own token may (403 otherwise)."""
        with self.lock:
            who = self.role_of(token)
            if who != role:
                raise GameError(f"a {who} token cannot change the {role} levers", 403)
            if not self.open:
                raise GameError("the deadline for this year has passed", 409)
            try:
                v = clamp(role, key, value)
            except KeyError:
                raise GameError(f"{role} has no lever {key!r}", 400) from None
            self.levers[role][key] = v
            return v

    def set_deadline(self, token: str, seconds: float | None) -> None:
        """Teacher: close the levers ``seconds`` from now (None: no deadline)."""
        with self.lock:
            self._teacher(token)
            self.deadline_unix = None if seconds is None else time.time() + float(seconds)

    def _teacher(self, token: str) -> None:
        if self.role_of(token) != "teacher":
            raise GameError("only the teacher may do this", 403)

    def _play_year(self, levers: dict[str, dict[str, float]]) -> None:
        from sim.policies import Tariffs

        run = self.run
        m = run.model
        first, last = format_month(m.month_abs), format_month(m.month_abs + 11)
        run.apply_tables(
            policy_tables(levers, run.raw, first, last), f"decisions for {m.month_abs // 12}"
        )
        specs = tariff_specs(levers, first, last)
        if specs:  # the US government's tariff table for this year
            tariffs = Tariffs(m, "usa", specs)
            m.policies.instruments.append(tariffs)
            gov = next((g for g in m.governments if getattr(g, "region", None) == "usa"), None)
            if gov is not None:
                gov.instruments.append(tariffs)
        lead = round(12 * m.world.behaviour.lead_time_years.get("magnet_plant", 1.5))
        ids = {name: k for k, name in enumerate(m.nodes.ids)}
        for inv in investments(levers, run.raw):  # capacity projects, as a world declares
            for firm, t_per_yr in inv.firms:
                m.add_project(m.month_abs + lead, ids[firm], t_per_yr, "investment")
            run.invested.append((m.month_abs, inv.role, inv.cost_usd))
        run.step(12)

    def advance(self, token: str) -> None:
        """Teacher: play the year with the levers as set now."""
        with self.lock:
            self._teacher(token)
            if not self.run.model.running:
                raise GameError("the run has ended", 409)
            snapshot = {r: dict(v) for r, v in self.levers.items()}
            self._play_year(snapshot)
            self.decisions.append(snapshot)
            self.deadline_unix = None

    def undo(self, token: str) -> None:
        """Teacher: take back the last year (replayed from the start without it)."""
        with self.lock:
            self._teacher(token)
            if not self.decisions:
                raise GameError("nothing to undo", 409)
            last = self.decisions.pop()
            self.run = self._replay(self.decisions)
            self.levers = {r: dict(v) for r, v in last.items()}

    def _replay(self, decisions: list[dict[str, dict[str, float]]]) -> LiveRun:
        keep, self.run = self.run, self._fresh()
        try:
            for d in decisions:
                self._play_year(d)
            return self.run
        finally:
            self.run = keep

    # ------------------------------------------------------------------ views
    def objectives(self, run: LiveRun | None = None) -> dict[str, dict[str, np.ndarray]]:
        """Each role's objectives month by month in ``run`` (default: the game's)."""
        run = run or self.run
        return objective_series(run.model, run.raw, run.invested)

    def scoreboard(self, run: LiveRun | None = None) -> dict[str, Any]:
        """Each role's objective now and in the no-decision run over the same months."""
        run = run or self.run
        base = baseline_objectives(self.world, self.seed)
        return scores(self.objectives(run), base, run.model.recorder.t)

    def state(self, token: str) -> dict[str, Any]:
        """What a token may see: its own levers (all, for the teacher), year, scoreboard."""
        with self.lock:
            who = self.role_of(token)
            return {
                "code": self.code,
                "you": who,
                "year": self.year,
                "years_played": len(self.decisions),
                "open": self.open,
                "deadline_in_s": None
                if self.deadline_unix is None
                else max(0.0, self.deadline_unix - time.time()),
                "teams": {r: t.name for r, t in self.teams.items()},
                "levers": self.levers if who == "teacher" else {who: self.levers[who]},
                "lever_specs": {
                    r: [lv.__dict__ for lv in ROLES[r].levers]
                    for r in (ROLES if who == "teacher" else [who])
                },
                "roles": {r: {"name": x.name, "objective": x.objective} for r, x in ROLES.items()},
                "scoreboard": self.scoreboard(),
            }

    def debrief(self) -> dict[str, Any]:
        """The game against the no-decision run, and what each year's decisions did.

        A decision's effect: the final scores minus those of a replay in which that team's
        levers stayed that year as the year before (everything else as played).
        """
        with self.lock:
            final = self.scoreboard()
            rows = []
            for k, d in enumerate(self.decisions):
                prev = self.decisions[k - 1] if k else neutral_levers()
                for role, lv in d.items():
                    changed = {
                        key: (prev[role][key], v) for key, v in lv.items() if v != prev[role][key]
                    }
                    if not changed:
                        continue
                    alt_year = {**d, role: dict(prev[role])}
                    run = self._replay([*self.decisions[:k], alt_year, *self.decisions[k + 1 :]])
                    other = self.scoreboard(run)
                    effect = {
                        r: {m: final[r][m][0] - other[r][m][0] for m in final[r]} for r in final
                    }
                    rows.append(
                        {
                            "year": self.run.model.start_abs // 12 + k,
                            "changed": {role: changed},
                            "effect": effect,
                        }
                    )
            t = self.run.model.recorder.t
            first = self.run.model.start_abs
            base = baseline_objectives(self.world, self.seed)
            lines = {
                r: {
                    k: {
                        "game": [round(float(x), 2) for x in v[:t]],
                        "baseline": [round(float(x), 2) for x in base[r][k][:t]],
                    }
                    for k, v in obj.items()
                }
                for r, obj in self.objectives().items()
            }
            months = [f"{(first + k) // 12:04d}-{(first + k) % 12 + 1:02d}" for k in range(t)]
            return {
                "code": self.code,
                "final": final,
                "years": rows,
                "months": months,
                "lines": lines,
            }


class Games:
    """Every game on one server, by join code; games never see each other."""

    def __init__(self) -> None:
        self._games: dict[str, Game] = {}
        self._lock = threading.Lock()

    def create(self, world: str = "classroom", seed: int = 0) -> Game:
        """A new game with a fresh 6-letter join code."""
        with self._lock:
            while True:
                code = "".join(secrets.choice("ABCDEFGHJKLMNPQRSTUVWXYZ") for _ in range(6))
                if code not in self._games:
                    break
            g = Game(code, world=world, seed=seed)
            self._games[code] = g
            return g

    def get(self, code: str) -> Game:
        """The game with this code (404 if none)."""
        g = self._games.get((code or "").upper())
        if g is None:
            raise GameError(f"no game with code {code!r}", 404)
        return g
