"""check: a project's set-up looked over in seconds, before `dvc repro` spends an hour on it.

    mona check                  # params, pictures per tag / class / stage, the test set, the plan, the compute
    python -m flows.ingest      # dvc repro's first stage runs the same checks first (not the plan or the compute)

It validates `params.yaml` (load_params), counts the files of every tag folder under
`data.raw_dir` and the pictures of every class of every stage, and flags what would
make a run fail or mislead: a folder a stage names that is missing or empty, a class
below `data.min_class_pictures`, folders no stage uses, a test set whose labels are for
another character (or no test set), and pictures that are both training and test
pictures. An error stops; a warning is said and the run goes on; a note is advice
(`mona check` shows it, the stage does not).
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from mona_pipeline.config import REJECTED_SUFFIX, WILDCARD, Params, rejected_tag
from mona_pipeline.errors import UserError
from mona_pipeline.evaluate.labels import LABELS_NAME, LabelsError, read_label_rows, shows_target
from mona_pipeline.ingest import list_files

logger = logging.getLogger(__name__)

# Below this a class trains, with a warning: the numbers then move a lot with the seed.
FEW_CLASS_PICTURES = 50
# The target class wants this many: the validation split then holds about 40 of them, enough to choose the
# epoch and fit the temperature the threshold P relies on (fewer: P = 0.95 is a guess near the top).
TARGET_PICTURES = 200


@dataclass(frozen=True)
class Finding:
    level: str  # "error" (the run stops), "warning" (it goes on) or "note" (advice, `mona check` only)
    where: str  # what it is about: a folder, a params key, a file
    message: str  # what is wrong and what to do


@dataclass
class CheckReport:
    """What `check_project` found: the counts, and the findings."""

    tags: dict[str, int]  # files per tag folder under data.raw_dir
    classes: dict[str, dict[str, int]]  # stage -> class -> files
    test_pictures: int | None = None  # labelled test pictures, None: no test set
    test_targets: int | None = None
    findings: list[Finding] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [finding for finding in self.findings if finding.level == "error"]

    def error(self, where: str, message: str) -> None:
        self.findings.append(Finding("error", where, message))

    def warn(self, where: str, message: str) -> None:
        self.findings.append(Finding("warning", where, message))

    def note(self, where: str, message: str) -> None:
        self.findings.append(Finding("note", where, message))


def count_tags(raw_dir: Path) -> tuple[dict[str, int], int]:
    """Files per tag folder (recursive, hidden ones left out, as ingest walks them), and the loose files
    directly in raw_dir (ingest rejects those: they have no tag)."""
    tags = {folder.name: 0 for folder in sorted(raw_dir.iterdir()) if folder.is_dir() and not folder.name.startswith(".")}
    loose = 0
    for path in list_files(raw_dir):
        parts = path.relative_to(raw_dir).parts
        if len(parts) == 1:
            loose += 1
        else:
            tags[parts[0]] = tags.get(parts[0], 0) + 1
    return tags, loose


def check_project(params: Params) -> CheckReport:
    """Look the project over: its pictures, its stages' classes, its test set. Reads only, writes nothing."""
    raw = params.data.raw_dir
    if not raw.is_dir():
        report = CheckReport({}, {})
        report.error(str(raw), f"no raw data folder at {raw.absolute()}: make one folder per character tag in it "
                               f"(docs/retarget.md), or run `mona demo-data`")
        return report
    tags, loose = count_tags(raw)
    report = CheckReport(tags, {})
    if loose:
        report.warn(str(raw), f"{loose} files lie directly in {raw}, not in a tag folder: ingest rejects them "
                              f"(put them in {raw}/<tag>/)")
    check_demo_left_over(params, report)
    check_stages(params, report)
    check_test_set(params, report)
    return report


def check_demo_left_over(params: Params, report: CheckReport) -> None:
    """A retarget that kept the demo's folders: with `"*"` they would train as the new target's others."""
    from mona_pipeline.demo import DEMO_MARKER, demo_tags

    demo = sorted(set(report.tags) & demo_tags())
    if (params.data.raw_dir / DEMO_MARKER).is_file() and demo and params.target not in demo_tags():
        report.warn(str(params.data.raw_dir), f"still holds the demo's folders ({', '.join(demo)}) beside "
                                              f"{params.target!r}: remove them (and {DEMO_MARKER}), or they train "
                                              f"as whatever stage lists them or takes them through '*'")


