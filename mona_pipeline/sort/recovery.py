"""After a sort: finish what a killed run left half done, undo a run, purge a run's trash.

    mona undo ~/sorted/runs/<run>            # put every moved or trashed picture back
    mona purge ~/sorted/runs/<run> --yes     # empty the run's trash for good

Each acts on the journal's rows and checks every file against the hash the run
recorded (`files.is_intact`) before touching it: nothing that changed since the
run, and nothing the run did not write, is removed.
"""

from __future__ import annotations

from pathlib import Path

from mona_pipeline.sort import files
from mona_pipeline.sort.journal import JOURNAL_NAME, Entry, Journal


def recover(journal: Journal) -> int:
    """Finish or roll back file operations a killed run left `planned`. Returns how many were found."""
    found = 0
    for entry in list(journal.entries("planned")):
        found += 1
        destination = Path(entry.destination) if entry.destination else None
        source = Path(entry.source)
        if destination is not None:
            files.partial_path(destination).unlink(missing_ok=True)
        if entry.action in ("move", "trash"):
            arrived = files.is_intact(destination, entry.content_hash)
            if arrived and files.is_intact(source, entry.content_hash):
                source.unlink()  # the verified copy is in place; finish the move
            if arrived:
                journal.mark([entry.item_id], "done")
            elif source.exists():
                journal.forget(entry.item_id)  # nothing happened yet: sort it again
            else:
                journal.mark([entry.item_id], "missing", {entry.item_id: "neither the source nor the destination exists"})
        else:  # copy / link: the destination is complete or absent
            complete = destination is not None and (
                destination.is_symlink() if entry.action == "link" else files.is_intact(destination, entry.content_hash))
            if complete:
                journal.mark([entry.item_id], "done")
            else:
                journal.forget(entry.item_id)
    return found


def _restore(entry: Entry) -> str | None:
    """Put one moved or trashed picture back; returns a problem, or None when restored."""
    destination, source = Path(entry.destination), Path(entry.source)
    if not destination.is_file():
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

    Returns:
        {"restored": n, "removed_copies": n, "problems": [(source, reason), ...]}
    """
    journal_path = run_dir / JOURNAL_NAME
    if not journal_path.is_file():
        raise FileNotFoundError(f"no journal at {journal_path}: is {run_dir} a sort run folder?")
    restored, removed, problems = 0, 0, []
    with Journal(journal_path) as journal:
        for entry in list(journal.entries("done")):
            if entry.action == "none":
                continue
            moved_back = entry.action in ("move", "trash")
            try:
                problem = _restore(entry) if moved_back else _remove_made(entry)
            except OSError as error:
                problem = str(error)
            if problem:
                problems.append((entry.source, problem))
                journal.mark([entry.item_id], "undo_failed", {entry.item_id: problem})
                continue
            restored += moved_back
            removed += not moved_back
            journal.mark([entry.item_id], "undone")
    return {"restored": restored, "removed_copies": removed, "problems": problems}


def purge_run(run_dir: Path) -> dict:
    """Delete a run's trash for good. The only code path that removes a picture permanently."""
    removed, problems = 0, []
    with Journal(run_dir / JOURNAL_NAME) as journal:
        for entry in list(journal.entries("done")):
            if entry.action != "trash":
                continue
            path = Path(entry.destination)
            try:
                path.unlink()
                removed += 1
                journal.mark([entry.item_id], "purged")
            except OSError as error:
                problems.append((str(path), str(error)))
    return {"purged": removed, "problems": problems}
