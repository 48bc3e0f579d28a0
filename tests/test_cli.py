"""The `mona` command line guides: one-line errors, "did you mean", global options anywhere, a version,
a progress bar with a total, and no stray bar before an error."""

import subprocess
import sys
from pathlib import Path

import pytest

from mona_pipeline.cli import main
from tests.conftest import colour_picture, tiny_params, write_params

MONA = [sys.executable, "-m", "mona_pipeline.cli"]


def run_mona(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*MONA, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_version(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.startswith("mona-pipeline 0.1.0 (Python ")


@pytest.mark.parametrize("argv, expected", [
    (["sort", "x", "--out", "o", "--confidenc", "0.9"], "--confidenc: did you mean --confidence?"),
    (["sort", "x", "--out", "o", "--reveiw-from", "0.5"], "--reveiw-from: did you mean --review-from?"),
    (["srot", "x"], "unknown command 'srot'; did you mean 'sort'?"),
    (["undo", "r", "--yse"], "unrecognized arguments: --yse"),
])
def test_a_mistyped_command_or_option_gets_a_suggestion_in_one_line(argv, expected, capsys):
    with pytest.raises(SystemExit) as exited:
        main(argv)
    error = capsys.readouterr().err
    assert exited.value.code == 2 and expected in error
    assert error.count("\n") == 1 and "usage:" not in error


@pytest.mark.parametrize("option, value, expected", [
    ("--confidence", "95", "argument --confidence: must be between 0 and 1, got 95"),
    ("--review-from", "-1", "argument --review-from: must be between 0 and 1, got -1"),
    ("--batch-size", "0", "argument --batch-size: must be between 1 and 4096, got 0"),
    ("--chunk-size", "many", "argument --chunk-size: must be at least 1, got many"),
    ("--action", "shred", "argument --action: invalid choice: 'shred'"),
])
def test_a_bad_setting_is_one_line_naming_the_option(option, value, expected, capsys):
    with pytest.raises(SystemExit):
        main(["sort", "pictures", "--out", "sorted", option, value])
    error = capsys.readouterr().err
    assert expected in error and error.count("\n") == 1


def test_global_options_work_after_the_command_too(tmp_path, capsys, monkeypatch):
    params = write_params(tmp_path / "mine.yaml", tiny_params(tmp_path))
    monkeypatch.chdir(tmp_path)  # no params.yaml here: only --params can name mine.yaml
    assert main(["check", "--quick", "--params", str(params), "-v"]) == 1  # no pictures yet: errors, but read
    after = capsys.readouterr().out
    assert main(["--params", str(params), "check", "--quick"]) == 1
    assert capsys.readouterr().out == after
    assert f"no raw data folder at {tmp_path / 'data' / 'raw'}" in after
    assert main(["check", "--quick", "--params", str(tmp_path / "missing.yaml")]) == 2
    assert f"params file not found: {tmp_path / 'missing.yaml'}" in capsys.readouterr().err


def test_outside_a_project_a_missing_model_says_to_run_from_the_project_or_pass_model(tmp_path):
    (tmp_path / "pictures").mkdir()
    (tmp_path / "pictures" / "a.jpg").write_bytes(colour_picture((200, 10, 10)))
    result = run_mona("sort", "pictures", "--out", "sorted", cwd=tmp_path)
    assert result.returncode == 2
    assert f"no trained model in {tmp_path / 'models' / 'target'}" in result.stderr
    assert f"{tmp_path} is not a project folder (no params.yaml): run it from the project folder, or pass " \
           f"--model" in result.stderr
    assert "sorting" not in result.stderr  # no progress bar before the error


def test_the_progress_bar_has_a_total_and_a_percentage(tmp_path, colour_model):
    pictures = tmp_path / "pictures"
    pictures.mkdir()
    for number in range(12):
        (pictures / f"{number:02d}.jpg").write_bytes(colour_picture((20 * number, 10, 10)))
    result = run_mona("sort", "pictures", "--out", "sorted", "--model", str(colour_model), "--batch-size", "8",
                      "--tiling", "off", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    frames = [frame.strip() for frame in result.stderr.replace("\r", "\n").splitlines() if "sorting" in frame]
    assert frames[-1].startswith("sorting: 100%|") and "12/12 [" in frames[-1] and "pic/s]" in frames[-1]


def test_a_sort_reports_progress_per_picture_and_its_total_from_a_count(tmp_path, colour_model):
    import threading

    from mona_pipeline.sort import sort_source
    from tests.sort.conftest import sort_request

    pictures = tmp_path / "pictures"
    (pictures / "deep").mkdir(parents=True)
    for number in range(10):
        (pictures / ("deep" if number % 2 else "") / f"{number:02d}.jpg").write_bytes(colour_picture((200, 9, 9)))
    (pictures / "notes.txt").write_text("not a picture")
    steps, totals, counted = [], [], threading.Event()
    sort_source(sort_request(pictures, tmp_path / "out", colour_model), steps.append,
                total=lambda n: (totals.append(n), counted.set()))
    assert counted.wait(10) and totals == [10]
    assert steps == [1] * 10  # batch_size 4: a bar that moved per batch would get 4, 4, 2
