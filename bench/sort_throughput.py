"""Sort throughput on realistic pictures, three ways in one run.

    python -m bench.sort_throughput [--pictures 300] [--model models/target]

- decode_only_img_s: the sort's own reading and decoding pipeline, no model (the ceiling here);
- sort_img_s: the full `mona sort` (action none: read, hash, decode, score, decide, journal);
- paper_loop_img_s: the paper's way: open one picture, resize, model.predict on it alone, repeat.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import make_archive, peak_rss_mb, write_result


def decode_only(paths: list[Path], image_size: int, batch_size: int) -> float:
    """Pictures/s of the sort's reading + decoding path without the model."""
    import tensorflow as tf

    from mona_pipeline.config import MAX_IMAGE_PIXELS
    from mona_pipeline.preprocess import decode_for_model, prepare

    def items():
        for path in paths:
            data = path.read_bytes()
            yield prepare(data, path.name, image_size, MAX_IMAGE_PIXELS)

    start = time.perf_counter()
    dataset = tf.data.Dataset.from_generator(items, output_signature=tf.TensorSpec([], tf.string))
    dataset = dataset.map(lambda d: decode_for_model(d, image_size),
                          num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size).prefetch(2)
    count = sum(int(batch.shape[0]) for batch in dataset)
    assert count == len(paths)
    return count / (time.perf_counter() - start)


def paper_loop(paths: list[Path], model, image_size: int) -> tuple[float, list[float]]:
    """The paper's loop: PIL open, resize, predict one picture at a time."""
    from PIL import Image

    latencies = []
    start = time.perf_counter()
    for path in paths:
        begin = time.perf_counter()
        with Image.open(path) as image:
            array = np.asarray(image.convert("RGB").resize((image_size, image_size)), np.float32)
        model.predict(array[None], verbose=0)
        latencies.append(time.perf_counter() - begin)
    return len(paths) / (time.perf_counter() - start), latencies


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pictures", type=int, default=300)
    parser.add_argument("--paper-pictures", type=int, default=60, help="the paper loop is slow: fewer pictures")
    parser.add_argument("--model", type=Path, default=Path("models/target"))
    parser.add_argument("--archive", type=Path, default=Path("bench/archive/realistic"))
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args(argv)

    from mona_pipeline.models import load_trained
    from mona_pipeline.sort import SortRun, build_request

    folder = make_archive(args.archive, args.pictures)
    paths = sorted(folder.iterdir())[: args.pictures]
    trained = load_trained(args.model)
    metadata, size = trained.metadata, trained.image_size
    decode_only(paths[:64], size, args.batch_size)  # warm up file cache and TF kernels
    ceiling = decode_only(paths, size, args.batch_size)
    with tempfile.TemporaryDirectory() as out:
        listing = Path(out) / "list.txt"
        listing.write_text("\n".join(str(p.resolve()) for p in paths) + "\n")
        request = build_request(None, str(listing), Path(out), {"model": args.model, "action": "none",
                                                                 "batch_size": args.batch_size, "run": "bench"})
        start = time.perf_counter()
        with SortRun(request) as run:  # loads the model: start-up
            startup = time.perf_counter() - start
            start = time.perf_counter()
            summary = run.finish(run.process(run.source.items()), 0.0)  # the same steps as `mona sort`
            sort_rate = summary["pictures"] / (time.perf_counter() - start)
    paper_rate, latencies = paper_loop(paths[: args.paper_pictures], trained.network, size)
    result = {
        "pictures": len(paths), "formats": sorted({p.suffix for p in paths}), "image_size": size,
        "architecture": metadata.architecture, "precision_policy": metadata.precision_policy,
        "decode_only_img_s": round(ceiling, 1), "sort_img_s": round(sort_rate, 1),
        "paper_loop_img_s": round(paper_rate, 2), "paper_loop_pictures": len(latencies),
        "sort_vs_ceiling": round(sort_rate / ceiling, 3), "sort_vs_paper_loop": round(sort_rate / paper_rate, 1),
        "sort_latency_per_picture_s": round(1.0 / sort_rate, 5), "sort_startup_s": round(startup, 2),
        "paper_loop_latency_s": {"min": min(latencies), "mean": statistics.fmean(latencies),
                                 "median": statistics.median(latencies), "max": max(latencies)},
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }
    path = write_result("sort_throughput", result)
    print(f"sort throughput ({len(paths)} pictures, {size}px {result['architecture']}): decode-only "
          f"{result['decode_only_img_s']}/s, sort {result['sort_img_s']}/s ({result['sort_vs_ceiling']:.0%} of ceiling), "
          f"paper loop {result['paper_loop_img_s']}/s (sort is {result['sort_vs_paper_loop']}x) -> {path}")
    return result


if __name__ == "__main__":
    main()
