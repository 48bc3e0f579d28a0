"""ingest: data/raw/<tag>/** -> a labelled Parquet manifest, a rejects table and a summary.

    python -m flows.ingest      # as the DVC stage runs it
    mona ingest                       # the same from the CLI

Every file is decoded fully once. Broken files never stop the run: they go to
`rejects.parquet` with the reason. Exact duplicates (content hash) and near
duplicates (perceptual hash) form groups; the train/validation split is drawn
per group from a hash of the group, so no group straddles the split, the
split is the same on every run, and adding pictures does not move old ones.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

import imagehash
import pyarrow as pa
import pyarrow.parquet as pq

from mona_pipeline.config import LEARNED_FOLDER, STAGE_ORDER, DataParams, StagesParams
from mona_pipeline.errors import UserError
from mona_pipeline.images import BadPicture, content_hash, load_picture

logger = logging.getLogger(__name__)


class DataError(UserError, FileNotFoundError):
    """data/raw is missing or holds no usable picture; the message says what to do."""

MANIFEST_NAME, REJECTS_NAME, SUMMARY_NAME = "manifest.parquet", "rejects.parquet", "summary.json"
REJECT_SCHEMA = pa.schema([("path", pa.string()), ("tag", pa.string()), ("reason", pa.string())])


def list_files(root: Path) -> Iterator[Path]:
    """Every regular file under root, sorted, skipping hidden entries; directory links are not followed."""
    for directory, subdirectories, files in os.walk(root, followlinks=False):
        subdirectories[:] = sorted(d for d in subdirectories if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith("."):
                yield Path(directory) / name


def inspect_file(path: Path, raw_dir: Path, max_pixels: int) -> dict:
    """Decode one file; returns a manifest row, or a row with a `reason` when it is rejected."""
    relative = path.relative_to(raw_dir)
    tag = relative.parts[0] if len(relative.parts) > 1 else ""
    row = {"path": relative.as_posix(), "tag": tag}
    if not tag:
        return {**row, "reason": "not in a tag folder (put pictures in data/raw/<tag>/)"}
    try:
        size = path.stat().st_size
        if size > 4 * max_pixels + 1_000_000:  # more bytes than any accepted picture can need
            raise BadPicture(f"file too large: {size} bytes")
        data = path.read_bytes()
        picture = load_picture(data, path.name, max_pixels)
    except BadPicture as error:
        return {**row, "reason": str(error)}
    except OSError as error:
        return {**row, "reason": f"unreadable: {error.strerror or error}"}
    if not picture.extension_matches:
        logger.warning("%s: extension %s but the content is %s; accepted as %s",
                       relative, path.suffix or "(none)", picture.format, picture.format)
    return {
        **row,
        "content_hash": content_hash(data),
        "perceptual_hash": str(imagehash.phash(picture.image)),
        "width": picture.image.width,
        "height": picture.image.height,
        "bytes": len(data),
        "format": picture.format,
        "source_mode": picture.source_mode,
        "extension_matches": picture.extension_matches,
    }


def group_near_duplicates(perceptual_hashes: list[str], content_hashes: list[str], distance: int) -> list[int]:
    """Group pictures whose perceptual hashes differ by at most `distance` bits (or that are identical files).

    Candidate pairs come from 8-bit bands of the 64-bit hash: two hashes within
    7 bits share at least one band exactly (pigeonhole), so no pair is missed.

    Returns:
        the group index of each picture.
    """
    assert distance < 8, "banding finds every pair only up to 7 bits"
    parent = list(range(len(perceptual_hashes)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(i: int, j: int) -> None:
        parent[find(i)] = find(j)

    values = [int(h, 16) for h in perceptual_hashes]
    buckets: dict[tuple, list[int]] = defaultdict(list)
    for index, (value, digest) in enumerate(zip(values, content_hashes)):
        buckets[("content", digest)].append(index)
        for band in range(8):
            buckets[(band, (value >> (8 * band)) & 0xFF)].append(index)
    for key, members in buckets.items():
        for position, i in enumerate(members):
            for j in members[position + 1:]:
                if key[0] == "content" or bin(values[i] ^ values[j]).count("1") <= distance:
                    union(i, j)
    return [find(i) for i in range(len(values))]


def split_fraction(key: str) -> float:
    """A uniform number in [0, 1) derived from a string: the group's place in the split."""
    return int(hashlib.sha256(key.encode()).hexdigest()[:12], 16) / float(1 << 48)


def is_learned(path: str) -> bool:
    """Whether a manifest path (`<tag>/...`) is a picture `mona learn` added from a review: `<tag>/learned/...`."""
    parts = path.split("/")
    return len(parts) > 2 and parts[1] == LEARNED_FOLDER


