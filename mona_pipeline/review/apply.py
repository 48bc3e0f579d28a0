"""Apply a review's verdicts to the files: the run's folders come to say what the user said.

    result = apply_verdicts(run_dir)      # under the run's lock; `mona undo` reverses it with the rest

For a run whose action put pictures into OUT (copy, move, link), each judged picture goes where its verdict
says, and one whose verdict was taken back goes back where the sort put it:
- she is there: into keep/[<target>/] (from review/, or from review/rejected/ after a change of mind). A
  dropped picture she is in is fetched from its source with the run's own action, when the source is a local
  file (a member of an archive is left, and said);
- she is not: out of keep/ (or review/) into review/rejected/[<target>/];
- no verdict (taken back): into the sort's own folder; a picture fetched for a verdict taken back is returned
  (its copy or link removed, a moved one put back at its source).
For a run with action delete, a dropped picture she is in comes back from the run's trash to its source; a kept
picture she is not in stays where it is: applying never deletes. A run with action none made no files: nothing.

Every file operation is planned in the journal (table `applied`) before it happens, done with the sort's own
operations (files.choose_destination, files.move_picture, files.perform), and recorded in one transaction with
the entry's new destination and action after, so `mona undo` reverses it with the rest of the run, and an apply
killed at any instant is finished or rolled back by the next apply or undo (`settle_applied`). Nothing in the
source is touched unless the run's action already did.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from mona_pipeline.images import content_hash
from mona_pipeline.review.verdicts import current
from mona_pipeline.sort import files
from mona_pipeline.sort.journal import Entry, Journal, from_column, open_run, to_column
from mona_pipeline.sort.lock import hold_run
from mona_pipeline.sort.recovery import Relocation, remove_made, restore_picture

REJECTED_FOLDER = "rejected"  # review/rejected/[<target>/]: the pictures a review said are not the target


@dataclass
class ApplyResult:
    to_keep: int = 0  # moved into keep/ (from review/ or review/rejected/)
    to_rejected: int = 0  # moved into review/rejected/
    to_sorted: int = 0  # moved back into the sort's own folder (a verdict taken back)
    fetched: int = 0  # dropped pictures brought into keep/ from the source
    returned: int = 0  # back at the source (from the trash, or a fetch taken back)
    unchanged: int = 0  # judged, already where the verdict says
    left: list[str] = field(default_factory=list)  # what apply would not do, and why
    problems: list[tuple[str, str]] = field(default_factory=list)  # (picture, what failed)

    @property
    def changed(self) -> int:
        return self.to_keep + self.to_rejected + self.to_sorted + self.fetched + self.returned

    def lines(self) -> list[str]:
        said = [f"{self.to_keep} into keep/", f"{self.to_rejected} into review/{REJECTED_FOLDER}/",
                f"{self.to_sorted} back to the sort's folders", f"{self.fetched} fetched from the source into keep/",
                f"{self.returned} put back at the source", f"{self.unchanged} already in place"]
        return [", ".join(said)] + self.left + [f"{where}: {why}" for where, why in self.problems]


@dataclass(frozen=True)
class Operation:
    entry: Entry
    operation: str  # relocate | fetch | return
    from_path: Path | None
    placement: str | None  # the folder under OUT it goes to (None: out of OUT)
    taken_back: bool = False  # its verdict was taken back: it goes back where the sort put it


def placement_of(journal: Journal, entry: Entry) -> str | None:
    """The folder under OUT a row's picture is in: the last applied one, else the sort's (None: not in OUT)."""
    with journal.lock:
        last = journal.connection.execute(
            "SELECT placement FROM applied WHERE item_id = ? AND status = 'done' ORDER BY seq DESC LIMIT 1",
            (to_column(entry.item_id),)).fetchone()
    if last is not None:
        return from_column(last[0])
    if entry.action in ("copy", "move", "link") and entry.status == "done" and entry.destination:
        return sorted_folder(entry.decision, entry.target)
    return None


def sorted_folder(decision: str, target: str | None) -> str:
    return "/".join(part for part in (decision, target) if part)


def wanted_placement(entry: Entry, verdict: str | None) -> str | None:
    """Where a copy/move/link run's picture belongs under OUT with this verdict (None: not in OUT)."""
    if verdict == "yes":
        return sorted_folder("keep", entry.target)
    if verdict == "no":
        return "/".join(part for part in ("review", REJECTED_FOLDER, entry.target) if part)
    return sorted_folder(entry.decision, entry.target) if entry.decision in ("keep", "review") else None


