"""The HTML report of a nightly run: linked from the motion manifest, self-contained, and
rendered by a real headless Chromium with every image loaded and no page error."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from pathlib import Path

import pytest

from ev_ingest.store import read_manifest
from pipelines.analytics import report
from pipelines.analytics.datasets import Archive
from tests.conftest import END, START, day, stamp

pytestmark = pytest.mark.slow


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing: `make setup` installs it (apt-get install chromium)")
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    return found


def _first_difference(left: bytes, right: bytes) -> str:
    """Where two documents part, with some context: pytest's own diff of two 500 KB byte
    strings takes minutes, so they are compared by digest and explained by this."""
    at = next((i for i, (a, b) in enumerate(zip(left, right, strict=False)) if a != b), min(len(left), len(right)))
    return f"first difference at byte {at}: {left[max(0, at - 60) : at + 40]!r} != {right[max(0, at - 60) : at + 40]!r}"


@pytest.fixture(scope="module")
def published(archived):
    config, store, result = archived
    link = report.report_link(result.motion_manifest)
    assert link is not None, "the motion manifest links no report"
    return store, result, link


def test_report_is_linked_stored_and_self_contained(published, archived):
    from pipelines.compliance import signing_keys
    from pipelines.nightly import horizon

    store, result, link = published
    config = archived[0]
    assert link == f"reports/site=HQ/date={day(0)}/nightly-{stamp(START)}-motion.html"
    entry = next(e for e in read_manifest(store, result.motion_manifest.key).entries if e.kind == "report")
    document = store.get_bytes(link, entry.version_id)
    assert hashlib.sha256(document).hexdigest() == entry.sha256 == store.head(link).sha256
    assert store.get_retention(link, entry.version_id) is not None  # locked like the run it describes
    text = document.decode()
    assert result.manifest.key in text and "exports archived" in text
    assert text.count('<img alt="camera ') >= 3 and "no frame" not in text  # event frames decoded
    assert not re.search(r"""(src|href)=["']?(https?:|//|/[^/])""", text)  # nothing fetched from elsewhere
    # A second render over the same archive is byte-identical: reruns add no version.
    # The recorder-horizon table is judged at the run's own moment, so it renders the same too.
    recorder = horizon.at_night(store, signing_keys.verifier_for(config), config, "HQ", START)
    assert recorder.as_of is not None and "<h2>Recorder horizon</h2>" in text
    again = report.render(Archive.from_store(store), "HQ", START, END, recorder).encode()
    assert hashlib.sha256(again).hexdigest() == entry.sha256, _first_difference(again, document)


def test_report_names_the_failures(published, tmp_path):
    store, result, _ = published
    archive = Archive.from_store(store)
    text = report.render(archive, "HQ", START, END)
    assert "Failures" not in text  # a clean run
    events = archive.motion_events("HQ", start=START)
    assert f"<td>{len(events)}</td>" in text  # the events counted in the summary


def test_report_renders_in_headless_chromium(published, tmp_path):
    from playwright.sync_api import sync_playwright

    store, _, link = published
    page_file = tmp_path / "report.html"
    page_file.write_bytes(store.get_bytes(link))
    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=_chromium(), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            page.goto(page_file.as_uri(), wait_until="load")
            images = page.eval_on_selector_all(
                "img", "els => els.map(i => ({alt: i.alt, ok: i.complete && i.naturalWidth > 0, w: i.naturalWidth}))"
            )
            shot = Path(tmp_path / "report.png")
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert not errors
    assert len(images) >= 3  # heatmap, timeline, at least one event frame
    assert all(image["ok"] for image in images), [i["alt"] for i in images if not i["ok"]]
    assert {"activity heatmap", "event timeline"} <= {i["alt"] for i in images}
    assert shot.stat().st_size > 20_000  # a page with pictures, not a blank one
    print(f"\nreport: {len(images)} images loaded, screenshot {shot.stat().st_size // 1024} KB at {shot}")


def test_the_busiest_events_are_spread_across_cameras():
    """One busy camera cannot fill the report's table or its frames: an even share each."""
    import pandas as pd

    from pipelines.analytics.report import _spread

    events = pd.DataFrame({"camera": ["a"] * 30 + ["b"] * 3, "peak": [0.9] * 30 + [0.1] * 3})
    chosen = _spread(events, 10)
    assert len(chosen) == 8 and set(chosen["camera"]) == {"a", "b"} and (chosen["camera"] == "b").sum() == 3
