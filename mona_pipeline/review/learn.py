"""`mona learn OUT/runs/RUN`: a review's verdicts become training data for the next model.

    result = learn_run(run_dir, raw_dir=Path("data/raw"), target="mona")
    result.lines()                       # what was added, and the commands that retrain

Confirmed pictures go to data/raw/<target>/learned/<run>/ (the target, in every stage that names its tag);
rejected ones, the user's false alarms and look-alikes, to data/raw/<target>_rejected/learned/<run>/, a tag of
their own that the target stage and the baseline train as their second class ("others") and no other stage
reads (config.rejected_tag). Ingest keeps every learned picture, and its near duplicates, in the train split:
a picture a review judged (and counted in the audit's estimate) is never held-out evidence of the next model.

Each file is named by its content's hash, so learning twice copies nothing twice; a picture whose verdict
changed since the last learn moves to the other folder (learn removes only its own copies, hash-checked).
A hidden `.learned.json` in each run folder says where each picture came from and how the run scored it.
data/raw is DVC-tracked: `dvc add data/raw` records the new version and `dvc repro` retrains (`--retrain`).
"""

from __future__ import annotations

import json
import posixpath
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from mona_pipeline.config import LEARNED_FOLDER, rejected_tag
from mona_pipeline.images import file_hash
from mona_pipeline.review.pictures import PictureGone, PictureStore
from mona_pipeline.review.verdicts import current
from mona_pipeline.sort.journal import open_run
from mona_pipeline.sort.lock import hold_run

RECORD_NAME = ".learned.json"  # hidden: ingest skips it
def retrain_commands(raw_dir: Path) -> list[list[str]]:
    """What records the learned pictures in DVC and retrains: `dvc add <raw_dir>`, then `dvc repro`."""
    return [["dvc", "add", str(raw_dir)], ["dvc", "repro"]]


def retrain_text(raw_dir: Path) -> str:
    return " && ".join(shlex.join(command) for command in retrain_commands(raw_dir))


@dataclass
class LearnResult:
    target: str
    folders: dict[str, Path]  # yes | no -> where they went
    added: dict[str, int] = field(default_factory=lambda: {"yes": 0, "no": 0})
    already: int = 0  # there from an earlier learn
    moved: int = 0  # verdict changed since: moved to the other folder
    withdrawn: int = 0  # verdict taken back since: learn's copy removed
    other_targets: int = 0  # verdicts on another character's rows (a run with several models)
    problems: list[tuple[str, str]] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.added["yes"] or self.added["no"] or self.moved or self.withdrawn)

    def lines(self) -> list[str]:
        lines = [f"{self.added['yes']} pictures of {self.target} added to {self.folders['yes']}",
                 f"{self.added['no']} rejected pictures (hard negatives) added to {self.folders['no']}",
                 f"{self.already} already learned" + (f", {self.moved} moved (their verdict changed)" if self.moved
                                                      else "")
                 + (f", {self.withdrawn} removed (their verdict was taken back)" if self.withdrawn else "")]
        if self.other_targets:
            lines.append(f"{self.other_targets} verdicts on other characters' rows left out (learn them with "
                         f"--target and that character's project)")
        lines += [f"not learned: {where}: {why}" for where, why in self.problems]
        return lines


def learned_name(content: str, name: str) -> str:
    """A learned picture's file name: its content hash and its own extension (the same picture, the same name)."""
    return content[:24] + (posixpath.splitext(name)[1].lower() or ".img")


def learn_run(run_dir: Path, raw_dir: Path, target: str) -> LearnResult:
    """Copy a run's judged pictures of `target` into raw_dir as learned training data (see the module).

    Raises:
        NotARun: run_dir is not a sort run.
        RunBusy: another process works on the run.
    """
    run_dir = run_dir.absolute()
    folders = {"yes": raw_dir / target / LEARNED_FOLDER / run_dir.name,
               "no": raw_dir / rejected_tag(target) / LEARNED_FOLDER / run_dir.name}
    result = LearnResult(target, folders)
    with open_run(run_dir) as journal, hold_run(run_dir, "learn"):
        run_target = journal.info().get("target") or target
        store = PictureStore(run_dir, journal)
        records = {verdict: _read_record(folder) for verdict, folder in folders.items()}
        seen: dict[str, set[str]] = {"yes": set(), "no": set()}
        for item_id, verdict in sorted(current(journal).items()):
            entry = journal.get(item_id)
            if entry is None or not entry.content_hash:
                continue
            if (entry.target or run_target) != target:
                result.other_targets += 1
                continue
            name = learned_name(entry.content_hash, entry.name)
            here, other = folders[verdict] / name, folders["no" if verdict == "yes" else "yes"] / name
            if other.is_file() and file_hash(other) == entry.content_hash:  # judged otherwise before: it moves
                here.parent.mkdir(parents=True, exist_ok=True)
                other.replace(here)
                records[verdict][name] = records["no" if verdict == "yes" else "yes"].pop(name, {})
                result.moved += 1
            elif here.is_file() and file_hash(here) == entry.content_hash:
                result.already += 1
            else:
                try:
                    data = store.read(item_id)
                except PictureGone as error:
                    result.problems.append((entry.source, str(error)))
                    continue
                here.parent.mkdir(parents=True, exist_ok=True)
                temporary = here.with_name(f".{name}.partial")
                temporary.write_bytes(data)
                temporary.replace(here)
                result.added[verdict] += 1
            seen[verdict].add(name)
            records[verdict][name] = {"source": entry.source, "score": entry.score, "decision": entry.decision,
                                      "verdict": verdict, "run": run_dir.name}
        for verdict, folder in folders.items():  # verdicts taken back since an earlier learn: their copies go
            for name in sorted(set(records[verdict]) - seen[verdict]):
                (folder / name).unlink(missing_ok=True)  # learn's own copy, named by the picture's hash
                del records[verdict][name]
                result.withdrawn += 1
            if records[verdict] or (folder / RECORD_NAME).is_file():
                folder.mkdir(parents=True, exist_ok=True)
                (folder / RECORD_NAME).write_text(json.dumps(records[verdict], indent=1, sort_keys=True))
    return result


def _read_record(folder: Path) -> dict:
    try:
        return json.loads((folder / RECORD_NAME).read_text())
    except (OSError, ValueError):
        return {}
