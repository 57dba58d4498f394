"""Load test of the served app: N visitors open heavy Lab links at once; the server must stay healthy.

Starts ``streamlit run app.py`` on 127.0.0.1 (a free port, served mode, ``FARMS_VIZ_JOBS`` slots),
opens N Chromium pages at once on distinct heavy Lab links, and throughout polls ``/_stcore/health``
and the server's resident memory. Then a second wave of N heavy sweep links is opened and every
page closed after the first sweep has started: the server's CPU must fall quiet (the running sweep
stops between matrices, queued ones never start). Loopback only; stops by itself (--deadline).

Prints N, the health check's latency (median, max, failures), the server's peak RSS, when each
page got its result, how many pages saw the queue message and the most jobs ahead they were told,
and the server CPU in the seconds after the pages were closed.

    python benchmarks/bench_load.py [--sessions 6] [--jobs 1] [--link 'rows=4096&cols=2048&per_dim=15']
                                    [--shots DIR] [--deadline 600]
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("FARMS_VIZ_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run",
                 "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost"]
QUEUE = re.compile(r"waiting for (\d+) jobs? ahead")
CLK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_status(pid: int) -> dict:
    """VmRSS and VmHWM (peak RSS) of ``pid`` in MB."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                k, v = line.split(":")
                out[k] = int(v.split()[0]) / 1024
    return out


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK  # utime + stime


class Watch(threading.Thread):
    """Polls the health endpoint and the server's memory every ``period`` seconds until stopped."""

    def __init__(self, url: str, pid: int, period: float = 0.25):
        super().__init__(daemon=True)
        self.url, self.pid, self.period = url, pid, period
        self.latencies: list[float] = []
        self.failures = 0
        self.rss: list[float] = []
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            t0 = time.perf_counter()
            try:
                with urllib.request.urlopen(self.url + "/_stcore/health", timeout=5) as r:
                    r.read()
                    ok = r.status == 200
            except OSError:
                ok = False
            dt = time.perf_counter() - t0
            if ok:
                self.latencies.append(dt)
            else:
                self.failures += 1
            try:
                self.rss.append(proc_status(self.pid)["VmRSS"])
            except (OSError, KeyError):
                pass
            self.stop.wait(max(0.0, self.period - dt))


