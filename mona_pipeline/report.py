"""The HTML contact sheet of a sort run: thumbnails of kept, review and dropped pictures with scores.

A fixed-size random sample per decision (reservoir sampling), so a run over a
million pictures makes a page of a few hundred thumbnails; each thumbnail is made
while the picture's bytes are in memory, so archives need no second pass.
"""

from __future__ import annotations

import html
import io
import random
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from mona_pipeline.journal import Entry

THUMBNAIL_SIDE = 160


@dataclass
class Sample:
    name: str
    source: str
    score: float
    destination: str | None
    thumbnail: str  # file name under the thumbs folder


class ReportSampler:
    """Keeps up to `per_decision` random pictures of each decision, with thumbnails."""

    def __init__(self, thumbs_dir: Path, per_decision: int = 48, seed: int = 0):
        self.thumbs_dir, self.per_decision = thumbs_dir, per_decision
        self.random = random.Random(seed)
        self.seen: dict[str, int] = {}
        self.samples: dict[str, list[Sample]] = {}

    def offer(self, entry: Entry, data: bytes | None) -> None:
        decision = entry.decision
        seen = self.seen[decision] = self.seen.get(decision, 0) + 1
        chosen = self.samples.setdefault(decision, [])
        slot = len(chosen) if len(chosen) < self.per_decision else self.random.randrange(seen)
        if slot >= self.per_decision or data is None:
            return
        thumbnail = self._thumbnail(entry, data)
        if thumbnail is None:
            return
        sample = Sample(entry.name, entry.source, entry.score or 0.0, entry.destination, thumbnail)
        if slot < len(chosen):
            chosen[slot] = sample
        else:
            chosen.append(sample)

    def _thumbnail(self, entry: Entry, data: bytes) -> str | None:
        try:
            image = Image.open(io.BytesIO(data))
            image.draft("RGB", (THUMBNAIL_SIDE * 2, THUMBNAIL_SIDE * 2))
            image = image.convert("RGB")
            image.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
        except Exception:  # a thumbnail is a convenience; the picture was scored already
            return None
        self.thumbs_dir.mkdir(parents=True, exist_ok=True)
        name = f"{entry.content_hash[:20]}.jpg"
        image.save(self.thumbs_dir / name, "JPEG", quality=80)
        return name


PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>mona sort: {title}</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; background: #fafafa; }}
h2 {{ border-bottom: 2px solid #ccc; }}
.grid {{ display: flex; flex-wrap: wrap; gap: 10px; }}
figure {{ margin: 0; width: 170px; background: white; padding: 4px; box-shadow: 0 1px 3px #aaa; }}
figure img {{ max-width: 160px; max-height: 160px; display: block; margin: auto; }}
figcaption {{ font-size: 11px; word-break: break-all; }}
.score {{ font-weight: bold; }}
.keep .score {{ color: #1a7f37; }} .review .score {{ color: #b08800; }} .drop .score {{ color: #a40e26; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ccc; padding: 3px 8px; }}
</style></head><body>
<h1>Sort of {title}</h1>
<p>Action <b>{action}</b>, keep when score &ge; <b>{confidence}</b>{band}. Model: {model}.</p>
<table><tr>{count_headers}</tr><tr>{count_cells}</tr></table>
{sections}
{errors}
</body></html>
"""


def write_report(path: Path, summary: dict, sampler: ReportSampler) -> Path:
    """Write the run's HTML contact sheet next to its thumbs/ folder."""
    sections = []
    for decision in ("keep", "review", "drop"):
        samples = sorted(sampler.samples.get(decision, []), key=lambda s: -s.score)
        if not samples:
            continue
        total = summary["this_session"].get(decision, 0)
        figures = "\n".join(
            f'<figure><img src="thumbs/{html.escape(s.thumbnail)}" alt="">'
            f'<figcaption><span class="score">{s.score:.3f}</span> {html.escape(s.name)}</figcaption></figure>'
            for s in samples)
        sections.append(f'<h2>{decision} ({len(samples)} shown of {total} in this session)</h2>'
                        f'<div class="grid {decision}">{figures}</div>')
    errors = ""
    if summary["errors"]:
        rows = "".join(f"<tr><td>{html.escape(s)}</td><td>{html.escape(e)}</td></tr>" for s, e in summary["errors"])
        errors = f"<h2>unreadable ({len(summary['errors'])})</h2><table><tr><th>picture</th><th>reason</th></tr>{rows}</table>"
    counts = summary["counts"]
    band = f", review when score &ge; <b>{summary['review_from']}</b>" if summary["review_from"] is not None else ""
    path.write_text(PAGE.format(
        title=html.escape(summary["source"]), action=summary["action"], confidence=summary["confidence"], band=band,
        model=html.escape(summary["model"]), count_headers="".join(f"<th>{k}</th>" for k in counts),
        count_cells="".join(f"<td>{v}</td>" for v in counts.values()), sections="\n".join(sections), errors=errors))
    return path
