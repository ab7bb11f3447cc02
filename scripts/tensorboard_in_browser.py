"""Open a sweep in TensorBoard in a real browser and print what it shows first: the Time Series
groups in order, and the HPARAMS table's columns and rows. Screenshots go to --out.

Needs Playwright (`pip install playwright`) and a Chromium (Debian: `apt-get install chromium`):

    python scripts/tensorboard_in_browser.py <sweep folder> --out /tmp/tb-shots
"""

import argparse
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(logdir: Path, port: int) -> subprocess.Popen:
    server = subprocess.Popen(
        [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir), "--host",
         "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/data/runs", timeout=2)
            return server
        except OSError:
            time.sleep(0.5)
    server.terminate()
    raise SystemExit("TensorBoard did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("logdir", type=Path)
    parser.add_argument("--out", type=Path, default=Path("tensorboard-shots"))
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    server = serve(args.logdir, port)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.goto(f"http://127.0.0.1:{port}/#timeseries")
            page.wait_for_selector(".group-title", timeout=60_000)
            page.wait_for_timeout(3000)
            groups = page.eval_on_selector_all(
                ".group-title", "els => els.map(e => e.textContent.trim())"
            )
            print("Time Series groups, in order:", groups)
            page.screenshot(path=str(args.out / "timeseries.png"))
            page.goto(f"http://127.0.0.1:{port}/#hparams")
            page.wait_for_timeout(6000)
            page.screenshot(path=str(args.out / "hparams.png"), full_page=True)
            text = page.inner_text("body")
            print("HPARAMS tab text (first 1,500 characters):")
            print(text[:1500])
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(f"screenshots in {args.out}")


if __name__ == "__main__":
    main()
