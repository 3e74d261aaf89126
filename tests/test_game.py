"""The rare-earth game without a browser: tokens, turns, undo, isolation, debrief."""

from __future__ import annotations

import numpy as np
import pytest

from sim.game.session import GameError, Games


@pytest.fixture
def game():
    g = Games().create()
    g.tokens = {r: g.join(r, r).token for r in ("china", "usa", "eu")}
    return g


def test_a_team_changes_only_its_own_levers(game):
    with pytest.raises(GameError) as e:
        game.set_lever(game.tokens["usa"], "china", "approval", 0.0)
    assert e.value.status == 403
    with pytest.raises(GameError):
        game.set_lever("forged", "china", "approval", 0.0)
    assert game.levers["china"]["approval"] == 1.0
    assert game.set_lever(game.tokens["china"], "china", "approval", 7) == 1.0  # clamped
    with pytest.raises(GameError):
        game.join("china", "again")  # taken
    with pytest.raises(GameError):
        game.advance(game.tokens["china"])  # teacher only


def test_decisions_act_through_the_instruments_and_undo_replays(game):
    game.set_lever(game.tokens["china"], "china", "approval", 0.1)
    for _ in range(2):
        game.advance(game.teacher_token)
    with_controls = game.scoreboard()["usa"]["US shortage (t)"]
    assert with_controls[0] > with_controls[1]  # vs the no-decision run
    shortage = game.run.model.recorder.shortage[:24].copy()
    game.advance(game.teacher_token)
    game.undo(game.teacher_token)
    assert len(game.decisions) == 2 and game.year == 2026
    np.testing.assert_array_equal(game.run.model.recorder.shortage[:24], shortage)
    d = game.debrief()
    assert d["years"][0]["changed"] == {"china": {"approval": (1.0, 0.1)}}
    assert d["years"][0]["effect"]["usa"]["US shortage (t)"] > 0


def test_games_are_isolated():
    games = Games()
    a, b = games.create(), games.create()
    assert a.code != b.code and games.get(a.code.lower()) is a
    ta = a.join("china", "x").token
    with pytest.raises(GameError):
        b.set_lever(ta, "china", "approval", 0.0)
    a.set_lever(ta, "china", "approval", 0.0)
    assert b.levers["china"]["approval"] == 1.0


def test_deadline_closes_the_levers(game):
    game.set_deadline(game.teacher_token, -1)
    with pytest.raises(GameError) as e:
        game.set_lever(game.tokens["eu"], "eu", "stockpile_days", 30)
    assert e.value.status == 409
