"""`defdistill-tui --serve`: the dashboard in a browser tab (textual-serve), for one run, safely.

The run's engine is a process of its own (launched here, or the one `--attach` names); each browser
tab that connects starts a dashboard attached to it. The server binds to 127.0.0.1 unless told
otherwise (another address is said as a warning), and every request needs a random token, as
Jupyter's: in the URL printed at start (?token=...), which then sets an HttpOnly cookie for the
page's websocket, scripts and downloads. Any user of the machine can reach 127.0.0.1: the token is
what keeps them out. Behind an SSH tunnel whose local port differs, `--public-url` gives the
address the browser uses, since textual-serve writes absolute URLs into its page.
"""

from __future__ import annotations

import hmac
import secrets
import shlex
import sys
from pathlib import Path

from engine.client import UserError

COOKIE = "defdistill_token"
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _import_server():
    try:
        from aiohttp import web
        from textual_serve.server import Server
    except ImportError:
        raise UserError("--serve needs textual-serve: pip install -e '.[serve]' (or pip install textual-serve)") \
            from None
    return Server, web


def make_server(command: str, host: str, port: int, token: str, public_url: str | None, title: str):
    Server, web = _import_server()

    @web.middleware
    async def require_token(request, handler):
        given = request.query.get("token") or request.cookies.get(COOKIE) or ""
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise web.HTTPForbidden(text="defdistill: this dashboard needs its token; open the URL printed when "
                                         "`defdistill-tui --serve` started (it ends in ?token=...)\n")
        response = await handler(request)
        if "token" in request.query and isinstance(response, web.Response) and not response.prepared:
            response.set_cookie(COOKIE, token, httponly=True, samesite="Strict")
        return response

    class TokenServer(Server):
        async def _make_app(self):
            app = await super()._make_app()
            app.middlewares.append(require_token)
            return app

        async def on_startup(self, app) -> None:  # the URL with its token instead of textual-serve's banner
            print(f"defdistill dashboard: {self.public_url}/?token={token}", flush=True)
            print("(the token is the key: anyone with this URL can steer the run; Ctrl+C stops serving, "
                  "the run goes on)", flush=True)

    return TokenServer(command, host=host, port=port, public_url=public_url, title=title)


def serve(run_dir: Path, host: str = "127.0.0.1", port: int = 8000, public_url: str | None = None,
          token: str | None = None) -> None:
    """Serve dashboards attached to `run_dir` until Ctrl+C (the run itself goes on)."""
    token = token or secrets.token_urlsafe(24)
    if host not in LOOPBACK:
        print(f"defdistill-tui: warning: serving on {host}, not only this machine: anyone who can reach "
              f"{host}:{port} and has the token can steer the run; prefer 127.0.0.1 and an SSH tunnel",
              file=sys.stderr)
    command = shlex.join([sys.executable, "-m", "tui", "--attach", str(run_dir)])
    server = make_server(command, host, port, token, public_url or f"http://{host}:{port}",
                         f"defdistill {run_dir.name}")
    server.serve()
