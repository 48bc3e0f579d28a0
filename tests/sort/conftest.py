"""Shared pieces of the sort tests: a hostile inbox, requests, file censuses by hash."""

from __future__ import annotations

import hashlib
import os
import traceback
import zipfile
from pathlib import Path

import pytest

from mona_pipeline.sort import SortRequest
from mona_pipeline.sort.journal import Journal
from tests.conftest import colour_picture, make_colour_model, picture_bytes, tiny_params, write_params
from tests.sort.harness import Outcome, files_under, make_pictures, run_child, sort_arguments

RED, PINK, BLUE = (220, 20, 20), (140, 100, 120), (20, 20, 220)  # keep, review (with R = 0.5), drop


def file_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tree(root: Path) -> dict[str, str]:
    """relative path -> SHA-256 of every regular file under root (`harness.files_under`, names as text)."""
    return {os.fsdecode(path): digest for path, digest in sorted(files_under(root).items())}


@pytest.fixture
def inbox(tmp_path) -> Path:
    """A folder of pictures: red ones to keep, pink to review, blue to drop, and broken files."""
    root = tmp_path / "inbox"
    files = {
        "a/red.jpg": colour_picture(RED),
        "b/red.jpg": colour_picture(RED, size=(50, 40)),  # same name, other folder, other bytes
        "a/pink.png": colour_picture(PINK, "PNG"),
        "blue.webp": colour_picture(BLUE, "WEBP"),
        "deep/er/blue.gif": colour_picture(BLUE, "GIF"),
        "red_really_png.jpg": colour_picture(RED, "PNG"),  # wrong extension, fine picture
        "scan.tiff": colour_picture(RED, "TIFF"),  # decoded by Pillow, not TF
        "empty.jpg": b"",
        "truncated.jpg": colour_picture(RED, size=(300, 300))[:300],
        "garbage.png": b"not a picture at all" * 10,
        "huge.png": picture_bytes("PNG", size=(4000, 3000)),  # over the request's pixel limit below
    }
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    (root / "notes.txt").write_text("not a picture, never touched")
    (root / "a" / "loop").symlink_to(root, target_is_directory=True)  # a symlink loop
    return root


def sort_request(source, out, model, **overrides) -> SortRequest:
    return SortRequest(source=str(source), out=out, model=model, batch_size=4, max_image_pixels=2_000_000,
                       **overrides)


def journal_entries(summary) -> dict:
    with Journal(Path(summary.journal)) as journal:
        return {e.name: e for e in journal.entries()}


def hostile_zip(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("../../escape.jpg", colour_picture(RED))
        archive.writestr("/etc/absolute.jpg", colour_picture(RED, size=(30, 30)))
        archive.writestr("dir/same.jpg", colour_picture(RED, size=(31, 31)))
        archive.writestr("dir/same.jpg", colour_picture(RED, size=(32, 32)))  # duplicate member name
        archive.writestr("C:\\windows\\drive.jpg", colour_picture(RED, size=(33, 33)))
        archive.writestr("blue.png", colour_picture(BLUE, "PNG"))
        archive.writestr("broken.jpg", b"\xff\xd8\xff\xe0broken")
    return path


@pytest.fixture(scope="module")
def params_file(tmp_path_factory) -> Path:
    """A tiny params.yaml for child processes (the hostile-input and kill tests)."""
    folder = tmp_path_factory.mktemp("params")
    return write_params(folder / "params.yaml", tiny_params(folder))


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """The colour model: red scores ~1, pink ~0.65, blue ~0; its own threshold is 0.9."""
    return make_colour_model(tmp_path_factory.mktemp("colour-model") / "target", threshold=0.9)


@pytest.fixture
def cli(params_file, capsys):
    """Run `mona ARGS` in this process (fast: TensorFlow is loaded once); crashes come back as tracebacks."""
    from mona_pipeline.cli import main

    def run(*arguments) -> Outcome:
        capsys.readouterr()
        try:
            code = main(["--params", str(params_file), *map(str, arguments)])
        except SystemExit as error:
            code = error.code if isinstance(error.code, int) else 2
        except Exception:  # a crash: what the user would see is this traceback
            captured = capsys.readouterr()
            return Outcome(-1, captured.out, captured.err + traceback.format_exc())
        captured = capsys.readouterr()
        return Outcome(code, captured.out, captured.err)

    return run


@pytest.fixture
def child(params_file):
    return lambda *arguments, **options: run_child(params_file, *arguments, **options)


@pytest.fixture(scope="module")
def baseline_peak_mb(params_file, model, tmp_path_factory) -> float:
    """Peak memory of sorting one small picture: what the process needs before any hostile input."""
    folder = tmp_path_factory.mktemp("baseline")
    make_pictures(folder / "src", 1)
    outcome = run_child(params_file, *sort_arguments(folder / "src", folder / "O", model))
    outcome.assert_clean(0)
    return outcome.peak_mb
