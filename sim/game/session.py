"""Games: join codes, team tokens, one simulated year a turn, undo, scores and the debrief.

A :class:`Game` owns one :class:`~sim.app.live.LiveRun`. Each turn the teams' levers become
``[policies]`` tables in force from the turn's first month; the teacher advances a year.
Every action names a token; a team's token may change only its own role's levers. Undo
replays the kept decisions from the start (the run is seeded, so the replay is exact).
:class:`Games` holds many games, each isolated from the others.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sim.app.controls import Controls
from sim.app.live import LiveRun, Series
from sim.calendar import format_month
from sim.game.levers import ROLES, clamp, neutral_levers, policy_tables


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


def scores(s: Series, base: Series, raw_regions: dict[str, float] | None = None) -> dict:
    """Each role's objective over the months played, with the no-decision run's value.

    China: its share of world magnet output (%). USA, EU: magnet shortage (t) and public money
    (million USD). EV maker: US shortage (t). Magnet maker: output of plants outside China (t).
    """
    t = s.months.size

    def total(d: dict[str, np.ndarray], g: str, n: int) -> float:
        return float(d[g][:n].sum()) if g in d else 0.0

    def share(x: Series, n: int) -> float:
        world = sum(float(v[:n].sum()) for v in x.production.values())
        return 100.0 * total(x.production, "china", n) / world if world > 0 else 0.0

    def money(x: Series, g: str, n: int) -> float:
        return float(x.money[g][n - 1]) / 1e6 if g in x.money and n else 0.0

    out = {
        "china": {"China share of magnet output (%)": (share(s, t), share(base, t))},
        "usa": {
            "US shortage (t)": (total(s.shortage, "usa", t), total(base.shortage, "usa", t)),
            "US public money (M USD)": (money(s, "usa", t), 0.0),
        },
        "eu": {
            "EU shortage (t)": (total(s.shortage, "eu", t), total(base.shortage, "eu", t)),
            "EU public money (M USD)": (money(s, "eu", t), 0.0),
        },
        "ev_maker": {
            "US shortage (t)": (total(s.shortage, "usa", t), total(base.shortage, "usa", t))
        },
        "magnet_maker": {
            "magnets made outside China (t)": (
                sum(total(s.production, g, t) for g in s.production if g != "china"),
                sum(total(base.production, g, t) for g in base.production if g != "china"),
            )
        },
    }
    return out


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
        return LiveRun(Controls(world=self.world, seed=self.seed))

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
        m = self.run.model
        tables = policy_tables(
            levers, self.run.raw, format_month(m.month_abs), format_month(m.month_abs + 11)
        )
        self.run.apply_tables(tables, f"decisions for {m.month_abs // 12}")
        self.run.step(12)

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
    def scoreboard(self) -> dict[str, Any]:
        """Each role's objective now and in the no-decision run over the same months."""
        s = self.run.series()
        return scores(s, self.run.baseline())

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
                    other = scores(run.series(), run.baseline())
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
            return {"code": self.code, "final": final, "years": rows}


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
