"""``ndsim game``: the game's HTTP server (Starlette + uvicorn) and its one page.

JSON API (every action carries the caller's token; the server checks it):

* ``POST /api/games`` -> ``{code, token}`` (the teacher's)
* ``POST /api/games/{code}/join`` ``{role, name}`` -> ``{token, role}``
* ``GET /api/games/{code}/state?token=`` -> year, own levers, scoreboard
* ``POST /api/games/{code}/lever`` ``{token, role, key, value}`` (403 for another role)
* ``POST /api/games/{code}/advance|undo|deadline`` ``{token[, seconds]}`` (teacher only)
* ``GET /api/games/{code}/debrief`` (with each objective month by month, for the charts)
* ``GET /echarts.min.js``: ECharts from the offline asset cache, for the debrief's charts

The page (``/``) keeps the token in the browser's local storage, so a refreshed browser
rejoins its team. uvicorn stops cleanly on SIGTERM and SIGINT.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from sim.game.session import GameError, Games

PAGE = Path(__file__).resolve().parent / "page.html"


def echarts_file() -> Path | None:
    """ECharts from the classroom page's offline asset cache (``ndsim ui`` fills it)."""
    from sim.app_cli import assets_dir, cdn_packages

    for pkg in cdn_packages():
        if pkg.startswith("echarts@"):
            path = assets_dir() / pkg / "dist" / "echarts.min.js"
            return path if path.is_file() else None
    return None


def make_app(games: Games | None = None) -> Starlette:
    """The game server's ASGI app (its own :class:`Games`: servers never share games)."""
    games = games or Games()

    async def body(request: Request) -> dict:
        try:
            data = await request.json()
        except ValueError:
            raise GameError("expected a JSON body", 400) from None
        if not isinstance(data, dict):
            raise GameError("expected a JSON object", 400)
        return data

    async def create(request: Request):
        data = await body(request)
        g = games.create(str(data.get("world", "classroom")), int(data.get("seed", 0)))
        return {"code": g.code, "token": g.teacher_token}

    async def join(request: Request):
        data = await body(request)
        team = games.get(request.path_params["code"]).join(
            str(data.get("role", "")), str(data.get("name", ""))
        )
        return {"token": team.token, "role": team.role}

    async def state(request: Request):
        g = games.get(request.path_params["code"])
        return g.state(request.query_params.get("token", ""))

    async def lever(request: Request):
        data = await body(request)
        g = games.get(request.path_params["code"])
        v = g.set_lever(
            str(data.get("token", "")),
            str(data.get("role", "")),
            str(data.get("key", "")),
            float(data.get("value", 0.0)),
        )
        return {"value": v}

    async def teacher(request: Request):
        data = await body(request)
        g = games.get(request.path_params["code"])
        token, action = str(data.get("token", "")), request.path_params["action"]
        if action == "advance":
            g.advance(token)
        elif action == "undo":
            g.undo(token)
        elif action == "deadline":
            s = data.get("seconds")
            g.set_deadline(token, None if s is None else float(s))
        else:
            raise GameError(f"no action {action!r}", 404)
        return g.state(token)

    async def debrief(request: Request):
        return games.get(request.path_params["code"]).debrief()

    def api(fn):
        async def wrapped(request: Request) -> JSONResponse:
            try:
                return JSONResponse(await fn(request))
            except GameError as exc:
                return JSONResponse({"error": str(exc)}, status_code=exc.status)
            except (TypeError, ValueError) as exc:
                return JSONResponse({"error": f"bad request: {exc}"}, status_code=400)

        return wrapped

    async def page(_request: Request) -> FileResponse:
        return FileResponse(PAGE, media_type="text/html")

    async def echarts(_request: Request) -> Response:
        path = echarts_file()
        if path is None:  # the debrief then shows its tables only
            return Response("echarts not in the offline asset cache", status_code=404)
        return FileResponse(path, media_type="text/javascript")

    return Starlette(
        routes=[
            Route("/", page),
            Route("/echarts.min.js", echarts),
            Route("/api/games", api(create), methods=["POST"]),
            Route("/api/games/{code}/join", api(join), methods=["POST"]),
            Route("/api/games/{code}/state", api(state)),
            Route("/api/games/{code}/lever", api(lever), methods=["POST"]),
            Route("/api/games/{code}/debrief", api(debrief)),
            Route("/api/games/{code}/{action}", api(teacher), methods=["POST"]),
        ]
    )


def cmd_game(args: argparse.Namespace) -> int:
    """Serve the game until SIGINT/SIGTERM (uvicorn's graceful shutdown)."""
    import uvicorn

    print(f"ndsim game: open http://{args.host}:{args.port}/ (teacher: 'New game'; Ctrl-C stops)")
    uvicorn.run(make_app(), host=args.host, port=args.port, log_level="warning")
    return 0


def add_command(sub) -> None:
    """Register ``ndsim game`` on the ``ndsim`` sub-command parser."""
    g = sub.add_parser("game", help="serve the multi-team rare-earth policy game")
    g.add_argument("--port", type=int, default=8766)
    g.add_argument("--host", default="127.0.0.1", help="address to listen on")
    g.set_defaults(func=cmd_game)
