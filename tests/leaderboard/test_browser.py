"""The site in a real browser: headless Chromium driven over the DevTools protocol.

Skipped only when no Chromium is installed (CI installs it: ``apt-get install -y chromium``).
Set ``XAIBENCH_LEADERBOARD_SCREENSHOT=/some/file.png`` to keep the screenshot.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from xaibench.leaderboard import build_site

from .browser import Browser, chromium_binary
from .synthetic import write_results

BINARY = chromium_binary()
if BINARY is None and os.environ.get("CI"):
    # .ci/run installs Chromium: in CI a missing browser is a failure, not a skip.
    raise RuntimeError("CI is set but Chromium is not installed; .ci/run should have installed it")
pytestmark = pytest.mark.skipif(
    BINARY is None, reason="Chromium is not installed (apt-get install -y chromium); CI installs it"
)

ROWS = """Array.from(document.querySelector('table.leaderboard').tBodies[0].rows)
  .map(r => r.cells[1].textContent.trim() + ' / ' + r.cells[2].textContent.trim())"""
CHANGE = """Array.from(document.querySelector('table.leaderboard').tBodies[0].rows)
  .map(r => parseFloat(r.cells[3].getAttribute('data-sort')))"""


def _click(page, selector: str) -> None:  # noqa: ANN001
    """A real mouse click (pressed + released) at the centre of the element."""
    box = page.evaluate(
        f"(() => {{ const e = document.querySelector({selector!r}); e.scrollIntoView({{block: 'center'}});"
        " const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()"
    )
    for kind in ("mousePressed", "mouseReleased"):
        page.browser.send(
            "Input.dispatchMouseEvent",
            {"type": kind, "x": box[0], "y": box[1], "button": "left", "clickCount": 1},
            session=page.session,
        )


def test_site_in_headless_chromium(tmp_path: Path) -> None:
    first = write_results(tmp_path / "a", seed=1, images=4)
    second = write_results(tmp_path / "b", seed=2, image_offset=2, images=4, models=("tiny_cnn", "other net"))
    index = build_site([first, second], tmp_path / "site", resamples=200)
    screenshot = Path(os.environ.get("XAIBENCH_LEADERBOARD_SCREENSHOT", tmp_path / "leaderboard.png"))

    browser = Browser(BINARY, tmp_path / "profile")
    try:
        page = browser.page()
        page.goto(index.resolve().as_uri())
        assert page.evaluate("document.querySelectorAll('table.leaderboard').length") >= 2

        header = page.evaluate("document.querySelector('table.leaderboard thead th:nth-child(4)').textContent")
        assert "expl. change" in header
        before = page.evaluate(ROWS)
        assert len(before) == 6
        _click(page, "table.leaderboard thead th:nth-child(4)")
        ascending = page.evaluate(ROWS)
        assert ascending != before and sorted(ascending) == sorted(before)
        values = page.evaluate(CHANGE)
        assert values == sorted(values)
        _click(page, "table.leaderboard thead th:nth-child(4)")
        assert page.evaluate(ROWS) == ascending[::-1] or page.evaluate(CHANGE) == sorted(values, reverse=True)
        assert page.evaluate(
            "document.querySelector('table.leaderboard thead th:nth-child(4)').getAttribute('aria-sort')"
        ) == "descending"

        images = page.evaluate(
            "Array.from(document.images).map(i => [i.getAttribute('src'), i.complete, i.naturalWidth])"
        )
        assert len(images) >= 10
        broken = [src for src, complete, width in images if not complete or width <= 0]
        assert not broken, f"images that did not load: {broken}"

        flag = page.evaluate("document.querySelector('.flag').getAttribute('title')")
        assert flag.startswith("DeepLIFT rules not exact for this model (median completeness gap")
        # The under-converged pair (synthetic deeplift, median gap ≈ 0.41) is greyed, not ranked.
        greyed = page.evaluate(
            "Array.from(document.querySelectorAll('tr.unranked'))"
            ".map(r => [r.cells[0].textContent.trim(), getComputedStyle(r.cells[1]).color])"
        )
        assert greyed and all(rank == "⊘" and color == "rgb(154, 166, 174)" for rank, color in greyed)

        page.screenshot(screenshot)
        assert screenshot.stat().st_size > 10_000
        assert page.errors() == []
    finally:
        browser.close()
