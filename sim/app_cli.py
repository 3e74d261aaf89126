"""``ndsim ui``: serve the classroom web app (:mod:`sim.app`) on localhost with Solara."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from sim.errors import UserError

APP = Path(__file__).resolve().parent / "app" / "page.py"
ROOT = Path(__file__).resolve().parents[1]
ASSETS_ENV = "NDSIM_UI_ASSETS"


def assets_dir() -> Path:
    """Where the page's front-end files (Solara's CDN packages) are kept for offline use."""
    env = os.environ.get(ASSETS_ENV)
    return Path(env) if env else ROOT / "build" / "solara-cdn"


def cdn_packages() -> list[str]:
    """The npm packages (``name@version``) that Solara's page template loads from its CDN."""
    import solara.server

    tpl = Path(solara.server.__file__).parent / "templates" / "solara.html.j2"
    found = re.findall(r"\{\{cdn\}\}/((?:@[\w.-]+/)?[\w.-]+@[\w.-]+)/", tpl.read_text())
    # the ECharts component imports its library from the same CDN
    vue = Path(solara.server.__file__).parents[1] / "components" / "echarts.vue"
    version = re.search(r'const version = "([\w.-]+)"', vue.read_text())
    if version:
        found.append(f"echarts@{version.group(1)}")
    return sorted(set(found))


def missing_assets(cache: Path | None = None) -> list[str]:
    """CDN packages not yet in the local cache."""
    cache = cache or assets_dir()
    return [pkg for pkg in cdn_packages() if not (cache / pkg / "package.json").is_file()]


def ensure_assets(cache: Path | None = None, timeout: float = 180.0) -> list[str]:
    """Fetch missing CDN packages with ``npm pack`` into the cache; return what is missing.

    Solara serves files found in its proxy cache directory instead of downloading them, so
    with the cache filled the page needs no network. Without npm (or registry access) nothing
    is fetched and the missing packages are returned.
    """
    cache = cache or assets_dir()
    missing = missing_assets(cache)
    npm = shutil.which("npm")
    if not missing or npm is None:
        return missing
    with tempfile.TemporaryDirectory() as tmp:
        try:
            subprocess.run(
                [npm, "pack", *missing, "--silent", "--pack-destination", tmp],
                cwd=tmp,
                check=True,
                timeout=timeout,
                capture_output=True,
            )
        except (subprocess.SubprocessError, OSError):
            return missing
        for pkg in missing:
            name, _, version = pkg.rpartition("@")
            tgz = Path(tmp) / f"{name.lstrip('@').replace('/', '-')}-{version}.tgz"
            if not tgz.is_file():
                continue
            dest = cache / pkg
            part = cache / f".{pkg.replace('/', '_')}.part"
            shutil.rmtree(part, ignore_errors=True)
            part.mkdir(parents=True)
            with tarfile.open(tgz) as tar:
                tar.extractall(part, filter="data")
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(dest, ignore_errors=True)
            (part / "package").rename(dest)
            shutil.rmtree(part, ignore_errors=True)
    return missing_assets(cache)


def server_env(world: str | None = None) -> dict[str, str]:
    """Environment for the Solara server: the world file, no telemetry, no CDN downloads."""
    env = dict(os.environ)
    if world:
        env["NDSIM_UI_WORLD"] = str(Path(world).resolve())
    env.setdefault("SOLARA_ASSETS_PROXY_CACHE_DIR", str(assets_dir()))
    env.setdefault("SOLARA_TELEMETRY_MIXPANEL_ENABLE", "False")
    env.setdefault("SOLARA_ASSETS_FONTAWESOME_ENABLED", "False")
    env.setdefault("MPLBACKEND", "Agg")
    env.setdefault("SOLARA_THEME_SHOW_BANNER", "False")  # the badge covered chart labels
    return env


def server_command(port: int, host: str = "127.0.0.1") -> list[str]:
    """The ``solara run`` command line serving the app."""
    return [
        sys.executable,
        "-m",
        "solara",
        "run",
        str(APP),
        "--host",
        host,
        "--port",
        str(port),
        "--production",
        "--no-open",
    ]


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: the child gets SIGTERM when ``ndsim ui`` dies, even by SIGKILL."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def serve_child(cmd: list[str], env: dict[str, str]) -> int:
    """Run a server child in the foreground; SIGTERM/SIGINT stop it cleanly (and us).

    ``kill PID`` of ``ndsim ui`` terminates the ``solara run`` child too, and the child also
    stops if ``ndsim ui`` dies without a chance to clean up.
    """
    proc = subprocess.Popen(cmd, env=env, preexec_fn=_die_with_parent)  # noqa: PLW1509
    stopping = {"signal": 0}

    def stop(signum: int, _frame) -> None:
        stopping["signal"] = signum
        if proc.poll() is None:
            proc.terminate()

    old = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        try:
            rc = proc.wait()
        except KeyboardInterrupt:
            stop(signal.SIGINT, None)
            rc = proc.wait()
        if stopping["signal"]:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
            print("ndsim: server stopped", file=sys.stderr)
            return 0
        return rc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for sig, handler in old.items():
            signal.signal(sig, handler)


def require_ui_extras() -> None:
    """Fail with what to run when the web-app packages (``ndsim[ui]``) are not installed."""
    import importlib.util

    if importlib.util.find_spec("solara") is None:
        raise UserError(
            "the web app needs the 'ui' extras (solara via mesa[viz]), which `make run` does "
            "not install; run `make ui`, or `.venv/bin/pip install -e '.[ui]'`, then try again"
        )


def cmd_ui(args: argparse.Namespace) -> int:
    """Run the Solara server in the foreground until interrupted (SIGINT/SIGTERM)."""
    if args.world:
        from sim.world import load_world

        if not Path(args.world).is_file():
            raise UserError(f"--world {args.world}: no such file")
        load_world(args.world, [])  # fail early, with the usual message, on a bad world
    require_ui_extras()
    missing = ensure_assets()
    if missing:
        print(
            f"ndsim ui: note: front-end files {', '.join(missing)} are not cached in "
            f"{assets_dir()} (npm unavailable?); the page will load them from the internet",
            file=sys.stderr,
        )
    print(f"ndsim ui: open http://{args.host}:{args.port}/ in a browser (Ctrl-C stops)")
    return serve_child(server_command(args.port, args.host), server_env(args.world))


def add_command(sub) -> None:
    """Register ``ndsim ui`` on the ``ndsim`` sub-command parser."""
    u = sub.add_parser("ui", help="serve the classroom web app on localhost")
    u.add_argument("--world", help="world file selected when the page opens")
    u.add_argument("--port", type=int, default=8765)
    u.add_argument("--host", default="127.0.0.1", help="address to listen on")
    u.set_defaults(func=cmd_ui)
    from sim.game.server import add_command as add_game

    add_game(sub)
