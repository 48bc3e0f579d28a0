"""Shared pieces of the benchmarks: interleaved A/B comparisons, the machine, peak memory, results files,
realistic archives."""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import random
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

RESULTS = Path(__file__).resolve().parent / "results"
MIN_PAIRS = 5  # fewer pairs give no spread worth the name (issue 10, item 6)


def cpu_model() -> str:
    """The processor's model name (Linux), for results that say where they were measured."""
    try:
        return next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name"))
    except (OSError, StopIteration):
        return "unknown"


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages: how busy the machine was around a measurement."""
    return [round(value, 2) for value in os.getloadavg()]


def summarize_pairs(a_values: list[float], b_values: list[float]) -> dict:
    """The ratio a/b of each pair of repetitions, and their median, min and max.

    Ratios are taken within a pair (two repetitions run back to back), never between medians, so a load
    change that slows both sides of a pair alike cancels out.
    """
    assert len(a_values) == len(b_values) and a_values, "one value of each side per pair"
    ratios = [a / b for a, b in zip(a_values, b_values)]
    return {"ratios": [round(r, 4) for r in ratios], "median": round(statistics.median(ratios), 4),
            "min": round(min(ratios), 4), "max": round(max(ratios), 4)}


def compare_interleaved(measure_a: Callable[[], float], measure_b: Callable[[], float], *, a: str, b: str,
                        unit: str, pairs: int = MIN_PAIRS, warmup: int = 1) -> dict:
    """Measure two things alternately and report the ratio a/b as the median of pair ratios, with min and max.

    One pass of each on a shared machine is not a measurement: background work moved single-pass rates by
    half between two runs. Here each side first runs `warmup` times (not recorded: file cache, TF tracing),
    then `pairs` pairs run in alternating order, A B, B A, A B, ..., so a load that drifts over the run
    favours neither side.

    Args:
        measure_a, measure_b: one repetition each, returning its value in `unit` (a rate such as
            pictures/s, or a quantity such as seconds or MB; the ratio is a/b either way).
        a, b: the sides' names, as they appear in the result.
        pairs: how many A/B pairs; at least `MIN_PAIRS`.
    Returns:
        {"a", "b", "unit", "pairs", "warmup", "orders" (per pair "ab" or "ba"), "values" (name -> value per
        pair), "medians" (name -> median value), "ratio" (`summarize_pairs`), "cpu", "load_start",
        "load_end", "seconds"}.
    Raises:
        ValueError: fewer than `MIN_PAIRS` pairs, or a negative warm-up.
    """
    if pairs < MIN_PAIRS:
        raise ValueError(f"pairs must be at least {MIN_PAIRS} to give a median and a spread, got {pairs}")
    if warmup < 0:
        raise ValueError(f"warmup must be 0 or more repetitions of each side, got {warmup}")
    load_start, start = load_average(), time.perf_counter()
    for _ in range(warmup):
        measure_a()
        measure_b()
    values: dict[str, list[float]] = {a: [], b: []}
    orders = []
    for pair in range(pairs):
        order = "ab" if pair % 2 == 0 else "ba"
        for side in order:
            name, measure = (a, measure_a) if side == "a" else (b, measure_b)
            values[name].append(float(measure()))
        orders.append(order)
    return {"a": a, "b": b, "unit": unit, "pairs": pairs, "warmup": warmup, "orders": orders,
            "values": {name: [round(v, 4) for v in side] for name, side in values.items()},
            "medians": {name: round(statistics.median(side), 4) for name, side in values.items()},
            "ratio": summarize_pairs(values[a], values[b]), "cpu": cpu_model(),
            "load_start": load_start, "load_end": load_average(), "seconds": round(time.perf_counter() - start, 1)}


def ratio_text(comparison: dict, digits: int = 2) -> str:
    """A comparison's ratio for tables: "median (min-max), n pairs"."""
    ratio = comparison["ratio"]
    return (f"{ratio['median']:.{digits}f} ({ratio['min']:.{digits}f}-{ratio['max']:.{digits}f}), "
            f"{comparison['pairs']} pairs")


def machine() -> dict:
    import tensorflow as tf

    return {"cpu": cpu_model(), "cores": os.cpu_count(), "gpus": [d.name for d in tf.config.list_physical_devices("GPU")],
            "python": platform.python_version(), "tensorflow": tf.__version__, "platform": platform.platform()}


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def write_result(name: str, result: dict, load_start: list[float] | None = None) -> Path:
    """bench/results/NAME.json: the result, when (UTC), the machine, and the load average at start and end."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    result = {"benchmark": name, "when": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
              "machine": machine(), "load_start": load_start, "load_end": load_average(), **result}
    path.write_text(json.dumps(result, indent=2))
    return path


ARCHIVE = "common.make_archive: 80% 1920x1080 JPEG wallpapers, the rest PNG and WebP, drawn by the demo's generator"


def make_archive(folder: Path, pictures: int, seed: int = 0, full_hd_fraction: float = 0.8) -> Path:
    """Realistic pictures: mostly 1920x1080 JPEG wallpapers, some PNG and WebP, drawn by the demo's generator."""
    from mona_pipeline import demo

    folder.mkdir(parents=True, exist_ok=True)
    existing = len(list(folder.glob("*")))
    if existing >= pictures:
        return folder
    for index in range(pictures):
        rng = random.Random(f"bench-{seed}-{index}")
        people = rng.sample(list(demo.CAST), k=rng.choice([1, 1, 2, 3]))
        image = demo.compose_picture(people, rng, 1920, 1920)
        if rng.random() < full_hd_fraction:
            image = image.resize((1920, 1080)) if image.width >= image.height else image.resize((1080, 1920))
        kind = rng.random()
        if kind < 0.8:
            image.save(folder / f"pic_{index:05d}.jpg", "JPEG", quality=90)
        elif kind < 0.93:
            image.save(folder / f"pic_{index:05d}.png", "PNG", compress_level=3)
        else:
            image.save(folder / f"pic_{index:05d}.webp", "WEBP", quality=85)
    return folder


