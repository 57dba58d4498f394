"""Shared helpers for the browser tests (Streamlit in Chromium through Playwright).

Imported as ``from browserkit import ...``: pytest's default (prepend) import mode puts tests/ on sys.path.
"""

from __future__ import annotations

from urllib.parse import urlparse

#: the two screenshot sizes: (viewport width, minimum height)
SIZES = {"wide": (1600, 1000), "laptop": (1280, 800)}
#: the first page load (a cold server analyses the model before it shows anything)
LOAD_TIMEOUT_MS = 240_000
#: how long ``idle`` waits by default
IDLE_TIMEOUT_MS = 60_000
#: the viewport the tests work in; ``shots`` leaves the page at this size
VIEWPORT = {"width": 1600, "height": 1000}


def idle(page, timeout=IDLE_TIMEOUT_MS):
    """Wait until Streamlit has finished the script run (no running status, no stale elements)."""
    page.wait_for_function(
        """() => !document.querySelector('[data-testid="stStatusWidget"]')
               && document.querySelectorAll('[data-stale="true"]').length === 0""",
        timeout=timeout,
    )


def no_exceptions(page):
    """Fail with the first exception Streamlit shows on the page, if any."""
    assert page.locator('[data-testid="stException"]').count() == 0, page.locator(
        '[data-testid="stException"]').first.inner_text()


def shot(page, path, width, min_height, timeout=IDLE_TIMEOUT_MS):
    """The whole page: Streamlit scrolls inside its main section, so grow the viewport to its height."""
    page.set_viewport_size({"width": width, "height": min_height})
    page.wait_for_timeout(800)
    idle(page, timeout)
    height = page.evaluate("""() => { const m = document.querySelector('[data-testid="stMain"]')
                                              || document.querySelector('section.main');
                                     return m ? m.scrollHeight : document.body.scrollHeight; }""")
    page.set_viewport_size({"width": width, "height": max(min_height, min(int(height) + 40, 8000))})
    page.wait_for_timeout(800)
    idle(page, timeout)
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size({"width": width, "height": min_height})


def shots(page, name: str, artifacts, timeout=IDLE_TIMEOUT_MS):
    """Whole-page screenshots ``{name}-{size}.png`` at every size in SIZES; ends at VIEWPORT."""
    for size, (w, h) in SIZES.items():
        shot(page, artifacts / f"{name}-{size}.png", w, h, timeout)
    page.set_viewport_size(VIEWPORT)


def outside(urls: list[str]) -> list[str]:
    """The URLs that would leave this machine (the app must work offline and track nobody); a
    file:// URL (the HTML report opened from disk) stays here."""
    local = {"127.0.0.1", "localhost", "::1"}
    return [u for u in urls if urlparse(u).scheme not in ("data", "blob", "about", "file")
            and urlparse(u).hostname not in local]