def check_stages(params: Params, report: CheckReport) -> None:
    """Each stage's classes: their folders exist and hold enough pictures; folders no stage uses are said."""
    used: set[str] = set()
    through_wildcard: dict[str, str] = {}  # tag -> the class that takes it only because of "*"
    for stage_name, stage in params.stages.items():
        named = {tag for tags in stage.classes.values() for tag in tags if tag != WILDCARD}
        report.classes[stage_name] = {}
        for class_name, tags in stage.classes.items():
            members = sorted(tag for tag in set(report.tags) - named if not tag.endswith(REJECTED_SUFFIX)) \
                if WILDCARD in tags else tags
            used.update(named)
            if WILDCARD in tags:
                through_wildcard.update({tag: f"stages.{stage_name}.classes.{class_name}" for tag in members})
            for tag in members:
                where = f"{params.data.raw_dir}/{tag}"
                if tag not in report.tags:
                    report.error(where, f"stages.{stage_name}.classes.{class_name} lists {tag!r}, but there is no "
                                        f"folder {Path(where).absolute()}: make it, or take {tag!r} out of the list")
                elif report.tags[tag] == 0:
                    report.error(where, f"folder {tag!r} (stages.{stage_name}.classes.{class_name}) is empty")
            count = sum(report.tags.get(tag, 0) for tag in members)
            report.classes[stage_name][class_name] = count
            check_class_size(report, params.data.min_class_pictures, f"stages.{stage_name}.classes.{class_name}",
                             count, who=params.target if stage_name == "target" and class_name == params.target else None)
    for name, character in params.characters.items():  # more characters: the target stage's pictures, relabelled
        for tag in character.tags:
            if tag not in report.tags:
                report.error(f"{params.data.raw_dir}/{tag}", f"characters.{name}.tags lists {tag!r}, but there is no "
                                                             f"folder {(params.data.raw_dir / tag).absolute()}")
        check_class_size(report, params.data.min_class_pictures, f"characters.{name}",
                         sum(report.tags.get(tag, 0) for tag in character.tags), who=name)
    rejected = rejected_tag(params.target)
    if rejected in report.tags:  # the user's false alarms, added by `mona learn`: the target stage's negatives
        used.add(rejected)
        report.note(f"{params.data.raw_dir}/{rejected}", f"{report.tags[rejected]} pictures rejected in reviews "
                                                         f"(mona learn): stages.target trains them as "
                                                         f"{params.stages.target.class_names[1]!r}")
        report.classes["target"][params.stages.target.class_names[1]] += report.tags[rejected]
    for tag in sorted(set(report.tags) - used):
        where = f"{params.data.raw_dir}/{tag}"
        if tag in through_wildcard:
            report.note(where, f"folder {tag!r} is named by no stage: only {through_wildcard[tag]} takes it, "
                               f"through '*'")
        else:
            report.warn(where, f"folder {tag!r} ({report.tags[tag]} files) is used by no stage: its pictures "
                               f"are ignored (name it in a stage's classes)")


def check_class_size(report: CheckReport, minimum: int, where: str, count: int, who: str | None) -> None:
    """An error below the minimum; for a character to find (`who`: the target, or one of params.characters) a
    note below TARGET_PICTURES; else a warning below FEW_CLASS_PICTURES."""
    if count < minimum:
        report.error(where, f"{count} pictures; a class needs at least {minimum} (data.min_class_pictures): "
                            f"its validation share is what chooses the epoch")
    elif who and count < TARGET_PICTURES:
        report.note(where, f"{count} pictures of {who}; {TARGET_PICTURES} or more give its validation split "
                           f"about 40, enough to choose the epoch and calibrate P (fewer: P is a rough guess)")
    elif count < FEW_CLASS_PICTURES:
        report.warn(where, f"{count} pictures; with fewer than {FEW_CLASS_PICTURES} the results move a lot "
                           f"with the seed")


