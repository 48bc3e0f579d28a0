"""`mona runs OUT` and `mona summary RUN`: your own runs, read from their journals, never the demo's evaluation."""

import csv
import json
import shutil
import threading

from mona_pipeline.cli import main
from mona_pipeline.sort import sort_source, undo_run
from mona_pipeline.sort.journal import JOURNAL_NAME, Journal
from mona_pipeline.sort.lock import hold_run
from mona_pipeline.sort.runs import list_runs, read_run
from tests.sort.conftest import sort_request


def test_runs_lists_each_run_with_its_counts_and_whether_it_was_undone(inbox, tmp_path, colour_model, capsys):
    out = tmp_path / "out"
    copied = sort_source(sort_request(inbox, out, colour_model, run="copied", review_from=0.5))
    sort_source(sort_request(inbox, out, colour_model, run="looked", action="none"))
    undo_run(out / "runs" / "copied")

    records = {record.name: record for record in list_runs(out)}
    assert set(records) == {"copied", "looked"}
    assert records["copied"].counts == copied.counts and records["copied"].state == "undone"
    assert records["looked"].state == "complete" and records["looked"].info["action"] == "none"

    assert main(["runs", str(out)]) == 0
    printed = capsys.readouterr().out
    copied_line = next(line for line in printed.splitlines() if "| copied |" in line)
    assert f"| {inbox} | copy | {copied.pictures} | {copied.counts['keep']} | {copied.counts['review']} |" \
        in copied_line and copied_line.endswith("| undone |")
    assert "2 runs in" in printed


def test_summary_of_a_run_shows_that_run_and_not_the_evaluation(inbox, tmp_path, colour_model, capsys,
                                                                 monkeypatch):
    out = tmp_path / "out"
    summary = sort_source(sort_request(inbox, out, colour_model, run="mine"))
    monkeypatch.chdir(tmp_path)  # no reports/evaluation here: asking for it would be an error
    assert main(["summary", str(out / "runs" / "mine")]) == 0
    printed = capsys.readouterr().out
    assert f"run {out / 'runs' / 'mine'}" in printed
    assert f"pictures    {summary.pictures}: keep {summary.counts['keep']} review 0 drop {summary.counts['drop']}" \
        in printed
    assert f"report      {summary.report}" in printed and "state       complete" in printed
    assert f"undo        mona undo {out / 'runs' / 'mine'}" in printed
    assert "| model |" not in printed and "agree on" not in printed  # the demo's evaluation only when asked
    assert main(["summary", str(out / "runs" / "mine"), "--evaluation"]) == 2  # asked, and there is none
    assert "no evaluation report at" in capsys.readouterr().err


def test_a_run_in_use_is_shown_as_running_and_an_unfinished_one_says_how_to_resume(inbox, tmp_path, colour_model):
    out = tmp_path / "out"
    sort_source(sort_request(inbox, out, colour_model, run="busy"))
    run_dir = out / "runs" / "busy"
    (run_dir / "summary.json").unlink()  # as a run killed before its end leaves it
    assert read_run(run_dir).state == "unfinished"
    held, release = threading.Event(), threading.Event()

    def hold():
        with hold_run(run_dir, "sort"):
            held.set()
            release.wait(10)

    worker = threading.Thread(target=hold)
    worker.start()
    try:
        held.wait(10)
        record = read_run(run_dir)
        assert record.state == "running" and "sort" in record.busy
    finally:
        release.set()
        worker.join()
    assert read_run(run_dir).state == "unfinished"


def test_runs_of_a_folder_without_runs_is_one_clear_line(tmp_path, capsys):
    assert main(["runs", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"error: no sort runs in {tmp_path}") and error.count("\n") == 1


def test_summary_with_the_evaluation_compares_the_sort_with_the_model_it_used(inbox, tmp_path, colour_model,
                                                                              capsys, monkeypatch):
    """`make demo`'s last line: the sort with models/baseline is checked against the baseline's evaluation."""
    monkeypatch.chdir(tmp_path)
    shutil.copytree(colour_model, tmp_path / "models" / "baseline")
    sort_source(sort_request(inbox, tmp_path / "out", tmp_path / "models" / "baseline", run="demo"))
    with Journal(tmp_path / "out" / "runs" / "demo" / JOURNAL_NAME, read_only=True) as journal:
        kept = {entry.source: entry.decision == "keep" for entry in journal.entries() if entry.score is not None}
    reports = tmp_path / "reports" / "evaluation"
    reports.mkdir(parents=True)
    (reports / "evaluation.md").write_text("# Evaluation\n")
    for name, agree in (("baseline", True), ("three_stage", False)):  # the other model decides the opposite
        with open(reports / f"scores_{name}_test.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["path", "score"])
            writer.writerows([source, 1.0 if keep == agree else 0.0] for source, keep in kept.items())
    assert main(["summary", str(tmp_path / "out" / "runs" / "demo"), "--evaluation"]) == 0
    assert f"and evaluate (baseline) agree on {len(kept)} of {len(kept)} pictures" in capsys.readouterr().out
    summary_path = tmp_path / "out" / "runs" / "demo" / "summary.json"
    summary = json.loads(summary_path.read_text())
    summary_path.write_text(json.dumps({**summary, "model": "models/elsewhere"}))  # a model evaluate never scored
    assert main(["summary", str(tmp_path / "out" / "runs" / "demo"), "--evaluation"]) == 0
    assert "is not one the evaluation scored" in capsys.readouterr().out
