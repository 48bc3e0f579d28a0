"""Sort throughput on realistic pictures (full-HD wallpapers), as three interleaved comparisons in one run.

    python -m bench.sort_throughput [--pictures 300] [--model models/target] [--pairs 5]

- sort (tiling off) vs decode-only: the sort's own reading and decoding pipeline, no model (the ceiling);
- sort (tiling auto) vs sort (tiling off): what multi-scale scoring costs (target: >= 0.5);
- coarse to fine vs every tile: tiling auto with `tiling.refine_from` (the shipped value, or
  `--refine-from`) against tiling auto scoring every tile of every scale;
- the network alone on the pictures' coarse tiles (tiles/s, cut beforehand) vs the untiled sort
  (pictures/s): how many tiles a picture's untiled time buys, and so the most tiling auto can reach (each tiled
  picture pays at least its coarse tiles' network passes): `tiling_auto_ceiling`;
- sort (tiling off) vs the paper's loop: open one picture, resize, model.predict on it alone, repeat (on
  fewer pictures: it is slow, and rates are per picture).

Each comparison warms both sides up, then runs A/B pairs in alternating order (`common.compare_interleaved`).
The sort is `SortRun` with action none (read, hash, decode, score, tile, decide, journal), one fresh run per
repetition, the model loaded once. Its settings, the tiling grid and rule included, are params.yaml's
(`--params`) when that file is there, else the built-in defaults; the result records them.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import compare_interleaved, load_average, make_archive, peak_rss_mb, ratio_text, write_result


def decode_only(paths: list[Path], image_size: int, batch_size: int) -> float:
    """Pictures/s of the sort's reading + decoding path without the model."""
    from mona_pipeline.config import MAX_IMAGE_PIXELS
    from mona_pipeline.inference import scoring_dataset
    from mona_pipeline.preprocess import prepare

    def read():
        for sequence, path in enumerate(paths):
            yield sequence, prepare(path.read_bytes(), path.name, image_size, MAX_IMAGE_PIXELS), True

    start = time.perf_counter()
    count = sum(int(images.shape[0]) for _, images in scoring_dataset(read, image_size, batch_size))
    assert count == len(paths)
    return count / (time.perf_counter() - start)


def coarse_tiles(paths: list[Path], image_size: int, tiling) -> tuple[np.ndarray, int]:
    """Every coarsest-scale tile of the pictures, cut as the sort cuts them ((T, S, S, 3) float32), and how
    many pictures have tiles."""
    import tensorflow as tf

    from mona_pipeline.config import MAX_IMAGE_PIXELS
    from mona_pipeline.preprocess import picture_size, prepare, tile_grid_by_scale, tiles_for_model

    cut = []
    for path in paths:
        data = prepare(path.read_bytes(), path.name, image_size, MAX_IMAGE_PIXELS)
        grids = tile_grid_by_scale(*picture_size(data), tiling)
        if grids:
            cut.append(tiles_for_model(tf.constant(data), tf.constant(grids[0], tf.float32), image_size,
                                       min(tiling.scales)).numpy())
    return np.concatenate(cut), len(cut)


def network_only(tiles: np.ndarray, scorer, batch_size: int) -> float:
    """Tiles/s of the model alone on tiles already cut, in the sort's batches."""
    import tensorflow as tf

    start = time.perf_counter()
    for first in range(0, len(tiles), batch_size):
        np.asarray(scorer(tf.constant(tiles[first:first + batch_size])))
    return len(tiles) / (time.perf_counter() - start)


def paper_loop(paths: list[Path], model, image_size: int, latencies: list[float]) -> float:
    """The paper's loop: PIL open, resize, predict one picture at a time; appends each picture's latency."""
    from PIL import Image

    start = time.perf_counter()
    for path in paths:
        begin = time.perf_counter()
        with Image.open(path) as image:
            array = np.asarray(image.convert("RGB").resize((image_size, image_size)), np.float32)
        model.predict(array[None], verbose=0)
        latencies.append(time.perf_counter() - begin)
    return len(paths) / (time.perf_counter() - start)