def small_pictures(folder: Path, count: int) -> Path:
    """`count` small JPEGs (96x64), written once and reused: the scale benchmark's input."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    if sum(1 for _ in folder.rglob("*.jpg")) >= count:  # the pictures lie in subfolders of 1000
        return folder
    buffer = io.BytesIO()
    for index in range(count):
        buffer.seek(0)
        buffer.truncate()
        Image.new("RGB", (96, 64), (index * 7 % 256, index * 13 % 256, index * 29 % 256)).save(buffer, "JPEG")
        sub = folder / f"d{index // 1000:03d}"
        sub.mkdir(exist_ok=True)
        (sub / f"s{index:06d}.jpg").write_bytes(buffer.getvalue())
    return folder


def stand_in_model(folder: Path, image_size: int = 32) -> Path:
    """A tiny real Keras model saved as a trained target stage (average colour -> two classes): for benchmarks
    of the pipeline's own cost at scale, where the network's share is not what is measured."""
    import keras

    from mona_pipeline.models import attach_head

    inputs = keras.Input((image_size, image_size, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(keras.layers.Rescaling(1.0 / 255.0)(inputs))
    model = attach_head(keras.Model(inputs, pooled, name="backbone"), 2, 0.0)
    folder.mkdir(parents=True, exist_ok=True)
    model.save(folder / "model.keras")
    (folder / "metadata.json").write_text(json.dumps({
        "stage": "target", "class_names": ["mona", "others"], "positive_class": "mona", "target": "mona",
        "image_size": image_size, "threshold": 0.95, "precision_policy": "float32"}))
    return folder


def evaluation_scores(folder: Path, model: str, split: str = "test") -> dict[str, dict]:
    """One model's per-picture scores from an evaluation (reports/evaluation/scores_<model>_<split>.csv), by path."""
    import csv

    with open(folder / f"scores_{model}_{split}.csv", newline="") as handle:
        return {row["path"]: row for row in csv.DictReader(handle)}


def evaluation_seed(folder: Path) -> int:
    """The training seed behind a clone's reports/evaluation folder (its params.yaml)."""
    import yaml

    return yaml.safe_load((folder.parents[1] / "params.yaml").read_text())["train"]["seed"]


class SortTimer:
    """Fresh sorts (action none) of one folder in this process; each returns the sort's own seconds
    (`SortSummary.seconds`, after the models are loaded), for `compare_interleaved`."""

    def __init__(self, pictures: Path, scratch: Path):
        self.pictures, self.scratch, self.runs = pictures, scratch, 0

    def seconds(self, models: list[Path], tiling: str) -> float:
        from mona_pipeline.sort import build_request, sort_source

        self.runs += 1
        request = build_request(None, str(self.pictures), self.scratch / f"out{self.runs}",
                                {"models": models, "action": "none", "tiling": tiling, "run": "bench"})
        summary = sort_source(request)
        assert summary.pictures == len(list(self.pictures.iterdir())), summary
        return summary.seconds

    def compare(self, a: list[Path], b: list[Path], names: tuple[str, str], tilings: list[str], pairs: int) -> dict:
        """Sorts with the models `a` against sorts with `b`, in interleaved pairs, for each tiling mode:
        {"tiling_<mode>": compare_interleaved's result}, each printed as it comes."""
        found = {}
        for tiling in tilings:
            comparison = compare_interleaved(lambda: self.seconds(a, tiling), lambda: self.seconds(b, tiling),
                                             a=names[0], b=names[1], unit="s", pairs=pairs)
            found[f"tiling_{tiling}"] = comparison
            print(f"tiling {tiling}: {names[0]} / {names[1]}, seconds: {ratio_text(comparison)}; medians "
                  f"{comparison['medians']}")
        return found


def sort_pair_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options of a benchmark that times two sets of models on `make_archive`'s pictures (`sort_pairs`)."""
    parser.add_argument("--pictures", type=int, default=40)
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--tiling", nargs="+", default=["off", "auto"], choices=["off", "auto", "always"])
    parser.add_argument("--folder", type=Path, default=Path("bench/archive/wallpapers"))
    return parser


def sort_pairs(name: str, args: argparse.Namespace, result: dict,
               models: Callable[[Path], tuple[list[Path], list[Path]]], names: tuple[str, str]) -> dict:
    """Sorts with the models `a` against sorts with `b` (`models(scratch)` gives both, made in a scratch
    folder if need be) on `args.pictures` of `make_archive`'s pictures, in interleaved pairs for each tiling
    mode: the result, also written to bench/results/NAME.json."""
    load_start = load_average()
    pictures = make_archive(args.folder, args.pictures)
    result = {"pictures": args.pictures, **result, "input": ARCHIVE}
    with tempfile.TemporaryDirectory() as scratch:
        a, b = models(Path(scratch))
        result |= SortTimer(pictures, Path(scratch)).compare(a, b, names, args.tiling, args.pairs)
    path = write_result(name, result, load_start)
    print(f"-> {path}")
    return result
