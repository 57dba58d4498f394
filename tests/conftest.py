"""Browser-test fixtures: a headless Streamlit server and Debian's Chromium driven by Playwright."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from browserkit import outside

# The tests never reach the network: hub ids must fail from the local cache, not by a lookup.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("FARMS_VIZ_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 # Chromium's own lookups (accounts.google.com, ...) resolve to nothing: the tests
                 # stay on this machine; page requests are still seen and checked (watch_requests).
                 # Left: Chromium's IPv6 reachability probe, a UDP connect() that sends no packet.
                 "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost"]
ARTIFACTS = ROOT / "test-artifacts"
#: test folders whose tests get a marker, so ``-m "not browser"`` or ``-m app`` select by kind
FOLDER_MARKS = {"app": "app", "browser": "browser"}


def pytest_collection_modifyitems(items):
    for item in items:
        folder = Path(str(item.fspath)).parent.name
        if folder in FOLDER_MARKS:
            item.add_marker(FOLDER_MARKS[folder])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _require_chromium() -> None:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CHROMIUM} is missing and CI=true (apt-get install -y chromium).")
        pytest.skip(f"{CHROMIUM} not installed (apt-get install -y chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail("playwright is not installed and CI=true.")
        pytest.skip("playwright is not installed")


def _serve(log_name: str, **env_extra):
    """Run ``streamlit run app.py`` on a free port with ``env_extra`` in its environment; yields the
    base URL and stops the server afterwards."""
    _require_chromium()
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), **env_extra)
    log = open(ROOT / "test-artifacts" / log_name, "w") if _mk_artifacts() else subprocess.DEVNULL
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
         "--server.fileWatcherType", "none", "--server.port", str(port), "--server.address", "127.0.0.1",
         "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            if log is not subprocess.DEVNULL:
                log.close()
            pytest.fail(f"streamlit exited with {proc.returncode}; see test-artifacts/{log_name}")
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            time.sleep(0.3)
    else:
        proc.terminate()
        proc.wait()
        if log is not subprocess.DEVNULL:
            log.close()
        pytest.fail("streamlit did not become healthy within 60 s")
    try:
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if log is not subprocess.DEVNULL:
            log.close()


@pytest.fixture(scope="session")
def streamlit_server():
    """Base URL of ``streamlit run app.py`` on a free port (stopped at the end of the session)."""
    yield from _serve("streamlit.log")


@pytest.fixture(scope="module")
def served_server():
    """The same app in served mode (FARMS_VIZ_SERVED=1, one heavy job at a time), for its module only."""
    yield from _serve("streamlit-served.log", FARMS_VIZ_SERVED="1", FARMS_VIZ_JOBS="1")


@pytest.fixture(scope="module")
def fresh_server():
    """A server no page has been opened on before this module's first request (what a page URL
    opened first shows), for its module only."""
    yield from _serve("streamlit-fresh.log")


def _mk_artifacts() -> bool:
    ARTIFACTS.mkdir(exist_ok=True)
    return True


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium through Playwright (never downloads Playwright's own browsers)."""
    _require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield _RecordingBrowser(b)
        b.close()


class _RecordingBrowser:
    """The Playwright browser; every context it makes records the URL of each page request."""

    def __init__(self, browser):
        self._browser = browser
        self.requests: list[str] = []

    def new_context(self, **kwargs):
        ctx = self._browser.new_context(**kwargs)
        ctx.on("request", lambda r: self.requests.append(r.url))
        return ctx

    def __getattr__(self, name):
        return getattr(self._browser, name)


@pytest.fixture(autouse=True)
def _nothing_leaves_this_machine(request):
    """After each browser test: no page asked for anything off this machine (offline, no tracking).
    Only this test's requests are checked, so a stray request fails the test that made it, not
    every later one too."""
    if "browser" not in request.fixturenames:
        yield
        return
    recorded = request.getfixturevalue("browser").requests
    first = len(recorded)
    yield
    assert recorded, "no page request was recorded"
    off = outside(recorded[first:])
    assert off == [], f"pages requested URLs off this machine: {off}"


@pytest.fixture
def artifacts() -> Path:
    _mk_artifacts()
    return ARTIFACTS
