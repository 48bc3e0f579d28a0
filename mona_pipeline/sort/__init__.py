"""sort: stream any pile of pictures through the model; keep, review or drop each, never lose one.

    mona sort ~/Pictures/inbox --out ~/sorted --action move --review-from 0.5
    mona undo ~/sorted/runs/<run>            # put every moved or trashed picture back
    mona purge ~/sorted/runs/<run> --yes     # empty the run's trash for good

The package, one module per concern:
    request.py        SortRequest: params.yaml's sort section + overrides, built in one place
    sources.py        folders, archives read in place, path lists, remote URLs
    decisions.py      score -> keep | review | drop | unreadable -> file operation
    run.py            SortRun: score, decide, journal, act; `sort_source` for one process
    files.py          interrupt-safe copy / move / link, hash checks
    journal.py        the run's SQLite journal (planned before, done after each operation)
    recovery.py       finish a killed run, undo a run, purge a run's trash
    contact_sheet.py  the run's HTML page of sampled thumbnails
"""

from mona_pipeline.sort.decisions import DECISIONS, decide
from mona_pipeline.sort.recovery import purge_run, undo_run
from mona_pipeline.sort.request import SortOverrides, SortRequest, build_request, overrides_from
from mona_pipeline.sort.run import SortRun, Tally, sort_source

__all__ = ["DECISIONS", "SortOverrides", "SortRequest", "SortRun", "Tally", "build_request", "decide", "overrides_from", "purge_run",
           "sort_source", "undo_run"]
