"""The rare-earth policy game (``ndsim game``): teams steer the chain one simulated year a turn.

:mod:`sim.game.levers` (roles, their levers and how each becomes a ``[policies]`` table),
:mod:`sim.game.session` (games, teams, tokens, years, undo, scores, debrief) and
:mod:`sim.game.server` (the HTTP server and its pages).
"""
