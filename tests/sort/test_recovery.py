"""Resume after a kill, undo, purge: every picture accounted for once, by hash."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from mona_pipeline.sort import purge_run, sort_source, undo_run
from mona_pipeline.sort.journal import Journal
from tests.conftest import colour_picture
from tests.sort.conftest import BLUE, PINK, RED, sort_request, tree


def test_move_then_undo_restores_every_file_byte_for_byte(inbox, tmp_path, colour_model):
    before = tree(inbox)
    summary = sort_source(sort_request(inbox, tmp_path / "out", colour_model, action="move", review_from=0.5))
    kept = tree(tmp_path / "out" / "keep")
    assert sorted(kept) == ["a/red.jpg", "b/red.jpg", "red_really_png.jpg", "scan.tiff"]
    assert not (inbox / "a" / "red.jpg").exists() and (inbox / "blue.webp").exists()
    moved = {**{f"keep/{k}": v for k, v in kept.items()},
             **{f"review/{k}": v for k, v in tree(tmp_path / "out" / "review").items()}}
    assert sorted(set(moved.values()) | set(tree(inbox).values())) == sorted(set(before.values()))
    result = undo_run(Path(summary.journal).parent)
    assert result.problems == [] and result.restored == 5
    assert tree(inbox) == before
    assert tree(tmp_path / "out" / "keep") == {}


def test_delete_moves_drops_to_trash_and_only_purge_removes_them(inbox, tmp_path, colour_model):
    before = tree(inbox)
    summary = sort_source(sort_request(inbox, tmp_path / "out", colour_model, action="delete"))
    run_dir = Path(summary.journal).parent
    assert sorted(tree(run_dir / "trash")) == ["a/pink.png", "blue.webp", "deep/er/blue.gif"]
    assert (inbox / "a" / "red.jpg").exists() and not (inbox / "blue.webp").exists()
    assert (inbox / "empty.jpg").exists()  # unreadable pictures are never deleted
    undo_run(run_dir)
    assert tree(inbox) == before
    sort_source(sort_request(inbox, tmp_path / "out", colour_model, action="delete", run="second"))
    second = tmp_path / "out" / "runs" / "second"
    assert purge_run(second).purged == 3
    assert tree(second / "trash") == {}


def test_rerun_resumes_without_redoing_or_duplicating(inbox, tmp_path, colour_model):
    request = sort_request(inbox, tmp_path / "out", colour_model)
    first = sort_source(request)
    second = sort_source(request)
    assert second.resumed_skipped == 11 and second.this_session == {"keep": 0, "review": 0, "drop": 0,
                                                                          "unreadable": 0}
    assert second.counts == first.counts
    assert len(tree(tmp_path / "out" / "keep")) == 4


def test_killed_move_run_resumes_and_accounts_for_every_picture_once(tmp_path, colour_model):
    inbox = tmp_path / "big"
    colours = [RED, BLUE, PINK]
    for index in range(360):
        path = inbox / f"d{index % 7}" / f"p{index:04d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(colour_picture(colours[index % 3], "PNG", size=(40 + index % 13, 40)))
    before = tree(inbox)
    out = tmp_path / "out"
    # Run where there is no params.yaml: the built-in defaults.
    command = [sys.executable, "-m", "mona_pipeline.cli", "sort", str(inbox), "--out", str(out), "--model", str(colour_model), "--action", "move",
               "--review-from", "0.5", "--batch-size", "4", "--run", "killed", "--quiet"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=tmp_path)
    journal = out / "runs" / "killed" / "journal.sqlite"
    deadline = time.time() + 300
    done = 0
    while time.time() < deadline and process.poll() is None:
        if journal.exists():
            try:
                with sqlite3.connect(journal) as connection:
                    done = connection.execute("SELECT COUNT(*) FROM entries WHERE status = 'done'").fetchone()[0]
            except sqlite3.Error:
                done = 0
            if done >= 40:
                break
        time.sleep(0.05)
    process.kill()
    process.wait()
    assert 40 <= done < 360, f"the run was not stopped half way ({done} done): {process.stdout.read()[-2000:]}"
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    with Journal(journal) as reader:
        entries = list(reader.entries())
    assert len(entries) == 360 and {e.status for e in entries} == {"done"}
    moved = {**{f"keep/{k}": v for k, v in tree(out / "keep").items()},
             **{f"review/{k}": v for k, v in tree(out / "review").items()}}
    left = tree(inbox)
    assert len(moved) == 240 and len(left) == 120  # every picture in exactly one place
    assert sorted(list(moved.values()) + list(left.values())) == sorted(before.values())
    assert not list(out.rglob("*.partial"))
    result = undo_run(out / "runs" / "killed")
    assert result.problems == [] and result.restored == 240
    assert tree(inbox) == before
