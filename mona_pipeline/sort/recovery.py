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
from mona_pipeline.sort.lock import hold_run
from mona_pipeline.sort.results import PurgeResult, UndoResult
from mona_pipeline.sort.stop import StopRequest


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


class Relocation:
    """Where a run's files are now, when OUT was moved or renamed as a whole after the run (`mv O O2`), or
    copied: destinations under the OUT the run recorded are looked for under the OUT the run folder is in now
    first."""

    def __init__(self, journal: Journal, run_dir: Path):
        recorded = journal.info().get("out_path")
        self.old = Path(recorded) if recorded else None
        self.new = run_dir.resolve().parent.parent  # OUT/runs/<run>

    def __call__(self, destination: Path) -> Path:
        """The file under the OUT the run folder is in now, where it is there; else the recorded one. So an
        undo of a copy of OUT (a backup) acts on that copy, never on the OUT it was copied from."""
        if self.old is None or self.old == self.new:
            return destination
        try:
            moved = self.new / destination.relative_to(self.old)
        except ValueError:  # not under the recorded OUT
            return destination
        return moved if moved.exists() or moved.is_symlink() else destination


def restore_picture(entry: Entry, destination: Path) -> str | None:
    """Put one moved or trashed picture back; returns a problem, or None when restored."""
    source = Path(entry.source)
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


def remove_made(entry: Entry, destination: Path) -> str | None:
    """Remove a copy or link the run made, only if it is still what the run made."""
    if entry.action == "link" and destination.is_symlink():
        destination.unlink()
    elif entry.action == "copy" and destination.is_file():
        if not files.is_intact(destination, entry.content_hash):
            return f"{destination} changed since the run; kept"
        destination.unlink()
    return None


def undo_run(run_dir: Path, stop: StopRequest | None = None) -> UndoResult:
    """Undo a sort run: moved and trashed pictures go back (hash-checked), copies and links are removed.

    Rows a killed or stopped run left `planned` are undone from what is on disk; rows an earlier undo
    could not put back are tried again; trashed pictures that were purged are reported. Files are put
    back first and the journal written after, in one transaction, so an undo works on a full disk.
    The run's lock is held throughout (a second process on the run is refused); OUT may have been moved
    as a whole since the run (`Relocation`).

    Args:
        stop: set by a signal: the undo stops between two pictures, records what it did, and raises.
    Returns:
        what was put back and removed, purged pictures, and the problems (picture, reason).
    Raises:
        NotARun: run_dir is not a sort run.
        RunBusy: another process works on the run.
        Interrupted: a signal stopped it; what was undone is recorded, the same undo finishes the rest.
    """
    stop = stop if stop is not None else StopRequest()
    restored, removed, problems, undone, failed = 0, 0, [], [], {}
    with open_run(run_dir) as journal, hold_run(run_dir, "undo"):
        from mona_pipeline.review.apply import settle_applied  # a review's apply killed half way, first

        settle_applied(journal, run_dir)
        relocate = Relocation(journal, run_dir)
        for entry in list(journal.entries(("planned", "done", "undo_failed"))):
            if stop.requested:
                break
            if entry.action == "none":
                continue
            moved_back = entry.action in ("move", "trash")
            destination = relocate(Path(entry.destination))
            try:
                files.partial_path(destination).unlink(missing_ok=True)
                problem = restore_picture(entry, destination) if moved_back else remove_made(entry, destination)
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
    stop.check(f"{restored} pictures restored and {removed} copies removed so far")
    problems += [(entry.source, f"{entry.destination} was purged (deleted for good by `mona purge`); "
                                f"cannot restore") for entry in purged]
    return UndoResult(restored, removed, len(purged), problems)


def purge_run(run_dir: Path) -> PurgeResult:
    """Delete a run's trash for good: only what the journal says is done and in the trash, and only a file
    that is still the picture the run put there (hash-checked). The only code path that removes a picture
    permanently. A trashed picture no longer there (taken back by hand) is counted apart, not as purged.

    Returns:
        how many were deleted, how many were no longer in the trash, and what was kept with why.
    Raises:
        NotARun: run_dir is not a sort run.
        RunBusy: another process works on the run.
    """
    removed, gone, problems = [], 0, []
    with open_run(run_dir) as journal, hold_run(run_dir, "purge"):
        relocate = Relocation(journal, run_dir)
        for entry in list(journal.entries("done")):
            if entry.action != "trash":
                continue
            path = relocate(Path(entry.destination))
            if not (path.exists() or path.is_symlink()):
                gone += 1
                continue
            if not files.is_intact(path, entry.content_hash):
                problems.append((str(path), "not the picture the run trashed (changed or replaced); kept"))
                continue
            try:
                path.unlink()
                removed.append(entry.item_id)
            except OSError as error:
                problems.append((str(path), str(error)))
        journal.mark(removed, "purged")
    return PurgeResult(len(removed), gone, problems)
