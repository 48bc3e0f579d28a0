"""Several characters in one pass: every picture decoded once, scored by each model, kept per target; one
journal, one undo."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mona_pipeline.sort import sort_source
from mona_pipeline.sort.journal import Journal
from mona_pipeline.sort.recovery import undo_run
from mona_pipeline.sort.request import SettingsError
from tests.conftest import colour_picture, make_colour_model
from tests.sort.conftest import sort_request, tree

RED, GREEN, YELLOW, BLUE, GREY = (230, 20, 20), (20, 230, 20), (230, 230, 20), (20, 20, 230), (128, 128, 128)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> list[Path]:
    """Three characters: mona (red), kaeya (green) and diluc (blue, at another input size)."""
    root = tmp_path_factory.mktemp("models")
    return [make_colour_model(root / "mona", target="mona"),
            make_colour_model(root / "kaeya", target="kaeya", weights=(0.0, 1.0, -1.0)),
            make_colour_model(root / "diluc", target="diluc", weights=(-1.0, 0.0, 1.0), image_size=48)]


@pytest.fixture
def pile(tmp_path) -> Path:
    root = tmp_path / "pile"
    root.mkdir()
    for name, colour in (("red", RED), ("green", GREEN), ("yellow", YELLOW), ("blue", BLUE), ("grey", GREY)):
        (root / f"{name}.png").write_bytes(colour_picture(colour, "PNG"))
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return root


def rows(summary) -> dict[tuple[str, str | None], object]:
    with Journal(Path(summary.journal)) as journal:
        return {(entry.name, entry.target): entry for entry in journal.entries()}


def test_three_models_sort_in_one_pass_each_character_into_its_folder(pile, tmp_path, models, monkeypatch):
    from mona_pipeline import inference

    prepared = []
    real_prepare = inference.prepare
    monkeypatch.setattr(inference, "prepare", lambda data, key, *rest: prepared.append(key) or real_prepare(
        data, key, *rest))
    before = tree(pile)
    summary = sort_source(sort_request(pile, tmp_path / "out", models))
    keep = tmp_path / "out" / "keep"
    assert sorted(tree(keep)) == ["diluc/blue.png", "kaeya/green.png", "kaeya/yellow.png", "mona/red.png",
                                  "mona/yellow.png"]
    assert tree(pile) == before
    assert sorted(prepared) == sorted(set(prepared)) and len(prepared) == 6  # each picture read and decoded once
    assert summary.counts == {"keep": 4, "review": 0, "drop": 1, "unreadable": 1}  # pictures, each once
    per_target = {target.target: target.counts for target in summary.targets}
    assert per_target == {"mona": {"keep": 2, "review": 0, "drop": 3, "unreadable": 1},
                          "kaeya": {"keep": 2, "review": 0, "drop": 3, "unreadable": 1},
                          "diluc": {"keep": 1, "review": 0, "drop": 4, "unreadable": 1}}
    assert [target.kept_dir for target in summary.targets] == [str(keep / name) for name in ("mona", "kaeya", "diluc")]
    report = Path(summary.report).read_text()
    assert "per character" in report and "kaeya" in report

    # each model's scores are those it gives alone (the 32-pixel models see the 48-pixel decode resized)
    journal = rows(summary)
    for model, target in zip(models, ("mona", "kaeya", "diluc")):
        alone = rows(sort_source(sort_request(pile, tmp_path / f"alone-{target}", model, action="none")))
        for (name, _), entry in alone.items():
            if entry.score is not None:
                assert journal[(name, target)].score == pytest.approx(entry.score, abs=0.02), (name, target)

    result = undo_run(Path(summary.journal).parent)
    assert result.removed_copies == 5 and not result.problems
    assert tree(keep) == {} and tree(pile) == before


def test_a_move_takes_a_picture_once_and_copies_it_for_its_other_targets(pile, tmp_path, models):
    before = tree(pile)
    summary = sort_source(sort_request(pile, tmp_path / "out", models[:2], action="move"))
    keep = tmp_path / "out" / "keep"
    assert sorted(tree(keep)) == ["kaeya/green.png", "kaeya/yellow.png", "mona/red.png", "mona/yellow.png"]
    assert sorted(tree(pile)) == ["blue.png", "broken.jpg", "grey.png"]  # moved out: red, green, yellow
    actions = {key: entry.action for key, entry in rows(summary).items() if entry.name == "yellow.png"}
    assert sorted(actions.values()) == ["copy", "move"]  # moved under one target, copied under the other
    again = sort_source(sort_request(pile, tmp_path / "out", models[:2], action="move"))
    assert again.resumed_skipped == 3 and again.this_session["keep"] == 0  # what is left was done already

    undo_run(Path(summary.journal).parent)
    assert tree(pile) == before and tree(keep) == {}


def test_delete_trashes_only_what_every_target_drops(pile, tmp_path, models):
    before = tree(pile)
    summary = sort_source(sort_request(pile, tmp_path / "out", models, action="delete"))
    assert sorted(tree(pile)) == ["blue.png", "broken.jpg", "green.png", "red.png", "yellow.png"]
    assert sorted(tree(Path(summary.journal).parent / "trash")) == ["grey.png"]
    undo_run(Path(summary.journal).parent)
    assert tree(pile) == before


def test_a_rerun_resumes_and_a_killed_half_of_a_picture_is_done_again(pile, tmp_path, models):
    request = sort_request(pile, tmp_path / "out", models[:2])
    first = sort_source(request)
    with Journal(Path(first.journal)) as journal:  # as if killed between a picture's two rows
        (row,) = [entry for entry in journal.entries() if entry.name == "yellow.png" and entry.target == "kaeya"]
        journal.forget(row.item_id)
        Path(row.destination).unlink()
    again = sort_source(request)
    assert again.resumed_skipped == 5 and again.this_session["keep"] == 1 and again.already_there == 1
    assert sorted(tree(tmp_path / "out" / "keep")) == ["kaeya/green.png", "kaeya/yellow.png", "mona/red.png",
                                                       "mona/yellow.png"]


def test_a_picture_already_there_under_two_targets_counts_once(pile, tmp_path, models):
    sort_source(sort_request(pile, tmp_path / "out", models[:2], run="first"))
    again = sort_source(sort_request(pile, tmp_path / "out", models[:2], run="second"))
    # red (mona), green (kaeya) and yellow (both): three pictures in OUT already, four copies
    assert again.already_there == 3 and again.this_session["keep"] == 3


def test_two_models_of_one_character_are_refused(pile, tmp_path, models):
    twin = make_colour_model(tmp_path / "twin", target="mona", weights=(1.0, 1.0, -2.0))
    with pytest.raises(SettingsError, match="both find 'mona'"):
        sort_source(sort_request(pile, tmp_path / "out", [models[0], twin]))


def test_mona_sort_and_mona_summary_show_each_character(pile, tmp_path, models):
    arguments = [sys.executable, "-m", "mona_pipeline.cli", "sort", str(pile), "--out", str(tmp_path / "out"),
                 "--run", "three", "--quiet"]
    for model in models:
        arguments += ["--model", str(model)]
    sorted_ = subprocess.run(arguments, capture_output=True, text=True, timeout=300)
    assert sorted_.returncode == 0, sorted_.stderr
    assert "6 pictures: 4 keep, 0 review, 1 drop, 1 unreadable" in sorted_.stdout
    assert "  kaeya: 2 keep, 0 review, 3 drop (P = 0.9; kept in" in sorted_.stdout
    shown = subprocess.run([sys.executable, "-m", "mona_pipeline.cli", "summary", str(tmp_path / "out" / "runs" /
                                                                                      "three")],
                           capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert "target mona, kaeya, diluc" in shown.stdout and "  diluc       keep 1 review 0 drop 4" in shown.stdout
    summary = json.loads((tmp_path / "out" / "runs" / "three" / "summary.json").read_text())
    assert [target["target"] for target in summary["targets"]] == ["mona", "kaeya", "diluc"]


def test_a_journal_from_before_several_models_is_read_and_resumed_as_it_was(tmp_path):
    """Older journals have no picture and target columns: read-only they count as before, opened for a sort
    they gain the columns and keep every row."""
    import sqlite3

    path = tmp_path / "journal.sqlite"
    with sqlite3.connect(path) as old:
        old.executescript("""
            CREATE TABLE run (key TEXT PRIMARY KEY, value TEXT);
            CREATE TABLE entries (item_id TEXT PRIMARY KEY, source TEXT NOT NULL, name TEXT NOT NULL,
                content_hash TEXT, bytes INTEGER, score REAL, decision TEXT NOT NULL, action TEXT NOT NULL,
                destination TEXT, error TEXT, status TEXT NOT NULL, time REAL NOT NULL);
            INSERT INTO entries VALUES ('a.jpg@1', '/in/a.jpg', 'a.jpg', 'h1', 3, 0.99, 'keep', 'copy', '/o/a.jpg',
                                        NULL, 'done', 1.0);
            INSERT INTO entries VALUES ('b.jpg@1', '/in/b.jpg', 'b.jpg', 'h2', 3, 0.1, 'drop', 'none', NULL, NULL,
                                        'done', 1.0);""")
    with Journal(path, read_only=True) as journal:
        assert journal.counts() == {"keep": 1, "drop": 1} and journal.target_counts() == {}
    with Journal(path) as journal:
        assert [row.item_id for row in journal.rows_of("a.jpg@1")] == ["a.jpg@1"]
        assert journal.counts() == {"keep": 1, "drop": 1} and len(journal) == 2