def assign_splits(rows: list[dict], groups: list[int], validation_fraction: float) -> None:
    """Set row['split'] to train/validation per group, stratified by tag: each tag's validation split holds
    `validation_fraction` of its pictures (rounded), filled with its groups in the order of their hash key.

    The order is a property of the group alone, so a run gives the same split every time, and a new picture
    can move only groups of its own tag, at the boundary of its quota; other tags never change. (A plain
    hash cut kept every group in place but left the share to chance: 27 of 200 demo targets, not 40.)
    A class of >= 2 groups gets both splits. A group holding a learned picture (`is_learned`) trains: a
    picture a review judged, or its near duplicate, is never validation evidence, nor counted in the quota."""
    members: dict[int, list[int]] = defaultdict(list)
    for index, group in enumerate(groups):
        members[group].append(index)
    # A group's key is its smallest content hash: unrelated new pictures never change it.
    keys = {group: min(rows[i]["content_hash"] for i in indices) for group, indices in members.items()}
    learned = {group for group, indices in members.items() if any(is_learned(rows[i]["path"]) for i in indices)}
    split = {group: "train" for group in learned}
    tag_counts: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for index, group in enumerate(groups):
        if group not in learned:
            tag_counts[rows[index]["tag"]][group] += 1
    for tag in sorted(tag_counts):  # a group in two tags' folders is placed by the first
        counts = tag_counts[tag]
        quota = round(validation_fraction * sum(counts.values()))
        taken = sum(n for group, n in counts.items() if split.get(group) == "validation")
        open_groups = sorted((g for g in counts if g not in split), key=lambda g: split_fraction(keys[g]))
        for group in open_groups:
            fits = taken + counts[group] <= quota or (taken == 0 and quota > 0)
            split[group] = "validation" if taken < quota and fits else "train"
            taken += counts[group] if split[group] == "validation" else 0
        if len(open_groups) >= 2 and all(split[g] == "train" for g in open_groups):
            split[open_groups[0]] = "validation"
        if len(open_groups) >= 2 and all(split[g] == "validation" for g in open_groups):
            split[open_groups[-1]] = "train"
    for index, group in enumerate(groups):
        rows[index]["group"] = keys[group][:16]
        rows[index]["split"] = split[group]


def build_manifest(data: DataParams, stages: StagesParams, workers: int | None = None) -> tuple[list[dict], list[dict]]:
    """Inspect every file under data.raw_dir. Returns (accepted rows, rejected rows)."""
    if not data.raw_dir.is_dir():
        raise DataError(f"raw data folder not found: {data.raw_dir} (run `mona demo-data` or add pictures)")
    files = list(list_files(data.raw_dir))
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        results = list(pool.map(lambda p: inspect_file(p, data.raw_dir, data.max_image_pixels), files))
    accepted = [row for row in results if "reason" not in row]
    rejected = [row for row in results if "reason" in row]
    for row in rejected:
        logger.warning("rejected %s: %s", row["path"], row["reason"])
    for row in accepted:
        for name, stage in stages.items():
            row[f"label_{name}"] = stage.label_for(row["tag"])
    groups = group_near_duplicates([r["perceptual_hash"] for r in accepted], [r["content_hash"] for r in accepted],
                                   data.near_duplicate_distance)
    assign_splits(accepted, groups, data.validation_fraction)
    return accepted, rejected


def summarize(accepted: list[dict], rejected: list[dict], stages: StagesParams) -> dict:
    """Counts per tag and split, per stage class and split, and rejects by reason."""
    per_stage = {}
    for name, stage in stages.items():
        counts = Counter((stage.class_names[r[f"label_{name}"]], r["split"]) for r in accepted
                         if r[f"label_{name}"] >= 0)
        per_stage[name] = {cls: {s: counts[(cls, s)] for s in ("train", "validation")} for cls in stage.class_names}
    tags = Counter((r["tag"], r["split"]) for r in accepted)
    return {
        "pictures": len(accepted),
        "rejected": len(rejected),
        "groups": len({r["group"] for r in accepted}),
        "per_tag": {t: {s: tags[(t, s)] for s in ("train", "validation")} for t in sorted({r["tag"] for r in accepted})},
        "per_stage": per_stage,
        "rejects": {r["path"]: r["reason"] for r in rejected},
    }


def write_manifest(accepted: list[dict], rejected: list[dict], out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    label_columns = [f"label_{name}" for name in STAGE_ORDER]
    schema = pa.schema([
        ("path", pa.string()), ("tag", pa.string()), ("content_hash", pa.string()),
        ("perceptual_hash", pa.string()), ("group", pa.string()), ("split", pa.string()),
        ("width", pa.int32()), ("height", pa.int32()), ("bytes", pa.int64()), ("format", pa.string()),
        ("source_mode", pa.string()), ("extension_matches", pa.bool_()),
        *[(column, pa.int8()) for column in label_columns],
    ])
    pq.write_table(pa.Table.from_pylist(accepted, schema=schema), out_dir / MANIFEST_NAME)
    pq.write_table(pa.Table.from_pylist(rejected, schema=REJECT_SCHEMA), out_dir / REJECTS_NAME)


def run_ingest(data: DataParams, stages: StagesParams) -> dict:
    """The DVC stage: build and write the manifest, rejects and summary. Returns the summary."""
    accepted, rejected = build_manifest(data, stages)
    if not accepted:
        raise DataError(f"no usable pictures under {data.raw_dir} ({len(rejected)} rejected)")
    write_manifest(accepted, rejected, data.manifest_dir)
    summary = summarize(accepted, rejected, stages)
    (data.manifest_dir / SUMMARY_NAME).write_text(json.dumps(summary, indent=2, sort_keys=True))
    return summary


def read_manifest(manifest_dir: Path) -> pa.Table:
    return pq.read_table(manifest_dir / MANIFEST_NAME)
