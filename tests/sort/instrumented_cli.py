"""Run the `mona` command line with a fault injected, or under a memory watchdog.

    MONA_FAULT_AT=3 python tests/sort/instrumented_cli.py sort SRC --out OUT --action move
    MONA_MEMORY_LIMIT_MB=2000 python tests/sort/instrumented_cli.py sort SRC --out OUT

The hooks wrap the calls through which a sort changes files (rename, replace, link,
symlink, unlink, remove, fsync, copyfile). Before (`MONA_FAULT_WHEN=before`, the
default) or after (`after`) the N-th call whose path lies under `MONA_FAULT_UNDER`
(default: anywhere), the process kills itself with SIGKILL: a crash at an exact,
reproducible point of a move, a delete or an undo. `MONA_FAULT_KIND=enospc` raises
"No space left on device" instead, for every call from the N-th on.
`MONA_FAULT_COUNT` names a file that receives the number of hooked calls at exit.
The hooks are installed before the package is imported, so `from os import replace`
inside it gets them too.

`MONA_DELAY_UNDER` (with `MONA_DELAY_SECONDS`, default 0.3) makes every hooked call whose path lies
under that folder sleep first: a slow or network disk, which widens the window in which a second
process on the same run could interfere. With `MONA_HOLD_WHILE` (a path) such a call also waits while that
file exists: a test holds the first process in mid-run until the second has tried, whatever the load. `MONA_ENTRY=flows.sort` runs the Prefect flow's command line
(`python -m flows.sort ...`) instead of `mona`.

`MONA_MEMORY_LIMIT_MB` starts a watchdog thread that kills the process (after writing
"memory limit exceeded" to stderr) once its resident memory passes the limit, so a
test of unbounded reading fails fast instead of exhausting the machine.
`MONA_PEAK_RSS` names a file that receives the peak resident memory (MB) at exit.
"""

from __future__ import annotations

import atexit
import errno
import os
import shutil
import signal
import sys
import threading
import time

AT = int(os.environ.get("MONA_FAULT_AT", "0"))
WHEN = os.environ.get("MONA_FAULT_WHEN", "before")
KIND = os.environ.get("MONA_FAULT_KIND", "kill")
UNDER = os.path.realpath(os.environ["MONA_FAULT_UNDER"]) if os.environ.get("MONA_FAULT_UNDER") else ""
DELAY_UNDER = os.path.realpath(os.environ["MONA_DELAY_UNDER"]) if os.environ.get("MONA_DELAY_UNDER") else ""
DELAY_SECONDS = float(os.environ.get("MONA_DELAY_SECONDS", "0.3"))
HOLD_WHILE = os.environ.get("MONA_HOLD_WHILE", "")
calls = 0


def _touches(arguments, under: str = UNDER) -> bool:
    if not under:
        return True
    for argument in arguments:
        if isinstance(argument, (str, bytes, os.PathLike)):
            path = os.path.realpath(os.path.dirname(os.path.abspath(os.fsdecode(argument))))
            if path == under or path.startswith(under + os.sep):
                return True
    return False


def _fault() -> None:
    if KIND == "enospc":
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    os.kill(os.getpid(), signal.SIGKILL)


def _hook(module, name: str) -> None:
    original = getattr(module, name)

    def hooked(*arguments, **keywords):
        global calls
        if DELAY_UNDER and name != "fsync" and _touches(arguments, DELAY_UNDER):
            time.sleep(DELAY_SECONDS)
            while HOLD_WHILE and os.path.exists(HOLD_WHILE):
                time.sleep(0.05)
        if not (name == "fsync" or _touches(arguments)):
            return original(*arguments, **keywords)
        calls += 1
        if AT and (calls == AT or (KIND == "enospc" and calls > AT)) and WHEN == "before":
            _fault()
        try:
            return original(*arguments, **keywords)
        finally:  # also after a call that raised (unlinking a file that is not there)
            if AT and calls == AT and WHEN == "after":
                _fault()

    setattr(module, name, hooked)


for _name in ("rename", "replace", "link", "symlink", "unlink", "remove", "fsync"):
    _hook(os, _name)
_hook(shutil, "copyfile")


def _resident_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _watch_memory(limit_mb: float) -> None:
    while True:
        if _resident_mb() > limit_mb:
            os.write(2, f"memory limit exceeded: more than {limit_mb:.0f} MB resident\n".encode())
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(0.02)


@atexit.register
def _write_reports() -> None:
    if os.environ.get("MONA_FAULT_COUNT"):
        with open(os.environ["MONA_FAULT_COUNT"], "w") as handle:
            handle.write(str(calls))
    if os.environ.get("MONA_PEAK_RSS"):
        import resource

        with open(os.environ["MONA_PEAK_RSS"], "w") as handle:
            handle.write(str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


if os.environ.get("MONA_MEMORY_LIMIT_MB"):
    threading.Thread(target=_watch_memory, args=(float(os.environ["MONA_MEMORY_LIMIT_MB"]),), daemon=True).start()


if __name__ == "__main__":
    if os.environ.get("MONA_ENTRY") == "flows.sort":
        from flows.sort import main
    else:
        from mona_pipeline.cli import main

    sys.exit(main(sys.argv[1:]))
