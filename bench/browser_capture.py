"""A PNG of the dashboard served in headless Chromium (docs/dashboard-browser.png, for the README).

Starts `defdistill-tui digits --serve` on a free port, opens the printed URL (with its token) in
Debian's Chromium through Playwright, waits for the dashboard to draw mid-training, saves the page.

    python bench/browser_capture.py [--out docs/dashboard-browser.png]
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "dashboard-browser.png")
    ap.add_argument("--seconds", type=float, default=40, help="training time before the picture")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run = Path(tempfile.mkdtemp()) / "run"
    proc = subprocess.Popen([sys.executable, "-m", "tui", "digits", "--serve", "--port", str(port), "--run-dir",
                             str(run)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        url = next(m.group(0) for line in proc.stdout
                   if (m := re.search(r"http://127\.0\.0\.1:\d+/\?token=[\w-]+", line)))
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"])
            page = browser.new_page(viewport={"width": 1500, "height": 950})
            page.goto(url)
            page.wait_for_selector("body.-first-byte", timeout=120_000)
            time.sleep(args.seconds)  # a picture of a run in progress: curves, confidence, events
            page.screenshot(path=str(args.out))
            browser.close()
        print(f"wrote {args.out} ({url.split('?')[0]} served {run})")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
        subprocess.run([sys.executable, "-m", "engine.cli", "stop", str(run)], cwd=ROOT, capture_output=True)


if __name__ == "__main__":
    main()