def plan_operations(journal: Journal, run_action: str, result: ApplyResult) -> list[Operation]:
    """The file operations that make the folders match the verdicts (see the module)."""
    verdicts = current(journal)
    with journal.lock:
        touched = {from_column(row[0]) for row in journal.connection.execute("SELECT DISTINCT item_id FROM applied")}
    operations, archived, kept_in_source = [], 0, 0
    for item_id in sorted(set(verdicts) | touched):
        entry = journal.get(item_id)
        if entry is None or entry.status != "done" or entry.decision not in ("keep", "review", "drop"):
            continue
        verdict = verdicts.get(item_id)
        if run_action == "delete":
            if entry.action == "trash" and verdict == "yes":
                operations.append(Operation(entry, "return", Path(entry.destination), None))
            elif entry.decision == "keep" and verdict == "no":
                kept_in_source += 1
            else:
                result.unchanged += verdict is not None
            continue
        here, wanted = placement_of(journal, entry), wanted_placement(entry, verdict)
        if here == wanted or (here is None and verdict != "yes"):  # a dropped picture she is not in: no file
            result.unchanged += verdict is not None
        elif here is None and entry.action == "none" and entry.destination:
            result.left.append(f"{entry.source}: already in OUT from an earlier run ({entry.destination}); left")
        elif here is None:  # a dropped picture she is in: fetch it, if the source is a local file
            if Path(entry.source).is_file():
                operations.append(Operation(entry, "fetch", Path(entry.source), wanted))
            else:
                archived += 1
        elif wanted is None:  # fetched earlier, its verdict since taken back
            operations.append(Operation(entry, "return", Path(entry.destination), None))
        else:
            operations.append(Operation(entry, "relocate", Path(entry.destination), wanted, verdict is None))
    if archived:
        result.left.append(f"{archived} dropped pictures she is in are inside an archive or a remote folder: not "
                           f"fetched (extract them, or sort again with a lower confidence)")
    if kept_in_source:
        result.left.append(f"{kept_in_source} kept pictures she is not in stay in the source: applying never "
                           f"deletes (sort them again, or remove them yourself)")
    return operations


def apply_verdicts(run_dir: Path) -> ApplyResult:
    """Make a run's folders match its verdicts, under the run's lock (see the module).

    Raises:
        NotARun: run_dir is not a sort run.
        RunBusy: another process works on the run (a sort, an undo, another apply).
    """
    result = ApplyResult()
    with open_run(run_dir) as journal, hold_run(run_dir, "apply"):
        settle_applied(journal, run_dir)
        run_action = journal.info().get("action", "none")
        if run_action == "none":
            result.left.append("the run's action was none: it made no files, so there is nothing to move "
                               "(`mona learn` still learns from the verdicts)")
            return result
        out, relocate = run_dir.resolve().parent.parent, Relocation(journal, run_dir)
        for operation in plan_operations(journal, run_action, result):
            try:
                _perform(journal, operation, out, relocate, run_action, result)
            except OSError as error:
                result.problems.append((operation.entry.source, f"{operation.operation} failed: {error}"))
    return result


def _perform(journal: Journal, operation: Operation, out: Path, relocate: Relocation, run_action: str,
             result: ApplyResult) -> None:
    entry = operation.entry
    if operation.operation == "return":
        current_path = relocate(operation.from_path)
        seq = _plan(journal, entry, "return", current_path, Path(entry.source), "none", None)
        problem = _return(entry, current_path)
        if problem:
            _forget(journal, seq)
            result.problems.append((entry.source, problem))
            return
        _finish(journal, seq, entry.item_id, "none", None)
        result.returned += 1
        return
    folder = out / operation.placement
    link_to = Path(entry.source) if entry.action == "link" or (operation.operation == "fetch" and run_action == "link") \
        else None
    destination, already = files.choose_destination(folder, PurePosixPath(entry.name), entry.content_hash,
                                                    link_to=link_to)
    if operation.operation == "fetch":
        if already:  # an earlier run's identical picture is there: never this run's to undo
            result.left.append(f"{entry.source}: the identical picture is already in {folder}; not fetched")
            return
        seq = _plan(journal, entry, "fetch", Path(entry.source), destination, run_action, operation.placement)
        data = Path(entry.source).read_bytes()
        if content_hash(data) != entry.content_hash:
            _forget(journal, seq)
            result.problems.append((entry.source, "changed since it was scored; not fetched"))
            return
        action = files.perform(run_action, destination, data, Path(entry.source), entry.content_hash)
        _finish(journal, seq, entry.item_id, action, destination)
        result.fetched += 1
        return
    source = relocate(operation.from_path)
    if already:  # the identical picture is there already (an earlier run's): this row's own stays where it is
        result.left.append(f"{entry.source}: the identical picture is already in {folder}; left in {source.parent}")
        return
    seq = _plan(journal, entry, "relocate", source, destination, entry.action, operation.placement)
    problem = None
    if entry.action == "link":
        if not source.is_symlink():
            problem = f"{source} is not the link the run made; left"
        else:
            destination.parent.mkdir(parents=True, exist_ok=True)
            os.rename(source, destination)
    else:
        files.move_picture(source, destination, entry.content_hash)
    if problem:
        _forget(journal, seq)
        result.problems.append((entry.source, problem))
        return
    _finish(journal, seq, entry.item_id, entry.action, destination)
    if operation.taken_back:
        result.to_sorted += 1
    elif operation.placement.startswith("keep"):
        result.to_keep += 1
    elif operation.placement.startswith(f"review/{REJECTED_FOLDER}"):
        result.to_rejected += 1
    else:
        result.to_sorted += 1