def start_server(jobs: int, log, *extra: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = dict(os.environ, FARMS_VIZ_SERVED="1", FARMS_VIZ_JOBS=str(jobs), HF_HUB_OFFLINE="1",
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                             "--server.fileWatcherType", "none", "--server.port", str(port),
                             "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false", *extra],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"streamlit exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return proc, url
        except OSError:
            time.sleep(0.3)
    proc.terminate()
    raise SystemExit("streamlit did not become healthy within 60 s")


def page_state(page) -> tuple[str, int | None]:
    """('done' | 'waiting' | 'busy' | 'error', jobs ahead) of one Lab page."""
    try:
        text = page.locator('[data-testid="stMain"]').inner_text(timeout=2000)
    except Exception:  # noqa: BLE001 (a page mid-rerender)
        return "busy", None
    m = QUEUE.search(text)
    if m:
        return "waiting", int(m.group(1))
    if "Traceback" in text or page.locator('[data-testid="stException"]').count():
        return "error", None
    if page.locator('[data-testid="stMetric"]').count() >= 4 or "per doubling of Q" in text:
        return "done", None
    return "busy", None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=6, help="concurrent visitors (pages)")
    ap.add_argument("--jobs", type=int, default=1, help="FARMS_VIZ_JOBS: heavy jobs at once")
    ap.add_argument("--link", default="rows=4096&cols=2048&per_dim=1000",
                    help="the heavy Lab query (each page adds its own seed); per_dim=1000 is clamped to 15")
    ap.add_argument("--sweep", default="view=sweep&seeds=20&per_dim=15", help="the second wave's heavy sweep")
    ap.add_argument("--shots", type=Path, default=None, help="folder for screenshots of a queued page")
    ap.add_argument("--deadline", type=float, default=600, help="give up after this many seconds")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    t_start = time.time()
    log = open(os.devnull, "w")
    proc, url = start_server(args.jobs, log)
    watch = Watch(url, proc.pid)
    watch.start()
    base_rss = proc_status(proc.pid)["VmRSS"]
    print(f"server pid {proc.pid} at {url}, served mode, FARMS_VIZ_JOBS={args.jobs}, idle RSS {base_rss:.0f} MB")
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            ctx = browser.new_context(viewport={"width": 1400, "height": 900})
            # ---------------------------------------------------------------- wave 1: heavy matrices
            pages, opened = [], time.perf_counter()
            for i in range(args.sessions):
                pg = ctx.new_page()
                pg.goto(f"{url}/Lab?{args.link}&seed={i}", wait_until="commit")
                pages.append(pg)
            done_at: dict[int, float] = {}
            waited: dict[int, int] = {}
            shot = False
            while len(done_at) < len(pages) and time.time() - t_start < args.deadline:
                for i, pg in enumerate(pages):
                    if i in done_at:
                        continue
                    state, ahead = page_state(pg)
                    if state == "waiting":
                        waited[i] = max(waited.get(i, 0), ahead)
                        if args.shots and not shot and ahead >= 2:
                            args.shots.mkdir(parents=True, exist_ok=True)
                            pg.screenshot(path=str(args.shots / "queue-message.png"))
                            shot = True
                    elif state in ("done", "error"):
                        done_at[i] = time.perf_counter() - opened
                        if state == "error":
                            print(f"page {i}: error on the page")
                time.sleep(0.5)
            finished = sorted(done_at.values())
            print(f"wave 1: {args.sessions} pages on /Lab?{args.link}&seed=i")
            print("  results after (s): " + ", ".join(f"{t:.1f}" for t in finished)
                  + (f"  ({len(pages) - len(done_at)} unfinished at the deadline)" if len(done_at) < len(pages) else ""))
            print(f"  pages that saw the queue message: {len(waited)} of {len(pages)}; most jobs ahead told: "
                  f"{max(waited.values(), default=0)}")
            for pg in pages:
                pg.close()
            # ---------------------------------------------------------------- wave 2: abandoned sweeps
            pages = []
            for i in range(args.sessions):
                pg = ctx.new_page()
                pg.goto(f"{url}/Lab?{args.sweep}&seed={1000 + i}", wait_until="commit")
                pages.append(pg)
            t0 = time.perf_counter()
            while time.perf_counter() - t0 < 60:  # until the first sweep is running and the others queue
                states = [page_state(pg)[0] for pg in pages]
                if states.count("waiting") >= min(len(pages) - args.jobs, 1):
                    break
                time.sleep(0.5)
            time.sleep(2)
            for pg in pages:
                pg.close()
            closed = time.perf_counter()
            time.sleep(3)  # the running sweep stops at its next matrix
            c0, w0 = cpu_seconds(proc.pid), time.perf_counter()
            time.sleep(5)
            quiet = (cpu_seconds(proc.pid) - c0) / (time.perf_counter() - w0)
            print(f"wave 2: {args.sessions} pages on /Lab?{args.sweep}&seed=1000+i, closed "
                  f"{closed - t0:.1f} s after opening; server CPU 3-8 s after closing: {quiet:.2f} cores "
                  f"({'stopped' if quiet < 0.3 else 'STILL COMPUTING'})")
            browser.close()
    finally:
        watch.stop.set()
        watch.join(5)
        status = proc_status(proc.pid) if proc.poll() is None else {}
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    lat = sorted(watch.latencies)
    print(f"N = {args.sessions} sessions, {args.jobs} job slot(s), {time.time() - t_start:.0f} s in all")
    if lat:
        print(f"health check: {len(lat)} answers, median {1000 * statistics.median(lat):.1f} ms, "
              f"max {1000 * lat[-1]:.1f} ms, {watch.failures} failed or over 5 s")
    print(f"server RSS: idle {base_rss:.0f} MB, peak {status.get('VmHWM', max(watch.rss, default=0)):.0f} MB "
          f"(sampled max {max(watch.rss, default=0):.0f} MB)")


if __name__ == "__main__":
    main()
