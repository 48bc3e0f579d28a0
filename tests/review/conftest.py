"""A small sorted run to review: red pictures kept, pink ones in the review band (R = 0.5), blue ones dropped."""

from __future__ import annotations

from pathlib import Path

import pytest

from mona_pipeline.sort import sort_source
from tests.conftest import colour_picture
from tests.sort.conftest import BLUE, PINK, RED, sort_request, tree

PICTURES = {**{f"red/{n}.png": colour_picture(RED, "PNG", size=(40 + n, 40)) for n in range(6)},
            **{f"pink/{n}.png": colour_picture(PINK, "PNG", size=(40 + n, 40)) for n in range(4)},
            **{f"blue/{n}.jpg": colour_picture(BLUE, size=(40 + n, 40)) for n in range(8)}}


def make_inbox(root: Path) -> Path:
    for name, data in PICTURES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


@pytest.fixture
def sorted_run(tmp_path, colour_model):
    """(run folder, inbox, out) of a copy sort with a review band; other actions through `sort_with`."""
    return sort_with(tmp_path, colour_model, "copy")


def sort_with(tmp_path: Path, model: Path, action: str, source: Path | None = None):
    inbox = source or make_inbox(tmp_path / "inbox")
    out = tmp_path / "out"
    summary = sort_source(sort_request(inbox, out, model, action=action, review_from=0.5, tiling="off"))
    assert summary.counts["keep"] == 6 and summary.counts["review"] == 4 and summary.counts["drop"] == 8
    return Path(summary.journal).parent, inbox, out


def rows_by_name(journal) -> dict[str, str]:
    """picture name -> its journal row id."""
    return {entry.name: entry.item_id for entry in journal.entries()}


__all__ = ["sorted_run", "sort_with", "rows_by_name", "tree", "make_inbox", "PICTURES"]
