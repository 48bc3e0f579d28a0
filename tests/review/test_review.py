"""Verdicts, the review order, the audit's estimates, apply (and its undo) and learn, on a real sorted run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mona_pipeline import ingest
from mona_pipeline.cli import main
from mona_pipeline.review import apply, audit, learn, verdicts
from mona_pipeline.sort import undo_run
from mona_pipeline.sort.journal import open_run
from tests.conftest import tiny_params
from tests.review.conftest import rows_by_name, sort_with, tree


def test_a_verdict_is_the_last_mark_not_withdrawn_and_undo_brings_back_the_one_before(sorted_run):
    run_dir, _, _ = sorted_run
    with open_run(run_dir) as journal:
        ids = rows_by_name(journal)
        verdicts.mark(journal, ids["red/0.png"], "yes", queued=True)
        verdicts.mark(journal, ids["red/0.png"], "no", queued=True)  # a change of mind
        verdicts.mark(journal, ids["blue/1.jpg"], "no", queued=False)  # picked by hand
        assert verdicts.current(journal) == {ids["red/0.png"]: "no", ids["blue/1.jpg"]: "no"}
        assert verdicts.current(journal, queued_only=True) == {ids["red/0.png"]: "no"}
        assert verdicts.withdraw_last(journal) == ids["blue/1.jpg"]
        assert verdicts.withdraw_last(journal) == ids["red/0.png"]
        assert verdicts.current(journal) == {ids["red/0.png"]: "yes"}  # the mark before comes back
        with pytest.raises(verdicts.VerdictError, match="maybe"):
            verdicts.mark(journal, ids["red/0.png"], "maybe", queued=True)
        with pytest.raises(verdicts.VerdictError, match="no picture"):
            verdicts.mark(journal, "nowhere.png", "yes", queued=True)
    with open_run(run_dir) as journal:  # written through: another connection (a reload, a tab) sees it
        assert verdicts.current(journal) == {ids["red/0.png"]: "yes"}


def test_the_review_order_is_the_band_then_keep_and_drop_alternating_the_same_every_time(sorted_run):
    run_dir, _, _ = sorted_run
    with open_run(run_dir) as journal:
        decision = {entry.item_id: entry.decision for entry in journal.entries()}
        queue = verdicts.review_queue(journal)
        assert verdicts.review_queue(journal) == queue
    assert [decision[item] for item in queue] == ["review"] * 4 + ["keep", "drop"] * 6 + ["drop"] * 2
    assert len(set(queue)) == 18
    with open_run(run_dir) as journal:
        assert len(verdicts.review_queue(journal, sample=2)) == 4 + 2 + 2


def test_wilson_interval_matches_the_issues_example():
    low, high = audit.wilson(48, 50)
    assert low == pytest.approx(0.8654, abs=1e-4) and high == pytest.approx(0.9890, abs=1e-4)
    assert audit.Rate("keep", 2341, 50, 48).line("her") == "of 2,341 kept, about 96% show her (48 of 50 checked; 86-99%)"
    assert audit.wilson(0, 0) == (0.0, 1.0)
    assert audit.Rate("drop", 1374, 15, 1).line("mona").endswith("about 92 pictures of mona missed (up to 410)")


def test_the_audit_estimates_each_decision_from_marks_in_the_review_order_only(sorted_run):
    run_dir, _, _ = sorted_run
    with open_run(run_dir) as journal:
        queue = verdicts.review_queue(journal)
        decision = {entry.item_id: entry.decision for entry in journal.entries()}
        kept = [item for item in queue if decision[item] == "keep"]
        for number, item in enumerate(kept):  # 5 of 6 kept show her
            verdicts.mark(journal, item, "no" if number == 0 else "yes", queued=True)
        dropped = [item for item in queue if decision[item] == "drop"]
        verdicts.mark(journal, dropped[0], "yes", queued=False)  # by hand: not a random sample
        result = audit.estimate(journal, None, 0.95)
    keep, drop = result.rates["keep"], result.rates["drop"]
    assert (keep.size, keep.checked, keep.showing) == (6, 6, 5)
    assert result.lines()[0] == "of 6 kept, about 83% show mona (5 of 6 checked; 43-97%)"
    assert (drop.checked, drop.enough) == (0, False) and "too few checked to tell (0 of 8" in drop.line("mona")
    assert result.marked_by_hand == 1 and result.reviewed == 7
    assert result.suggestion.threshold is None and "no threshold suggested yet" in result.suggestion.reason


def test_the_suggested_threshold_is_the_lowest_cut_reaching_the_target_on_weighted_samples():
    checked = {"keep": [(0.99, True)] * 18 + [(0.97, False)] + [(0.96, True)] * 5, "review": [(0.6, False)] * 4,
               "drop": [(0.1, False)] * 10}
    scores = {"keep": [0.99] * 180 + [0.97] * 10 + [0.96] * 50, "review": [0.6] * 4, "drop": [0.1] * 1000}
    suggestion = audit.suggest(checked, scores, 0.95)
    assert suggestion.threshold == 0.96 and suggestion.checked_above == 24  # (180 + 50) of 240: 0.958
    assert suggestion.precision == pytest.approx(230 / 240)
    strict = audit.suggest(checked, scores, 0.99)  # only 0.99 reaches it, on 18 checked pictures: too few
    assert strict.threshold is None and "with 20 checked pictures at or above it" in strict.reason


def test_a_decision_checked_too_little_cannot_carry_a_suggestion():
    """Seed 42's pool (bench/review_loop.py): the whole review band checked, one kept picture, which said yes:
    its weight must not make a cut below the keep threshold look 95% precise."""
    checked = {"keep": [(0.99, True)], "review": [(0.9, True)] * 30 + [(0.6, False)] * 60, "drop": []}
    scores = {"keep": [0.99] * 527, "review": [0.9] * 30 + [0.6] * 60, "drop": [0.01] * 1374}
    suggestion = audit.suggest(checked, scores, 0.95)
    assert suggestion.threshold is None and "10 of each decision it takes from" in suggestion.reason


def judge(run_dir: Path, marks: dict[str, str]) -> None:
    with open_run(run_dir) as journal:
        ids = rows_by_name(journal)
        for name, verdict in marks.items():
            verdicts.mark(journal, ids[name], verdict, queued=True)


def test_apply_moves_pictures_to_match_the_verdicts_and_undo_puts_all_back(sorted_run):
    run_dir, inbox, out = sorted_run
    before = tree(inbox)
    judge(run_dir, {"pink/0.png": "yes", "pink/1.png": "no", "red/2.png": "no", "red/3.png": "yes",
                    "blue/4.jpg": "yes"})
    result = apply.apply_verdicts(run_dir)
    assert (result.to_keep, result.to_rejected, result.fetched, result.unchanged) == (1, 2, 1, 1)
    assert not result.problems
    assert (out / "keep/pink/0.png").is_file() and not (out / "review/pink/0.png").exists()
    assert (out / "review/rejected/pink/1.png").is_file() and (out / "review/rejected/red/2.png").is_file()
    assert not (out / "keep/red/2.png").exists() and (out / "keep/blue/4.jpg").is_file()
    assert tree(inbox) == before  # a copy run: the source untouched
    again = apply.apply_verdicts(run_dir)
    assert again.changed == 0 and again.unchanged == 5  # applied twice: nothing moves
    with open_run(run_dir) as journal:  # a verdict taken back: back to the sort's own folder
        verdicts.withdraw_last(journal)  # blue/4.jpg: the fetched copy goes
        verdicts.withdraw_last(journal)  # red/3.png
        verdicts.withdraw_last(journal)  # red/2.png: back to keep/
    result = apply.apply_verdicts(run_dir)
    assert (result.to_sorted, result.returned) == (1, 1)
    assert (out / "keep/red/2.png").is_file() and not (out / "keep/blue/4.jpg").exists()
    undone = undo_run(run_dir)
    assert not undone.problems
    assert tree(inbox) == before and not [path for path in tree(out) if not path.startswith("runs/")]


def test_apply_in_a_move_run_and_in_a_delete_run(tmp_path, colour_model):
    run_dir, inbox, out = sort_with(tmp_path / "move", colour_model, "move")
    judge(run_dir, {"pink/0.png": "yes", "red/1.png": "no", "blue/2.jpg": "yes"})
    result = apply.apply_verdicts(run_dir)
    assert (result.to_keep, result.to_rejected, result.fetched) == (1, 1, 1)
    assert (out / "keep/blue/2.jpg").is_file() and not (inbox / "blue/2.jpg").exists()  # moved, as the run moves
    assert not undo_run(run_dir).problems
    assert sorted(tree(inbox)) == sorted(f"{name}" for name in __import__("tests.review.conftest", fromlist=["x"])
                                         .PICTURES)
    run_dir, inbox, out = sort_with(tmp_path / "delete", colour_model, "delete")
    judge(run_dir, {"blue/3.jpg": "yes", "red/0.png": "no"})
    result = apply.apply_verdicts(run_dir)
    assert result.returned == 1 and (inbox / "blue/3.jpg").is_file()  # out of the trash, back in the source
    assert "stay in the source: applying never deletes" in " ".join(result.left) and (inbox / "red/0.png").is_file()
    with open_run(run_dir) as journal:
        assert journal.get(rows_by_name(journal)["blue/3.jpg"]).action == "none"  # a purge can no longer touch it


def test_an_apply_killed_after_its_move_is_finished_by_the_next_undo(sorted_run):
    run_dir, inbox, out = sorted_run
    before = tree(inbox)
    judge(run_dir, {"pink/2.png": "yes"})
    with open_run(run_dir) as journal:  # what a kill between the rename and its record leaves
        entry = journal.get(rows_by_name(journal)["pink/2.png"])
        seq = apply._plan(journal, entry, "relocate", Path(entry.destination), out / "keep/pink/2.png", "copy", "keep")
        (out / "keep/pink").mkdir(parents=True)
        Path(entry.destination).rename(out / "keep/pink/2.png")
        assert seq
    assert not undo_run(run_dir).problems  # settles the move first, so the copy in keep/ is removed
    assert tree(inbox) == before and not [path for path in tree(out) if not path.startswith("runs/")]


def test_learn_adds_the_verdicts_once_and_follows_changes_of_mind(sorted_run, tmp_path):
    run_dir, _, _ = sorted_run
    raw = tmp_path / "raw"
    judge(run_dir, {"pink/0.png": "yes", "pink/1.png": "no", "red/0.png": "no", "blue/0.jpg": "yes"})
    first = learn.learn_run(run_dir, raw, "mona")
    assert first.added == {"yes": 2, "no": 2} and not first.problems
    yes, no = first.folders["yes"], first.folders["no"]
    assert yes == raw / "mona/learned" / run_dir.name and no == raw / "mona_rejected/learned" / run_dir.name
    assert len(list(yes.glob("*.png"))) + len(list(yes.glob("*.jpg"))) == 2
    record = json.loads((no / learn.RECORD_NAME).read_text())
    assert {entry["source"].rsplit("/", 2)[-2] + "/" + entry["source"].rsplit("/", 1)[-1]
            for entry in record.values()} == {"pink/1.png", "red/0.png"}
    second = learn.learn_run(run_dir, raw, "mona")
    assert second.added == {"yes": 0, "no": 0} and second.already == 4 and not second.changed
    judge(run_dir, {"red/0.png": "yes"})  # a change of mind: the picture moves, nothing is copied twice
    with open_run(run_dir) as journal:
        journal.connection.execute("UPDATE verdicts SET withdrawn = 1 WHERE item_id = ?",
                                   (rows_by_name(journal)["blue/0.jpg"],))
    third = learn.learn_run(run_dir, raw, "mona")
    assert (third.moved, third.withdrawn, third.already) == (1, 1, 2)
    names = sorted(path.parent.parent.parent.name for path in raw.rglob("*") if path.is_file()
                   and not path.name.startswith("."))
    assert names == ["mona", "mona", "mona_rejected"]
    params = tiny_params(tmp_path, data={"raw_dir": "raw"})
    rows = ingest.build_manifest(params.data, params.stages)[0]
    assert {row["split"] for row in rows} == {"train"}  # learned: never validation
    assert sorted(row["label_target"] for row in rows) == [0, 0, 1]


def test_the_cli_applies_learns_and_the_summary_shows_the_audit(sorted_run, tmp_path, capsys):
    run_dir, _, _ = sorted_run
    with open_run(run_dir) as journal:
        for item in verdicts.review_queue(journal)[:16]:
            entry = journal.get(item)
            verdicts.mark(journal, item, "yes" if entry.decision == "keep" else "no", queued=True)
    assert main(["summary", str(run_dir), "--precision", "0.9"]) == 0
    printed = capsys.readouterr().out
    assert "16 reviewed" in printed and "of 6 kept, about 100% show mona (6 of 6 checked; 60-100%)" in printed
    assert "of 8 dropped: too few checked to tell (6 of 8; 8 needed)" in printed
    assert main(["apply", str(run_dir)]) == 0
    assert "4 into review/rejected/" in capsys.readouterr().out
    params = tiny_params(tmp_path, data={"raw_dir": "raw"})
    from tests.conftest import write_params

    assert main(["learn", str(run_dir), "--params", str(write_params(tmp_path / "params.yaml", params))]) == 0
    printed = capsys.readouterr().out
    assert "6 pictures of mona added" in printed and "10 rejected pictures (hard negatives) added" in printed
    assert f"retrain: dvc add {tmp_path / 'raw'} && dvc repro" in printed


@pytest.mark.parametrize("arguments, words", [
    (["summary", "RUN", "--precision", "2"], "is not a precision"),
    (["review", "RUN", "--precision", "zero"], "'zero' is not a number"),
    (["demo-data", "--pool", "0"], "0 must be at least 1"),
])
def test_bad_review_options_are_refused_with_the_value_named(arguments, words, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(arguments)
    assert exit_.value.code == 2 and words in capsys.readouterr().err


def test_review_learn_and_apply_refuse_a_folder_that_is_not_a_run(tmp_path, capsys):
    for command in ("apply", "learn", "review"):
        assert main([command, str(tmp_path)]) == 2
        assert "is not a sort run" in capsys.readouterr().err


def test_a_picture_already_in_keep_from_elsewhere_is_not_fetched_nor_undone(sorted_run):
    run_dir, inbox, out = sorted_run
    (out / "keep/blue").mkdir(parents=True)
    (out / "keep/blue/4.jpg").write_bytes((inbox / "blue/4.jpg").read_bytes())  # an earlier run's copy
    judge(run_dir, {"blue/4.jpg": "yes"})
    result = apply.apply_verdicts(run_dir)
    assert result.fetched == 0 and "already in" in " ".join(result.left)
    assert not undo_run(run_dir).problems
    assert (out / "keep/blue/4.jpg").read_bytes() == (inbox / "blue/4.jpg").read_bytes()  # not this run's: kept