def check_test_set(params: Params, report: CheckReport) -> None:
    """The labelled test set: there, readable, about this target, and sharing no picture with training."""
    labels = params.data.test_dir / LABELS_NAME
    if not params.data.test_dir.is_dir():
        report.error(str(params.data.test_dir), f"there is no folder {params.data.test_dir.absolute()}: dvc.yaml's "
                                                f"evaluate stage needs the folder to exist, and would fail after "
                                                f"the training; make it with a {LABELS_NAME} (docs/retarget.md), "
                                                f"or empty for no test set")
        return
    if not labels.is_file():
        report.warn(str(labels), f"no test set ({labels.absolute()} is missing): evaluate then reports the "
                                 f"validation split only, which also chose the epoch and P (docs/retarget.md "
                                 f"says how to write one)")
        return
    try:
        rows = read_label_rows(params.data.test_dir)
    except LabelsError as error:
        report.error(str(labels), str(error))
        return
    report.test_pictures = len(rows)
    report.test_targets = sum(map(shows_target, rows))
    missing = [row["path"] for row in rows if not (params.data.test_dir / row["path"]).is_file()]
    if missing:
        report.error(str(labels), f"{len(missing)} listed pictures are not there (first: "
                                  f"{params.data.test_dir / missing[0]})")
    if report.test_targets == 0:
        report.error(str(labels), f"no picture is labelled target = 1: precision and recall of {params.target!r} "
                                  f"cannot be measured")
    if "characters" in rows[0]:
        check_labels_name_target(params.target, rows, report, str(labels))
    check_shared_pictures(params, [params.data.test_dir / row["path"] for row in rows], report)


def check_labels_name_target(target: str, rows: list[dict], report: CheckReport, where: str) -> None:
    """With a `characters` column (who each picture shows, `;`-separated), target = 1 must mean `target`."""
    wrong = [row for row in rows if shows_target(row) != (target in row["characters"].split(";"))]
    if not wrong:
        return
    shown = Counter(name for row in rows if shows_target(row) for name in row["characters"].split(";"))
    likely = shown.most_common(1)[0][0] if shown else "?"
    report.error(where, f"its labels are not for {target!r}: {len(wrong)} of {len(rows)} rows disagree with the "
                        f"characters column (the pictures marked target = 1 mostly show {likely!r}); write labels "
                        f"for {target!r}, or remove the test set")


def check_shared_pictures(params: Params, test_paths: list[Path], report: CheckReport) -> None:
    """Byte-identical pictures in training and test make the test flatter the model. Files are hashed only
    where a size matches (near duplicates are ingest's job, within training)."""
    test_by_size = defaultdict(list)
    for path in test_paths:
        if path.is_file():
            test_by_size[path.stat().st_size].append(path)
    raw_by_hash = {}
    for path in list_files(params.data.raw_dir):
        if path.stat().st_size in test_by_size:
            raw_by_hash.setdefault(_hash(path), path)
    shared = [(path, raw_by_hash[digest]) for paths in test_by_size.values() for path in paths
              if (digest := _hash(path)) in raw_by_hash] if raw_by_hash else []
    if shared:
        test, raw = shared[0]
        report.error(str(params.data.test_dir), f"{len(shared)} test pictures are also training pictures (first: "
                                                f"{test} = {raw}): take them out of one of the two")


def _hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def render(report: CheckReport, params: Params) -> str:
    """The counts and the findings as tables a person can act on."""
    lines = ["| stage | class | tags | pictures |", "|---|---|---|---:|"]
    for stage_name, stage in params.stages.items():
        for class_name, tags in stage.classes.items():
            lines.append(f"| {stage_name} | {class_name} | {', '.join(tags)} | "
                         f"{report.classes.get(stage_name, {}).get(class_name, 0)} |")
    if report.test_pictures is not None:
        lines.append(f"\ntest set: {report.test_pictures} labelled pictures, {report.test_targets} of them "
                     f"{params.target!r} ({params.data.test_dir})")
    if report.findings:
        lines += ["", "| | where | what |", "|---|---|---|"]
        lines += [f"| {finding.level} | {finding.where} | {finding.message} |" for finding in report.findings]
    levels = Counter(finding.level for finding in report.findings)
    lines.append(f"\n{levels['error']} errors, {levels['warning']} warnings, {levels['note']} notes: "
                 + ("fix the errors before `dvc repro`" if levels["error"] else "ready for `dvc repro`"))
    return "\n".join(lines)


class SetupError(UserError):
    """The project's set-up has errors (`mona check` lists them): stopped before any stage's work."""


def check_before_ingest(params: Params) -> None:
    """dvc repro's first stage: the errors and warnings said first (notes are `mona check`'s), and a set-up
    with errors stopped before a picture is decoded.

    Raises:
        SetupError: with the table of what to fix.
    """
    report = check_project(params)
    report.findings = [finding for finding in report.findings if finding.level != "note"]
    if report.errors:
        raise SetupError("the project's set-up has errors; nothing was run (`mona check` shows this again):\n"
                         + render(report, params))
    for finding in report.findings:
        logger.warning("%s: %s", finding.where, finding.message)
