"""The review page through its server: the API, a real headless Chromium driven by keyboard, and a killed server.

The browser test needs Debian's chromium (`apt-get install chromium`; .ci/run installs it). Without it the test
is skipped, except where MONA_BROWSER_TEST_REQUIRED is set (CI), where a missing browser fails it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from mona_pipeline.review import verdicts
from mona_pipeline.review.server import create_app
from mona_pipeline.sort.journal import open_run
from tests.review.conftest import tree

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SCREENSHOTS = os.environ.get("MONA_REVIEW_SCREENSHOTS")  # a folder: the browser test saves its screenshots there


def test_the_api_serves_the_order_pictures_and_stores_verdicts(sorted_run):
    run_dir, _, _ = sorted_run
    client = TestClient(create_app(run_dir))
    assert "mona review" in client.get("/").text
    queue = client.get("/api/queue").json()
    assert [row["decision"] for row in queue[:5]] == ["review"] * 4 + ["keep"]
    first = queue[0]
    picture = client.get("/api/picture", params={"id": first["id"]})
    assert picture.status_code == 200 and picture.headers["content-type"] == "image/png"
    assert client.get("/api/picture", params={"id": first["id"], "size": "thumb"}).content[:2] == b"\xff\xd8"
    assert client.post("/api/verdict", json={"id": first["id"], "verdict": "yes"}).status_code == 200
    bad = client.post("/api/verdict", json={"id": first["id"], "verdict": "perhaps"})
    assert bad.status_code == 400 and "perhaps" in bad.json()["detail"]
    state = client.get("/api/state").json()
    assert (state["reviewed_in_queue"], state["queue_length"], state["counts"]) == (
        1, 18, {"review": 4, "keep": 6, "drop": 8})
    assert state["audit"][1].startswith("of 4 in review: too few checked")
    listing = client.get("/api/rows", params={"decision": "drop", "per_page": 5, "page": 1}).json()
    assert (listing["total"], listing["pages"], len(listing["rows"])) == (8, 2, 3)
    assert client.get("/api/rows", params={"decision": "nonsense"}).status_code == 400
    assert client.post("/api/undo").json() == {"id": first["id"], "verdict": None}
    assert client.get("/api/picture", params={"id": "nowhere"}).status_code == 404


def test_the_page_reads_rows_once_and_again_after_another_process_changes_the_files(sorted_run):
    """A keypress does not read every row of the run; an undo made elsewhere (another connection) is seen."""
    from mona_pipeline.sort.recovery import undo_run

    run_dir, _, _ = sorted_run
    app = create_app(run_dir)
    client = TestClient(app)
    journal = app.state.journal
    held = verdicts.RunRows.read(journal)
    assert held.fresh(journal)
    first = client.get("/api/queue").json()[0]
    client.post("/api/verdict", json={"id": first["id"], "verdict": "yes"})
    assert held.fresh(journal)  # the page's own verdicts do not make its rows stale
    assert {row["status"] for row in client.get("/api/rows", params={"decision": "keep"}).json()["rows"]} == {"done"}
    undo_run(run_dir)  # its own connection, as `mona undo` in a terminal
    assert not held.fresh(journal)
    assert {row["status"] for row in client.get("/api/rows", params={"decision": "keep"}).json()["rows"]} == {"undone"}


def start_server(run_dir: Path) -> tuple[subprocess.Popen, str]:
    """`mona review RUN` in its own process, as a user starts it; returns it and the address it printed."""
    process = subprocess.Popen([sys.executable, "-m", "mona_pipeline.cli", "review", str(run_dir), "--no-browser"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    line = process.stdout.readline()
    found = re.search(r"http://127\.0\.0\.1:\d+/", line)
    assert found, f"no address in {line!r}"
    url = found.group(0)
    for _ in range(100):
        try:
            urllib.request.urlopen(url + "api/state", timeout=2)
            return process, url
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise AssertionError(f"the review server at {url} never answered")


def post(url: str, path: str, body: dict) -> dict:
    request = urllib.request.Request(url + path, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_a_killed_server_loses_no_verdict(sorted_run):
    run_dir, _, _ = sorted_run
    process, url = start_server(run_dir)
    try:
        queue = json.loads(urllib.request.urlopen(url + "api/queue", timeout=10).read())
        for row in queue[:7]:
            post(url, "api/verdict", {"id": row["id"], "verdict": "yes" if row["decision"] == "keep" else "no"})
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    with open_run(run_dir) as journal:
        assert len(verdicts.current(journal)) == 7
    process, url = start_server(run_dir)  # started again: the page goes on where it stopped
    try:
        state = json.loads(urllib.request.urlopen(url + "api/state", timeout=10).read())
        assert state["reviewed_in_queue"] == 7
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def browser():
    if CHROMIUM is None:
        if os.environ.get("MONA_BROWSER_TEST_REQUIRED"):
            pytest.fail("no chromium on PATH: CI must install it (.ci/run: apt-get install chromium)")
        pytest.skip("no chromium on PATH: `apt-get install chromium` to run the browser test")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield browser
        browser.close()


def shot(page, name: str) -> None:
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SCREENSHOTS) / f"{name}.png"), full_page=True)


def test_reviewing_by_keyboard_in_chromium_survives_a_reload_and_applies(sorted_run, browser):
    run_dir, inbox, out = sorted_run
    before = tree(inbox)
    process, url = start_server(run_dir)
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("dialog", lambda dialog: dialog.accept())  # apply asks first
        page.goto(url)
        page.wait_for_selector("body[data-ready='1']")
        page.wait_for_function("document.getElementById('picture').complete")
        assert "1 of 18 in the review order" in page.inner_text("#facts")
        for number, key in enumerate("yynn", start=1):  # the review band: two are her, two are not
            page.keyboard.press(key)
            page.wait_for_function(f"window.reviewTimings.length >= {number}", timeout=10_000)
        page.keyboard.press("y")  # the first kept picture
        page.wait_for_function("window.reviewTimings.length >= 5")
        page.keyboard.press("n")  # the first dropped one: a wrong verdict...
        page.wait_for_function("window.reviewTimings.length >= 6")
        page.keyboard.press("u")  # ...taken back
        page.wait_for_function("document.getElementById('facts').innerText.includes('6 of 18')")
        page.keyboard.press("n")
        page.wait_for_function("document.getElementById('reviewed').innerText.startsWith('6 of 18')")
        timings = page.evaluate("window.reviewTimings")
        shot(page, "mid-review")
        page.reload()  # nothing lives only in the page
        page.wait_for_selector("body[data-ready='1']")
        assert page.inner_text("#reviewed").startswith("6 of 18 reviewed")
        assert "7 of 18 in the review order" in page.inner_text("#facts")  # goes on where it stopped
        assert "of 4 in review, about 50% show mona (2 of 4 checked" in page.inner_text("#audit")
        shot(page, "audit")
        page.click("#apply")
        page.wait_for_selector("#applied li")
        assert "2 into keep/" in page.inner_text("#applied") and "2 into review/rejected/" in page.inner_text("#applied")
        shot(page, "after-apply")
    finally:
        process.terminate()
        process.wait(timeout=10)
    with open_run(run_dir) as journal:
        judged = verdicts.current(journal)
        decisions = sorted((journal.get(item).decision, verdict) for item, verdict in judged.items())
    assert decisions == [("drop", "no"), ("keep", "yes"), ("review", "no"), ("review", "no"), ("review", "yes"),
                         ("review", "yes")]
    kept = sorted(path for path in tree(out) if path.startswith("keep/"))
    assert len(kept) == 8 and len([path for path in tree(out) if path.startswith("review/rejected/")]) == 2
    assert tree(inbox) == before
    print(f"keypress -> next picture shown: {sorted(round(t, 1) for t in timings)} ms")
    if SCREENSHOTS:
        (Path(SCREENSHOTS) / "timings.json").write_text(json.dumps(timings))