class SortBench:
    """Fresh `SortRun`s (action none) of one listing with one loaded model, one per repetition.

    Each repetition writes to its own folder, so none resumes another's journal."""

    def __init__(self, params, listing: Path, out: Path, model: Path, batch_size: int):
        from mona_pipeline.inference import Scorer
        from mona_pipeline.trained import load_trained

        self.params, self.listing, self.out, self.model, self.batch_size = params, listing, out, model, batch_size
        self.scorer = Scorer(load_trained(model))
        self.runs = 0
        self.last_summary: dict[str, dict] = {}

    def request(self, tiling: str, tiles=None):
        from mona_pipeline.sort import build_request

        self.runs += 1
        return build_request(self.params, str(self.listing), self.out / f"run{self.runs:03d}", {
            "models": [self.model], "action": "none", "batch_size": self.batch_size, "tiling": tiling,
            "run": "bench", "tiles": tiles})

    def rate(self, tiling: str, tiles=None) -> float:
        """Pictures/s of one sort with this tiling mode (off | auto | always), start-up excluded; `tiles`: a
        tiling section instead of the params' (its grid and rule)."""
        from mona_pipeline.sort import SortRun

        with SortRun(self.request(tiling, tiles), scorer=self.scorer) as run:
            start = time.perf_counter()
            summary = run.finish(run.process(run.source.items()), 0.0)  # the same steps as `mona sort`
            seconds = time.perf_counter() - start
        self.last_summary[tiling] = summary
        return summary.pictures / seconds

    def tiled(self, paths: list[Path], tiling: str, tiles=None) -> dict:
        """How many pictures this tiling mode sends on to their tiles, and how many tiles it scores: one
        untimed pass of `score_stream` with the sort's own tiling and decision threshold."""
        from mona_pipeline.inference import read_files, score_stream
        from mona_pipeline.sort import SortRun

        with SortRun(self.request(tiling, tiles), scorer=self.scorer) as run:
            grid, decisive = run.tiling, run.confidence
        results = list(score_stream(self.scorer, read_files(paths), self.batch_size, tiling=grid,
                                    decisive=decisive))
        return {"pictures": len(results), "pictures_tiled": sum(r.tiles > 0 for r in results),
                "tiles_scored": sum(r.tiles for r in results),
                "score_from_a_tile": sum(r.box is not None for r in results),
                "decision_threshold": decisive, "tiling": grid.model_dump()}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pictures", type=int, default=300)
    parser.add_argument("--paper-pictures", type=int, default=60, help="the paper loop is slow: fewer pictures")
    parser.add_argument("--model", type=Path, default=Path("models/target"))
    parser.add_argument("--params", type=Path, default=Path("params.yaml"),
                        help="the sort and tiling settings; built-in defaults when the file is absent")
    parser.add_argument("--archive", type=Path, default=Path("bench/archive/realistic"))
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--refine-from", type=float, default=None,
                        help="coarse to fine's bar (default: the shipped tiling.refine_from, else 0.2)")
    args = parser.parse_args(argv)
    load_start = load_average()

    from mona_pipeline.config import TilingParams, load_params

    params = load_params(args.params) if args.params.exists() else None
    shipped = params.tiling if params is not None else TilingParams()
    bar = args.refine_from if args.refine_from is not None else shipped.refine_from or 0.2
    refined, every = (shipped.model_copy(update={"refine_from": value}) for value in (bar, None))
    folder = make_archive(args.archive, args.pictures)
    paths = sorted(folder.iterdir())[: args.pictures]
    latencies: list[float] = []
    with tempfile.TemporaryDirectory() as out:
        listing = Path(out) / "list.txt"
        listing.write_text("\n".join(str(p.resolve()) for p in paths) + "\n")
        sorts = SortBench(params, listing, Path(out), args.model, args.batch_size)
        trained, size = sorts.scorer.trained, sorts.scorer.image_size
        comparisons = {
            "sort_vs_ceiling": compare_interleaved(
                lambda: sorts.rate("off"), lambda: decode_only(paths, size, args.batch_size),
                a="sort_tiling_off", b="decode_only", unit="pictures/s", pairs=args.pairs),
            "tiling_auto_vs_off": compare_interleaved(
                lambda: sorts.rate("auto"), lambda: sorts.rate("off"),
                a="sort_tiling_auto", b="sort_tiling_off", unit="pictures/s", pairs=args.pairs),
            "coarse_to_fine_vs_every_tile": compare_interleaved(
                lambda: sorts.rate("auto", refined), lambda: sorts.rate("auto", every),
                a=f"sort_tiling_auto_refine_from_{bar:g}", b="sort_tiling_auto_every_tile", unit="pictures/s",
                pairs=args.pairs),
            "sort_vs_paper_loop": compare_interleaved(
                lambda: sorts.rate("off"),
                lambda: paper_loop(paths[: args.paper_pictures], trained.network, size, latencies),
                a="sort_tiling_off", b="paper_loop", unit="pictures/s", pairs=args.pairs),
        }
        tiles, tileable = coarse_tiles(paths, size, shipped)
        comparisons["tile_network_vs_untiled_sort"] = compare_interleaved(
            lambda: network_only(tiles, sorts.scorer, args.batch_size), lambda: sorts.rate("off"),
            a="network_coarse_tiles", b="sort_tiling_off", unit="tiles/s against pictures/s", pairs=args.pairs)
        tiled = sorts.tiled(paths, "auto")
        tiled_by_rule = {"coarse_to_fine": sorts.tiled(paths, "auto", refined),
                         "every_tile": sorts.tiled(paths, "auto", every)}
        auto_summary = sorts.last_summary["auto"]
    # A tiled picture pays at least its coarse tiles' network passes on top of its untiled cost, so tiling auto
    # runs at most at 1 / (1 + share tiled x coarse tiles / (tiles scored in an untiled picture's time)).
    coarse_per_tiled = len(tiles) / tileable
    share_tiled = tiled["pictures_tiled"] / tiled["pictures"]
    ceilings = [1.0 / (1.0 + share_tiled * coarse_per_tiled / ratio)
                for ratio in comparisons["tile_network_vs_untiled_sort"]["ratio"]["ratios"]]
    metadata = trained.metadata
    result = {
        "pictures": len(paths), "formats": sorted({p.suffix for p in paths}), "image_size": size,
        "paper_loop_pictures": min(args.paper_pictures, len(paths)), "batch_size": args.batch_size,
        "model": str(args.model), "architecture": metadata.architecture,
        "precision_policy": metadata.precision_policy,
        "params_file": str(args.params) if params is not None else None,
        "comparisons": comparisons,
        "tiling_auto": {**tiled, "found_in_tiles_last_run": auto_summary.found_in_tiles,
                        "decisions_last_run": auto_summary.counts},
        "tiling_auto_by_rule": tiled_by_rule,
        "tiling_auto_ceiling": {"coarse_tiles_per_tileable_picture": round(coarse_per_tiled, 1),
                                "share_tiled": round(share_tiled, 3),
                                "per_pair": [round(value, 3) for value in ceilings],
                                "median": round(statistics.median(ceilings), 3)},
        "paper_loop_latency_s": {"min": min(latencies), "median": statistics.median(latencies),
                                 "max": max(latencies), "count": len(latencies)},
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }
    path = write_result("sort_throughput", result, load_start)
    print(f"sort throughput ({len(paths)} pictures, {size}px {metadata.architecture}), median (min-max) of "
          f"{args.pairs} interleaved pairs:")
    for name, comparison in comparisons.items():
        print(f"  {name}: {ratio_text(comparison, 3)}; medians {comparison['medians']} {comparison['unit']}")
    print(f"  tiling auto: {tiled['pictures_tiled']} of {tiled['pictures']} pictures tiled, "
          f"{tiled['tiles_scored']} tiles; the network alone on their coarse tiles caps it at "
          f"{statistics.median(ceilings):.2f} of the untiled sort -> {path}")
    return result


if __name__ == "__main__":
    main()
