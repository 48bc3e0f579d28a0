"""Shared pieces of the benchmarks: the machine, peak memory, results files, realistic archives."""

from __future__ import annotations

import io
import json
import os
import platform
import random
import resource
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def cpu_model() -> str:
    """The processor's model name (Linux), for results that say where they were measured."""
    try:
        return next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name"))
    except (OSError, StopIteration):
        return "unknown"


def machine() -> dict:
    import tensorflow as tf

    return {"cpu": cpu_model(), "cores": os.cpu_count(), "gpus": [d.name for d in tf.config.list_physical_devices("GPU")],
            "python": platform.python_version(), "tensorflow": tf.__version__, "platform": platform.platform()}


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def write_result(name: str, result: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    result = {"benchmark": name, "when": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine(), **result}
    path.write_text(json.dumps(result, indent=2))
    return path


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
    if len(list(folder.iterdir())) >= count:
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
