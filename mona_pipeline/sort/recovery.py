"""After a sort: finish what a killed run left half done, undo a run, purge a run's trash.

    mona undo ~/sorted/runs/<run>            # put every moved or trashed picture back
    mona purge ~/sorted/runs/<run> --yes     # empty the run's trash for good

Each acts on the journal's rows and checks every file against the hash the run
recorded (`files.is_intact`) before touching it: nothing that changed since the
run, and nothing the run did not write, is removed. A destination never existed
before its run chose it (files.choose_destination), so a file found there with
the recorded hash is the run's own. Undo and purge refuse a folder that is not a
run; undo also undoes what a killed or stopped run left half done, and can be run
again: an undo that could not put everything back retries what is left.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from mona_pipeline.sort import files
from mona_pipeline.sort.journal import Entry, Journal, open_run


def settle(journal: Journal, entry: Entry) -> str | None:
    """Finish or roll back one operation a killed or stopped run left `planned`.

    Returns:
        its status now: "done", "missing", or None when it was forgotten (nothing happened: sort it again).
    """
    destination = Path(entry.destination) if entry.destination else None
    if destination is not None:
        files.partial_path(destination).unlink(missing_ok=True)
    if entry.action in ("move", "trash"):
        source = Path(entry.source)
        arrived = files.is_intact(destination, entry.content_hash)  # the run's own: the name was free
        if arrived and files.is_intact(source, entry.content_hash):
            source.unlink()  # a verified copy across file systems is in place; finish the move
        if arrived:
            journal.mark([entry.item_id], "done")
            return "done"
        if source.exists():
            journal.forget(entry.item_id)
            return None
        journal.mark([entry.item_id], "missing", {entry.item_id: "neither the source nor the destination exists"})
        return "missing"
    complete = destination is not None and (  # copy / link: the destination is complete or absent
        destination.is_symlink() if entry.action == "link" else files.is_intact(destination, entry.content_hash))
    if complete:
        journal.mark([entry.item_id], "done")
        return "done"
    journal.forget(entry.item_id)
    return None


def recover(journal: Journal) -> int:
    """Settle every operation a killed or stopped run left `planned`. Returns how many were found."""
    planned = list(journal.entries("planned"))
    for entry in planned:
        settle(journal, entry)
    return len(planned)


def _restore(entry: Entry) -> str | None:
    """Put one moved or trashed picture back; returns a problem, or None when restored."""
    destination, source = Path(entry.destination), Path(entry.source)
    files.partial_path(source).unlink(missing_ok=True)  # a copy back across file systems, cut short
    if not destination.is_file():
        if files.is_intact(source, entry.content_hash):
            return None  # already back: an undo killed after putting it back, before saying so
        return f"{destination} is gone; cannot restore {source}"
    if not files.is_intact(destination, entry.content_hash):
        return f"{destination} changed since the run (hash differs); left where it is"
    if source.exists():
        if files.is_intact(source, entry.content_hash):
            destination.unlink()  # an identical picture is already back in place
            return None
        return f"{source} exists again with other content; {destination} left where it is"
    source.parent.mkdir(parents=True, exist_ok=True)
    files.move_picture(destination, source, entry.content_hash)
    return None


def _remove_made(entry: Entry) -> str | None:
    """Remove a copy or link the run made, only if it is still what the run made."""
    destination = Path(entry.destination)
    if entry.action == "link" and destination.is_symlink():
        destination.unlink()
    elif entry.action == "copy" and destination.is_file():
        if not files.is_intact(destination, entry.content_hash):
            return f"{destination} changed since the run; kept"
        destination.unlink()
    return None


def undo_run(run_dir: Path) -> dict:
    """Undo a sort run: moved and trashed pictures go back (hash-checked), copies and links are removed.

    Rows a killed or stopped run left `planned` are undone from what is on disk; rows an earlier undo
    could not put back are tried again; trashed pictures that were purged are reported. Files are put
    back first and the journal written after, in one transaction, so an undo works on a full disk.

    Returns:
        {"restored": n, "removed_copies": n, "purged": n, "problems": [(source, reason), ...]}
    Raises:
        NotARun: run_dir is not a sort run.
    """
    restored, removed, problems, undone, failed = 0, 0, [], [], {}
    with open_run(run_dir) as journal:
        for entry in list(journal.entries(("planned", "done", "undo_failed"))):
            if entry.action == "none":
                continue
            moved_back = entry.action in ("move", "trash")
            try:
                files.partial_path(Path(entry.destination)).unlink(missing_ok=True)
                problem = _restore(entry) if moved_back else _remove_made(entry)
            except OSError as error:
                problem = str(error)
            if problem:
                problems.append((entry.source, problem))
                failed[entry.item_id] = problem
                continue
            restored += moved_back
            removed += not moved_back
            undone.append(entry.item_id)
        try:
            journal.mark(undone, "undone")
            journal.mark(list(failed), "undo_failed", failed)
        except sqlite3.OperationalError as error:  # e.g. still no space: the files are back all the same
            problems.append((str(journal.path), f"the journal could not record the undo ({error}); the same "
                                                f"undo, run again, finds nothing left to do and records it"))
        purged = list(journal.entries("purged"))
    problems += [(entry.source, f"{entry.destination} was purged (deleted for good by `mona purge`); "
                                f"cannot restore") for entry in purged]
    return {"restored": restored, "removed_copies": removed, "purged": len(purged), "problems": problems}


def purge_run(run_dir: Path) -> dict:
    """Delete a run's trash for good: only what the journal says is done and in the trash. The only code
    path that removes a picture permanently.

    Raises:
        NotARun: run_dir is not a sort run.
    """
    removed, problems = [], []
    with open_run(run_dir) as journal:
        for entry in list(journal.entries("done")):
            if entry.action != "trash":
                continue
            path = Path(entry.destination)
            try:
                path.unlink(missing_ok=True)
                removed.append(entry.item_id)
            except OSError as error:
                problems.append((str(path), str(error)))
        journal.mark(removed, "purged")
    return {"purged": len(removed), "problems": problems}
