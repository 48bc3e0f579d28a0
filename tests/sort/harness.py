"""What the hostile-input and kill tests share: running `mona` as a user would, and censuses by SHA-256.

    outcome = run_child(params_file, "sort", SRC, "--out", OUT, timeout=150)   # a child under a timeout
    outcome.assert_clean(0)                                                    # no hang, no traceback
    assert_each_once(originals, SRC, OUT / "keep")                             # nothing lost or doubled
"""

from __future__ import annotations

import collections
import ctypes
import hashlib
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import colour_picture

RED, PINK, BLUE = (220, 20, 20), (140, 100, 120), (20, 20, 220)  # scores ~1, ~0.65, ~0
HERE = Path(__file__).resolve().parent
REPOSITORY = HERE.parents[1]
INSTRUMENTED_CLI = HERE / "instrumented_cli.py"
HANG_SECONDS = 150


@dataclass
class Outcome:
    """What a user sees: exit code (None: killed after a hang), output, and the child's peak memory."""

    code: int | None
    stdout: str
    stderr: str
    peak_mb: float | None = None

    @property
    def text(self) -> str:
        return self.stdout + self.stderr

    def describe(self) -> str:
        return f"exit {self.code}\n--- stdout\n{self.stdout[-3000:]}\n--- stderr\n{self.stderr[-3000:]}"

    def assert_clean(self, *codes: int) -> None:
        """Finished (no hang), with one of these exit codes and no traceback."""
        assert self.code is not None, f"hung for {HANG_SECONDS} s\n{self.describe()}"
        assert "Traceback" not in self.text, self.describe()
        assert self.code in codes, self.describe()


def drop_root_file_override() -> None:
    """As root, give up overriding file permissions (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH) for this process
    and what it executes, so a folder without read permission is unreadable, as for any user."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):
        if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def run_child(params_file: Path, *arguments, timeout: float = HANG_SECONDS, unprivileged: bool = False,
              memory_limit_mb: float | None = None, environment: dict | None = None, cwd: Path | None = None,
              command: list[str] | None = None) -> Outcome:
    """Run `mona ARGS` as a child process under a timeout (a hang is code None), optionally without
    root's power over file permissions."""
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(environment or {})}
    peak_file = Path(tempfile.mkstemp(prefix="mona-peak-")[1])
    environment["MONA_PEAK_RSS"] = str(peak_file)
    if memory_limit_mb:
        environment["MONA_MEMORY_LIMIT_MB"] = str(memory_limit_mb)
    preexec = drop_root_file_override if unprivileged and os.geteuid() == 0 else None
    command = command or [sys.executable, str(INSTRUMENTED_CLI), "--params", str(params_file),
                          *map(str, arguments)]
    try:
        ran = subprocess.run(command, capture_output=True, text=True, errors="replace", timeout=timeout,
                             env=environment, preexec_fn=preexec, cwd=cwd or REPOSITORY)
        peak = float(peak_file.read_text()) if peak_file.read_text() else None
        return Outcome(ran.returncode, ran.stdout, ran.stderr, peak)
    except subprocess.TimeoutExpired as expired:
        return Outcome(None, _text(expired.stdout), _text(expired.stderr))
    except subprocess.SubprocessError as error:  # prctl refused (no CAP_SETPCAP in this container)
        pytest.skip(f"cannot run a child without root's file-permission override here: {error}")
    finally:
        peak_file.unlink(missing_ok=True)


def _text(data) -> str:
    return data.decode(errors="replace") if isinstance(data, bytes) else (data or "")


def sort_arguments(source, out, model, *more) -> list:
    return ["sort", source, "--out", out, "--model", model, "--batch-size", "4", "--quiet", *more]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_pictures(folder: Path, count: int, colours=(RED,), prefix: str = "p", start: int = 0) -> dict[str, str]:
    """`count` distinct small PNGs in folder, cycling through colours; returns name -> SHA-256."""
    folder.mkdir(parents=True, exist_ok=True)
    made = {}
    for index in range(start, start + count):
        data = colour_picture(colours[index % len(colours)], "PNG", size=(30 + index, 30))
        (folder / f"{prefix}{index:03d}.png").write_bytes(data)
        made[f"{prefix}{index:03d}.png"] = sha(data)
    return made


def hashes(*roots: Path) -> collections.Counter:
    """How many times each content occurs among the regular files (not links) under roots (bytes-safe)."""
    found = collections.Counter()
    for root in roots:
        for directory, _, files in os.walk(os.fsencode(root)):
            for name in files:
                path = os.path.join(directory, name)
                if os.path.isfile(path) and not os.path.islink(path):
                    with open(path, "rb") as handle:
                        found[sha(handle.read())] += 1
    return found


def files_under(root: Path) -> dict[bytes, str]:
    """relative path (bytes) -> SHA-256 for every regular file under root."""
    found = {}
    for directory, _, files in os.walk(os.fsencode(root)):
        for name in files:
            path = os.path.join(directory, name)
            if os.path.isfile(path) and not os.path.islink(path):
                with open(path, "rb") as handle:
                    found[os.path.relpath(path, os.fsencode(root))] = sha(handle.read())
    return found


def assert_each_once(originals, *places: Path) -> None:
    """Every original content exactly once among the places: nothing lost, nothing duplicated."""
    counts = hashes(*places)
    lost = [h for h in originals if counts[h] == 0]
    doubled = [h for h in originals if counts[h] > 1]
    assert not lost and not doubled, f"{len(lost)} pictures lost, {len(doubled)} duplicated among {places}"
