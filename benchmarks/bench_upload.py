"""What an upload leaves behind: the server's RSS and upload folders before, during and after a visitor's
upload, once the tab is closed. Loopback only; stops by itself.

Starts the served app (bench_load.start_server), uploads a ``--mb`` MB file through the home page's
uploader in Chromium (a .bin that is no checkpoint, so the analysis refuses it at once and only the
upload's own cost remains), then closes the tab and measures the RSS ``--after`` seconds later; then,
once ``--ttl`` (``server.disconnectedSessionTTL``) has passed, another visitor comes and goes (which
lets Streamlit drop the expired session) and the RSS is measured again.

    python benchmarks/bench_upload.py [--mb 300] [--after 10] [--ttl 20]
"""

from __future__ import annotations

import argparse
import glob
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_load import CHROMIUM, CHROMIUM_ARGS, proc_status, start_server  # noqa: E402


def upload_dirs() -> list[str]:
    return sorted(glob.glob(os.path.join(tempfile.gettempdir(), "farms_viz-*", "session-*")))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=300)
    ap.add_argument("--after", type=float, default=10)
    ap.add_argument("--ttl", type=int, default=20, help="server.disconnectedSessionTTL (Streamlit's default: 120)")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        blob = Path(tmp) / "not-a-checkpoint.bin"
        with open(blob, "wb") as f:
            f.write(os.urandom(2**20) * args.mb)
        proc, url = start_server(1, subprocess.DEVNULL, "--server.disconnectedSessionTTL", str(args.ttl))
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page()
                page.goto(url + "/?ops=3")
                page.get_by_text("Layers analysed").wait_for(timeout=240_000)
                before = proc_status(proc.pid)["VmRSS"]
                page.get_by_text("Upload", exact=True).click()
                page.locator('input[type="file"]').set_input_files(str(blob))
                page.get_by_text("not-a-checkpoint.bin").last.wait_for(timeout=120_000)
                page.locator('[data-testid="stAlert"]').first.wait_for(timeout=120_000)
                time.sleep(2)
                during = proc_status(proc.pid)["VmRSS"]
                dirs = upload_dirs()
                files = [f for d in dirs for f in os.listdir(d)]
                page.close()
                closed = time.time()
                time.sleep(args.after)
                after = proc_status(proc.pid)["VmRSS"]
                left = [f for d in upload_dirs() for f in os.listdir(d)]
                time.sleep(max(0.0, closed + args.ttl + 1 - time.time()))
                other = browser.new_page()  # a later visitor: Streamlit drops expired sessions now
                other.goto(url + "/Lab?rows=100&cols=100")
                other.get_by_text("α FARMS").first.wait_for(timeout=120_000)
                other.close()
                time.sleep(2)
                later = proc_status(proc.pid)["VmRSS"]
                browser.close()
        finally:
            proc.terminate()
            proc.wait(10)
    print(f"{args.mb} MB upload: server RSS {before:.0f} MB before, {during:.0f} MB with the upload, "
          f"{after:.0f} MB {args.after:.0f} s after the tab closed, {later:.0f} MB after the session's "
          f"{args.ttl} s reconnection window and another visit")
    print(f"upload files while open: {files}; left after close: {left}")


if __name__ == "__main__":
    main()
