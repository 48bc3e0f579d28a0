"""Run commands with a folder on a tiny file system of its own: a disk that fills up, or a read-only one.

    unshare --user --map-root-user --mount python tests/sort/small_disk.py PLAN.json RESULT.json

Inside a private user and mount namespace (no privileges needed on the host) the
plan's folder gets a fresh tmpfs; the plan's steps then run in order:

    {"folder": "/tmp/x/out", "steps": [
        {"mount": {"size": "600k"}},           # (re)mount the folder: tmpfs of this size, "ro": true for read-only
        {"run": ["python", "-m", "mona_pipeline.cli", ...]},
        {"resize": "64m"},                     # more space, contents kept
        {"remount": "ro"},                     # read-only now, contents kept
        {"census": true}]}                     # relative path -> SHA-256 of every file in the folder

The mount lives only as long as this process, so everything the test wants to know
about the folder (exit codes, output, the census) is written to RESULT.json.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script: the repository's tests package
from tests.sort.harness import files_under  # noqa: E402


def census(folder: Path) -> dict[str, str]:
    """relative path -> SHA-256 of every file in the folder (the harness's census, names as text)."""
    return {os.fsdecode(path): digest for path, digest in files_under(folder).items()}


def mount(folder: Path, size: str, read_only: bool = False) -> None:
    if os.path.ismount(folder):
        subprocess.run(["umount", str(folder)], check=True)
    options = f"size={size}" + (",ro" if read_only else "")
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], check=True)


def main(plan_path: str, result_path: str) -> None:
    plan = json.loads(Path(plan_path).read_text())
    folder = Path(plan["folder"])
    folder.mkdir(parents=True, exist_ok=True)
    results = []
    for step in plan["steps"]:
        if "mount" in step:
            mount(folder, step["mount"]["size"], step["mount"].get("ro", False))
            results.append({"mount": step["mount"]})
        elif "remount" in step:
            subprocess.run(["mount", "-o", f"remount,{step['remount']}", str(folder)], check=True)
            results.append({"remount": step["remount"]})
        elif "resize" in step:
            subprocess.run(["mount", "-o", f"remount,size={step['resize']}", str(folder)], check=True)
            results.append({"resize": step["resize"]})
        elif "run" in step:
            ran = subprocess.run(step["run"], capture_output=True, text=True, errors="replace",
                                 timeout=step.get("timeout", 300))
            results.append({"code": ran.returncode, "stdout": ran.stdout, "stderr": ran.stderr})
        elif "census" in step:
            results.append({"census": census(folder)})
    Path(result_path).write_text(json.dumps(results))


if __name__ == "__main__":
    main(*sys.argv[1:3])
