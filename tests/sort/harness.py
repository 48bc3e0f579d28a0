"""What the hostile-input and kill tests share: running `mona` as a user would, and censuses by SHA-256.

    outcome = run_child(params_file, "sort", SRC, "--out", OUT, timeout=150)   # a child under a timeout
    outcome.assert_clean(0)                                                    # no hang, no traceback
    assert_each_once(originals, SRC, OUT / "keep")                             # nothing lost or doubled
"""

from __future__ import annotations

import collections
import ctypes
import hashlib
import json
import os
import re
import shutil
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
SMALL_DISK = HERE / "small_disk.py"
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


def run_child(params_file: Path, *arguments, timeout: float = HANG_SECONDS, **options) -> Outcome:
    """Run `mona ARGS` as a child process under a timeout (a hang is code None), optionally without
    root's power over file permissions."""
    return start_child(params_file, *arguments, **options).finish(timeout)


@dataclass
class Running:
    """A child started by `start_child`; `finish` waits for it (killing it after a hang)."""

    process: subprocess.Popen
    peak_file: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def finish(self, timeout: float = HANG_SECONDS) -> Outcome:
        try:
            stdout, stderr = self.process.communicate(timeout=timeout)
            peak = float(self.peak_file.read_text()) if self.peak_file.read_text() else None
            return Outcome(self.process.returncode, stdout, stderr, peak)
        except subprocess.TimeoutExpired:
            self.process.kill()
            stdout, stderr = self.process.communicate()
            return Outcome(None, _text(stdout), _text(stderr))
        finally:
            self.peak_file.unlink(missing_ok=True)


def start_child(params_file: Path, *arguments, unprivileged: bool = False, memory_limit_mb: float | None = None,
                environment: dict | None = None, cwd: Path | None = None,
                command: list[str] | None = None) -> Running:
    """Start `mona ARGS` (or `MONA_ENTRY`'s main, see instrumented_cli.py) as a child process."""
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(environment or {})}
    peak_file = Path(tempfile.mkstemp(prefix="mona-peak-")[1])
    environment["MONA_PEAK_RSS"] = str(peak_file)
    if memory_limit_mb:
        environment["MONA_MEMORY_LIMIT_MB"] = str(memory_limit_mb)
    preexec = drop_root_file_override if unprivileged and os.geteuid() == 0 else None
    command = command or [sys.executable, str(INSTRUMENTED_CLI), "--params", str(params_file),
                          *map(str, arguments)]
    try:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   errors="replace", env=environment, preexec_fn=preexec, cwd=cwd or REPOSITORY)
    except subprocess.SubprocessError as error:  # prctl refused (no CAP_SETPCAP in this container)
        peak_file.unlink(missing_ok=True)
        pytest.skip(f"cannot run a child without root's file-permission override here: {error}")
    return Running(process, peak_file)


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


def outside(sandbox: Path, out: Path) -> dict[bytes, str]:
    """Every file in the sandbox that is not under OUT."""
    prefix = os.fsencode(out.relative_to(sandbox)) + b"/"
    return {path: digest for path, digest in files_under(sandbox).items() if not path.startswith(prefix)}


def run_folder(outcome: Outcome) -> Path:
    """The run folder a sort printed (`journal: OUT/runs/RUN/journal.sqlite`)."""
    match = re.search(r"journal: (.+)", outcome.stdout)
    assert match, outcome.describe()
    return Path(match.group(1).strip()).parent


def summary_of(outcome: Outcome) -> dict:
    return json.loads((run_folder(outcome) / "summary.json").read_text())


def pictures_line(outcome: Outcome) -> str:
    match = re.search(r"(\d+) pictures: .*", outcome.stdout)
    assert match, outcome.describe()
    return match.group(0)


def userns_available() -> bool:
    if not shutil.which("unshare") or not shutil.which("mount"):
        return False
    probe = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "true"], capture_output=True)
    return probe.returncode == 0


def on_small_disk(tmp_path: Path, folder: Path, steps: list[dict]) -> list[dict]:
    """Run the steps with `folder` on a tmpfs of its own (see small_disk.py); returns each step's result."""
    plan, result = tmp_path / "plan.json", tmp_path / "result.json"
    plan.write_text(json.dumps({"folder": str(folder), "steps": steps}))
    subprocess.run(["unshare", "--user", "--map-root-user", "--mount", sys.executable, str(SMALL_DISK),
                    str(plan), str(result)], check=True, timeout=600, cwd=REPOSITORY,
                   env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    return json.loads(result.read_text())


needs_userns = pytest.mark.skipif(not userns_available(), reason="needs unprivileged user namespaces (unshare)")
