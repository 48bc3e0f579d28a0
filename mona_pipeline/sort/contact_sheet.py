"""The contact sheet of a sort run: thumbnails of kept, review and dropped pictures with scores, as the
run's HTML page (report.html) and as the Markdown of its Prefect summary artifact.

A fixed-size random sample per decision (reservoir sampling), so a run over a
million pictures makes a page of a few hundred thumbnails. A thumbnail is the
picture as the model saw it (already decoded and squashed to the model's square
input), so the report costs no second decode and archives need no second pass;
the page shows it at the picture's own aspect ratio.
"""

from __future__ import annotations

import base64
import html
import io
import random
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from mona_pipeline.drawing import draw_box
from mona_pipeline.markdown import markdown_table
from mona_pipeline.sort.decisions import DECISIONS
from mona_pipeline.sort.journal import Entry
from mona_pipeline.sort.results import SortSummary

THUMBNAIL_SIDE = 160


@dataclass
class Sample:
    name: str
    source: str
    score: float
    destination: str | None
    thumbnail: str  # file name under the thumbs folder
    size: tuple[int, int] | None = None  # the picture's real width and height
    box: str | None = None  # the tile that gave the score (drawn on the thumbnail); None = the whole picture


class ContactSheet:
    """Keeps up to `per_decision` random pictures of each decision, with thumbnails, for the run's page."""

    def __init__(self, thumbs_dir: Path, per_decision: int = 48, seed: int = 0):
        self.thumbs_dir, self.per_decision = thumbs_dir, per_decision
        self.random = random.Random(seed)
        self.seen: dict[str, int] = {}
        self.samples: dict[str, list[Sample]] = {}

    def offer(self, entry: Entry, seen_image: np.ndarray | None,
              size_of: Callable[[], tuple[int, int] | None] = lambda: None) -> None:
        """Consider a picture for the report.

        Args:
            seen_image: (S, S, 3) float in [0, 255], the model's input for it.
            size_of: gives its real (width, height), asked only if the picture is sampled.
        """
        decision = entry.decision
        seen = self.seen[decision] = self.seen.get(decision, 0) + 1
        chosen = self.samples.setdefault(decision, [])
        slot = len(chosen) if len(chosen) < self.per_decision else self.random.randrange(seen)
        if slot >= self.per_decision or seen_image is None:
            return
        self.thumbs_dir.mkdir(parents=True, exist_ok=True)
        thumbnail = f"{entry.content_hash[:20]}.jpg"
        picture = Image.fromarray(np.clip(seen_image, 0, 255).astype(np.uint8))
        if entry.box:  # the thumbnail is the whole picture squashed: the box's fractions map straight onto it
            draw_box(picture, entry.box)
        picture.save(self.thumbs_dir / thumbnail, "JPEG", quality=85)
        sample = Sample(entry.name, entry.source, entry.score or 0.0, entry.destination, thumbnail, size_of(),
                        entry.box)
        if slot < len(chosen):
            chosen[slot] = sample
        else:
            chosen.append(sample)

    def for_chunk(self, first_item_id: str) -> "ContactSheet":
        """A sheet for one chunk of a distributed run (same folder, its own random stream); see `merge`."""
        return ContactSheet(self.thumbs_dir, self.per_decision, seed=zlib.crc32(first_item_id.encode()))

    def merge(self, chunk_samples: list[dict[str, list[Sample]]]) -> None:
        """Pool the samples of a run's chunks, keeping a random `per_decision` of each decision."""
        for decision in ("keep", "review", "drop"):
            pooled = [s for samples in chunk_samples for s in samples.get(decision, [])]
            self.samples[decision] = self.random.sample(pooled, min(len(pooled), self.per_decision))


PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>mona sort: {title}</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; background: #fafafa; }}
h2 {{ border-bottom: 2px solid #ccc; }}
.grid {{ display: flex; flex-wrap: wrap; gap: 10px; }}
figure {{ margin: 0; width: 170px; background: white; padding: 4px; box-shadow: 0 1px 3px #aaa; }}
figure img {{ display: block; margin: auto; }}
figcaption {{ font-size: 11px; word-break: break-all; }}
.score {{ font-weight: bold; }}
.keep .score {{ color: #1a7f37; }} .review .score {{ color: #b08800; }} .drop .score {{ color: #a40e26; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ccc; padding: 3px 8px; }}
</style></head><body>
<h1>Sort of {title}</h1>
<p>Action <b>{action}</b>, keep when score &ge; <b>{confidence}</b>{band}. Model: {model}.</p>
<table><tr>{count_headers}</tr><tr>{count_cells}</tr></table>
{targets}
{sections}
{errors}
</body></html>
"""


def _shape(size: tuple[int, int] | None) -> str:
    """CSS that shows a square model-input thumbnail at the picture's own aspect ratio."""
    if not size or not size[0] or not size[1]:
        return f"width:{THUMBNAIL_SIDE}px;height:{THUMBNAIL_SIDE}px"
    scale = THUMBNAIL_SIDE / max(size)
    return f"width:{max(1, round(size[0] * scale))}px;height:{max(1, round(size[1] * scale))}px"


def write_contact_sheet(path: Path, summary: SortSummary, sheet: ContactSheet) -> Path:
    """Write the run's HTML contact sheet next to its thumbs/ folder."""
    sections = []
    for decision in ("keep", "review", "drop"):
        samples = sorted(sheet.samples.get(decision, []), key=lambda s: -s.score)
        if not samples:
            continue
        total = summary.this_session.get(decision, 0)
        figures = "\n".join(
            f'<figure><img src="thumbs/{html.escape(s.thumbnail)}" alt="" style="{_shape(s.size)}">'
            f'<figcaption><span class="score">{s.score:.3f}</span> {html.escape(s.name)}'
            f'{" <i>found in the outlined tile</i>" if s.box else ""}</figcaption></figure>'
            for s in samples)
        sections.append(f'<h2>{decision} ({len(samples)} shown of {total} in this session)</h2>'
                        f'<div class="grid {decision}">{figures}</div>')
    errors = ""
    if summary.errors:
        rows = "".join(f"<tr><td>{html.escape(s)}</td><td>{html.escape(e)}</td></tr>" for s, e in summary.errors)
        errors = f"<h2>unreadable ({len(summary.errors)})</h2><table><tr><th>picture</th><th>reason</th></tr>{rows}</table>"
    not_done = not_done_lines(summary)
    if not_done:
        errors += "<h2>not sorted, and why</h2><ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in not_done)
        errors += "</ul>"
    band = f", review when score &ge; <b>{summary.review_from}</b>" if summary.review_from is not None else ""
    targets = ""
    if summary.targets:
        header, rows = target_table(summary)
        targets = ("<h2>per character</h2><table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header)
                   + "</tr>" + "".join("<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in row) + "</tr>"
                                       for row in rows) + "</table>")
    path.write_text(PAGE.format(targets=targets,
        title=html.escape(summary.source), action=summary.action, confidence=summary.confidence, band=band,
        model=html.escape(summary.model), count_headers="".join(f"<th>{k}</th>" for k in summary.counts),
        count_cells="".join(f"<td>{v}</td>" for v in summary.counts.values()), sections="\n".join(sections),
        errors=errors), errors="backslashreplace")  # a name that is not UTF-8 is shown with escapes, not refused
    return path


def target_table(summary: SortSummary) -> tuple[list[str], list[list]]:
    """A sort with several models: one row per character (its threshold, counts and folder), for the report,
    the Prefect summary and the CLI alike."""
    header = ["target", "P", *DECISIONS[:3], "kept in", "model"]
    return header, [[t.target, t.confidence, *(t.counts.get(d, 0) for d in DECISIONS[:3]), t.kept_dir, t.model]
                    for t in summary.targets]


def not_done_lines(summary: SortSummary) -> list[str]:
    """What the run walked past or left alone, with counts: skipped files and folders, pictures already there,
    pictures copied instead of moved (a read-only source). The report, the CLI and Prefect say the same."""
    lines = []
    if summary.skipped:
        reasons = ", ".join(f"{count} {reason}" for reason, count in summary.skipped.items())
        lines.append(f"skipped {sum(summary.skipped.values())} files or folders: {reasons}")
    lines += summary.notes
    if summary.already_there:
        left = ", left in the source" if summary.action == "move" else ""
        lines.append(f"{summary.already_there} pictures were already in {Path(summary.kept_dir).parent} (identical "
                     f"copies): nothing done for them{left}")
    if summary.copied_not_moved:
        lines.append(f"{summary.copied_not_moved} pictures are on a read-only source: copied, not moved (the "
                     f"source was left as it was)")
    return lines


THUMBNAILS_PER_DECISION = 6  # pictures shown in the Prefect summary artifact


def summary_markdown(summary: SortSummary, sheet: ContactSheet) -> str:
    """The run's summary as Markdown (the Prefect artifact): counts, where things are (paths as text to copy:
    the UI cannot open file:// links), what was not done, and a few thumbnails per decision."""
    counts = summary.counts
    report, journal = Path(summary.report).resolve(), Path(summary.journal).resolve()
    lines = [f"# Sort of `{summary.source}`",
             f"{summary.pictures} pictures: **{counts['keep']} keep**, {counts['review']} review, {counts['drop']} "
             f"drop, {counts['unreadable']} unreadable; action `{summary.action}`, confidence {summary.confidence}.",
             "", f"- kept: `{Path(summary.kept_dir).resolve()}`", f"- contact sheet: `{report}`",
             f"- journal: `{journal}` (`mona undo {journal.parent}` puts everything back)",
             f"- {summary.pictures_per_second} pictures/s; {summary.resumed_skipped} already done; "
             f"{summary.action_failures} file operations failed (pictures left in place)",
             f"- tiling `{summary.tiling.mode}`: {summary.found_in_tiles} kept or review pictures found in a tile "
             f"(outlined below)", *(f"- {line}" for line in not_done_lines(summary))]
    if summary.targets:
        lines += ["", "## Per character", markdown_table(*target_table(summary))]
    return "\n".join(lines) + "\n" + _thumbnails_markdown(sheet)


def _thumbnails_markdown(sheet: ContactSheet) -> str:
    """A few sampled pictures per decision as inline images, highest score first; drops are the near misses."""
    sections = []
    for decision, heading in (("keep", "Kept"), ("review", "For review"), ("drop", "Closest drops")):
        samples = sorted(sheet.samples.get(decision, []), key=lambda s: -s.score)[:THUMBNAILS_PER_DECISION]
        shown = [(sample, sheet.thumbs_dir / sample.thumbnail) for sample in samples]
        shown = [(sample, path) for sample, path in shown if path.is_file()]
        if not shown:
            continue
        # One table row of pictures under a row of names and scores: side by side, captioned.
        captions = " | ".join(f"`{sample.name.replace('|', '¦')}` {sample.score:.3f}"
                              + (f" (tile {sample.box})" if sample.box else "") for sample, _ in shown)
        images = " | ".join(f"![{sample.name}](data:image/jpeg;base64,{base64.b64encode(path.read_bytes()).decode()})"
                            for sample, path in shown)
        sections.append(f"\n## {heading}\n| {captions} |\n|{' --- |' * len(shown)}\n| {images} |\n")
    return "".join(sections)


def picture_size(data: bytes | None) -> tuple[int, int] | None:
    """(width, height) from the header alone; None if unknown."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except Exception:
        return None
