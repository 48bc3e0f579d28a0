"""A sort run: every action, the review band, reports, and the command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from mona_pipeline.sort import SortRequest, sort_source
from tests.sort.conftest import journal_entries, sort_request, tree


def test_copy_keeps_relative_paths_and_records_every_picture(inbox, tmp_path, colour_model):
    before = tree(inbox)
    summary = sort_source(sort_request(inbox, tmp_path / "out", colour_model))
    out = tmp_path / "out"
    assert sorted(tree(out / "keep")) == ["a/red.jpg", "b/red.jpg", "red_really_png.jpg", "scan.tiff"]
    assert tree(inbox) == before  # copy never changes the source
    entries = journal_entries(summary)
    assert len(entries) == 11  # every picture file once; notes.txt is not a picture
    assert entries["a/pink.png"].decision == "drop" and entries["blue.webp"].decision == "drop"
    reasons = {name: entries[name].error for name in ("empty.jpg", "truncated.jpg", "garbage.png", "huge.png")}
    assert "zero-byte" in reasons["empty.jpg"] and "too large" in reasons["huge.png"]
    assert "not a picture" in reasons["garbage.png"]
    assert reasons["truncated.jpg"]  # TF refused it, Pillow too: recorded, not fatal
    assert all(entries[n].decision == "unreadable" for n in reasons)
    assert summary.counts == {"keep": 4, "review": 0, "drop": 3, "unreadable": 4}
    report = Path(summary.report).read_text()
    assert "a/red.jpg" in report and "zero-byte" in report


def test_review_band_sends_middle_scores_to_review(inbox, tmp_path, colour_model):
    summary = sort_source(sort_request(inbox, tmp_path / "out", colour_model, review_from=0.5))
    assert sorted(tree(tmp_path / "out" / "review")) == ["a/pink.png"]
    assert summary.counts["review"] == 1


def test_review_band_above_confidence_is_refused(inbox, tmp_path, colour_model):
    with pytest.raises(ValueError, match="must be below"):
        SortRequest(source=str(inbox), out=tmp_path, confidence=0.5, review_from=0.7)
    with pytest.raises(ValueError, match="must be below the confidence"):
        sort_source(sort_request(inbox, tmp_path / "out", colour_model, review_from=0.95))  # model's P is 0.9


def test_link_makes_symlinks_to_the_sources(inbox, tmp_path, colour_model):
    sort_source(sort_request(inbox, tmp_path / "out", colour_model, action="link"))
    link = tmp_path / "out" / "keep" / "a" / "red.jpg"
    assert link.is_symlink() and link.resolve() == (inbox / "a" / "red.jpg").resolve()


def test_an_output_folder_inside_the_source_is_never_sorted_again(inbox, tmp_path, colour_model):
    request = sort_request(inbox, inbox / "sorted", colour_model, action="move")
    first = sort_source(request)
    second = sort_source(request.model_copy(update={"run": "again"}))
    assert second.this_session["keep"] == 0 and first.counts["keep"] == 4
    assert sorted(tree(inbox / "sorted" / "keep")) == ["a/red.jpg", "b/red.jpg", "red_really_png.jpg", "scan.tiff"]


def test_none_only_reports(inbox, tmp_path, colour_model):
    summary = sort_source(sort_request(inbox, tmp_path / "out", colour_model, action="none"))
    assert summary.counts["keep"] == 4
    assert not (tmp_path / "out" / "keep").exists()


def test_cli_sort_and_undo_print_where_things_are(inbox, tmp_path, colour_model, monkeypatch, caplog, capsys):
    from mona_pipeline.cli import main

    out = tmp_path / "out"
    monkeypatch.chdir(tmp_path)  # no params.yaml here: the built-in defaults, and a line that says so
    code = main(["sort", str(inbox), "--out", str(out), "--model", str(colour_model), "--action", "move", "--tiling", "off", "--quiet",
                 "--run", "cli"])
    assert f"no params.yaml in {tmp_path}: the built-in defaults apply" in caplog.text
    assert code == 0
    printed = capsys.readouterr().out
    assert f"kept: {out / 'keep'}" in printed and f"report: {out / 'runs' / 'cli' / 'report.html'}" in printed
    assert f"journal: {out / 'runs' / 'cli' / 'journal.sqlite'}" in printed
    assert main(["undo", str(out / "runs" / "cli")]) == 0
    assert "restored 4 pictures" in capsys.readouterr().out
    assert main(["purge", str(out / "runs" / "cli")]) == 2  # needs --yes
    assert main(["sort", str(tmp_path / "missing"), "--out", str(out), "--model", str(colour_model)]) == 2


def test_a_sort_imports_no_training_code():
    """`mona sort` loads a model and scores; it must not pull in the networks' builders, shards, ingest,
    training or dvclive."""
    import subprocess
    import sys

    code = ("import sys, mona_pipeline.sort.run, mona_pipeline.cli; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('mona_pipeline', 'dvclive', 'imagehash')))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "'mona_pipeline.sort.run'" in loaded and "'mona_pipeline.trained'" in loaded
    for training in ("mona_pipeline.train", "mona_pipeline.models", "mona_pipeline.shards", "mona_pipeline.ingest",
                     "dvclive", "imagehash"):
        assert f"'{training}'" not in loaded
