"""sort: stream any pile of pictures through the model; keep, review or drop each, never lose one.

    mona sort ~/Pictures/inbox --out ~/sorted --action move --review-from 0.5
    mona undo ~/sorted/runs/<run>            # put every moved or trashed picture back
    mona purge ~/sorted/runs/<run> --yes     # empty the run's trash for good

The package, one module per concern:
    request.py        SortRequest: params.yaml's sort section + overrides, built in one place
    sources.py        folders, archives read in place, path lists, remote URLs
    decisions.py      score -> keep | review | drop | unreadable -> file operation
    run.py            SortRun: score, decide, journal, act; `sort_source` for one process
    tally.py          Tally: what one pass did (chunks' tallies add up)
    files.py          interrupt-safe copy / move / link, hash checks
    journal.py        the run's SQLite journal (planned before, done after each operation)
    recovery.py       finish a killed run, undo a run, purge a run's trash
    contact_sheet.py  the run's HTML page of sampled thumbnails
"""

import importlib

# Loaded on first use (PEP 562): `mona undo` and `mona purge` need only recovery.py, so they start in a
# second without TensorFlow; a sort loads run.py and, with it, the model code.
_HOMES = {"DECISIONS": "decisions", "decide": "decisions", "purge_run": "recovery", "undo_run": "recovery",
          "SortOverrides": "request", "SortRequest": "request", "build_request": "request",
          "overrides_from": "request", "SortRun": "run", "SortStopped": "stop", "Tally": "tally", "sort_source": "run"}

__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
