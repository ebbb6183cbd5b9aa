"""`defdistill-tui --serve`: the dashboard in a browser, behind a token. Without the token every
request is refused (any user of the machine can reach 127.0.0.1); with it, headless Chromium loads
the page, the dashboard draws its panels, and a key press pauses the run."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import LONG, ROOT, cli, wait_until
from engine.record.events import EventType
from engine.record.rundir import iter_events

pytest.importorskip("textual_serve")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def served(tmp_path):
    """A served digits run: (process, base URL, token, run directory); the run is stopped after."""
    run_dir, port = tmp_path / "run", _free_port()
    args = [sys.executable, "-m", "tui", "digits", "--serve", "--port", str(port), "--run-dir", str(run_dir)]
    for s in LONG:
        args += ["--set", s]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    url = None
    for line in proc.stdout:  # the first lines say where it serves; textual-serve's logging follows
        m = re.search(r"(http://127\.0\.0\.1:\d+)/\?token=([\w-]+)", line)
        if m:
            url = m.groups()
            break
    assert url, "the server never printed its URL"
    # the URL is printed before textual-serve has bound its port: requests wait for it to listen
    wait_until(lambda: _listening(port), 60, "the server listening on its port")
    yield proc, url[0], url[1], run_dir
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(30)
    cli("stop", str(run_dir))


def _get(url: str, cookie: str | None = None) -> tuple[int, str, str]:
    req = urllib.request.Request(url, headers={"Cookie": cookie} if cookie else {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read().decode(errors="replace"), r.headers.get("Set-Cookie", "")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(errors="replace"), ""


def test_without_its_token_the_server_refuses_everything(served):
    _proc, base, token, _run = served
    for path in ("/", "/?token=wrong", "/ws", "/static/js/textual.js", "/download/anything"):
        code, body, _ = _get(base + path)
        assert code == 403 and "needs its token" in body, (path, code)
    code, body, cookie = _get(f"{base}/?token={token}")
    assert code == 200 and "textual.js" in body and "HttpOnly" in cookie
    # the page's own requests carry the cookie the token set, not the token
    code, _body, _ = _get(base + "/static/js/textual.js", cookie.split(";")[0])
    assert code == 200


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium here (Debian's chromium; .ci/run installs it)")
def test_the_served_dashboard_in_headless_chromium(served, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    _proc, base, token, run_dir = served
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, downloads_path=str(tmp_path), args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        try:
            refused = browser.new_page()
            refused.goto(base + "/")
            assert "needs its token" in refused.content()

            page = browser.new_page(viewport={"width": 1500, "height": 950}, accept_downloads=True)
            page.goto(f"{base}/?token={token}")
            page.wait_for_selector("body.-first-byte", timeout=120_000)  # the dashboard's first bytes arrived
            wait_until(lambda: any(e.type == EventType.BATCH for e in iter_events(run_dir / "events.jsonl")), 120,
                       "the engine training")
            page.locator(".textual-terminal").click()
            page.keyboard.press("p")
            wait_until(lambda: any(e.type == EventType.PAUSED for e in iter_events(run_dir / "events.jsonl")), 60,
                       "the PAUSED event a key press in the browser caused")
            shots: list[str] = []

            def screenshot_shows_the_pause() -> bool:
                # the engine wrote PAUSED; the dashboard draws it on its next read of the log, so shoot until it does
                with page.expect_download(timeout=60_000) as download:  # in a browser the screenshot also downloads
                    page.keyboard.press("s")  # the dashboard saves an SVG of what it draws into the run directory
                assert download.value.suggested_filename.endswith(".svg")
                shots.append(Path(download.value.path()).read_text().lower())
                return "paused" in shots[-1]

            wait_until(screenshot_shows_the_pause, 60, "a downloaded screenshot showing the paused state")
            for panel in ("loss", "confidence", "events"):
                assert panel in shots[-1], panel
            assert any(run_dir.glob("screenshot-*.svg"))  # the run directory keeps a copy
            shot = tmp_path / "browser.png"
            page.screenshot(path=str(shot))
            assert shot.stat().st_size > 20_000  # a drawn dashboard, not an empty page
        finally:
            browser.close()