def _return(entry: Entry, path: Path) -> str | None:
    """Take a fetched or trashed picture out of OUT: a moved or trashed one back to its source (hash-checked),
    a copy or link removed (only if it is still what the run made)."""
    if entry.action in ("move", "trash"):
        return restore_picture(entry, path)
    return remove_made(entry, path)


def _plan(journal: Journal, entry: Entry, operation: str, from_path: Path | None, to_path: Path | None,
          action: str, placement: str | None) -> int:
    with journal.lock, journal.connection:
        cursor = journal.connection.execute(
            "INSERT INTO applied (item_id, operation, from_path, to_path, action, placement, status, time) "
            "VALUES (?, ?, ?, ?, ?, ?, 'planned', ?)",
            (to_column(entry.item_id), operation, to_column(str(from_path) if from_path else None),
             to_column(str(to_path) if to_path else None), action, placement, time.time()))
        return cursor.lastrowid


def _finish(journal: Journal, seq: int, item_id: str, action: str, destination: Path | None) -> None:
    """The entry's new action and destination, and the operation done, in one transaction."""
    with journal.lock, journal.connection:
        journal.connection.execute("UPDATE entries SET action = ?, destination = ?, time = ? WHERE item_id = ?",
                                   (action, to_column(str(destination)) if destination else None, time.time(),
                                    to_column(item_id)))
        journal.connection.execute("UPDATE applied SET status = 'done', to_path = ?, time = ? WHERE seq = ?",
                                   (to_column(str(destination)) if destination else None, time.time(), seq))


def _forget(journal: Journal, seq: int) -> None:
    with journal.lock, journal.connection:
        journal.connection.execute("DELETE FROM applied WHERE seq = ?", (seq,))


def settle_applied(journal: Journal, run_dir: Path) -> int:
    """Finish or roll back what an apply killed half way left planned (called by apply and by undo).
    Returns how many were found."""
    with journal.lock:
        planned = journal.connection.execute("SELECT * FROM applied WHERE status = 'planned' ORDER BY seq").fetchall()
    relocate = Relocation(journal, run_dir)
    for row in planned:
        entry = journal.get(from_column(row["item_id"]))
        to_path = Path(from_column(row["to_path"])) if row["to_path"] else None
        from_path = Path(from_column(row["from_path"])) if row["from_path"] else None
        if entry is None:
            _forget(journal, row["seq"])
            continue
        if to_path is not None:
            files.partial_path(to_path).unlink(missing_ok=True)
        if row["operation"] == "return":  # idempotent: done again, it finds what is already back
            problem = _return(entry, relocate(from_path))
            if problem is None:
                _finish(journal, row["seq"], entry.item_id, "none", None)
            else:
                _forget(journal, row["seq"])
            continue
        arrived = to_path is not None and (to_path.is_symlink() if row["action"] == "link"
                                           else files.is_intact(to_path, entry.content_hash))
        if arrived and row["operation"] == "fetch" and row["action"] == "move" and from_path is not None \
                and files.is_intact(from_path, entry.content_hash):
            from_path.unlink()  # a verified copy across file systems is in place: finish the move
        if arrived:
            _finish(journal, row["seq"], entry.item_id, row["action"], to_path)
        else:
            _forget(journal, row["seq"])
    return len(planned)
