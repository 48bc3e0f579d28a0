"""The evaluation's scoring pass: every model from one decode of each test picture (a `Panel`, what
`run_evaluate` does) against one pass per model (what it did before), in interleaved pairs.

    python -m bench.evaluate_pass [--models models/target models/baseline] [--pictures 300] [--pairs 5]

Both sides score the same pictures of the labelled test archive (`data.test_dir`) with params.yaml's tiling,
every tile as the evaluation does (`evaluate.score_models` / `score_set`). The two must give the same scores:
the result says whether they did (the largest difference). The value is the pass's wall time in seconds; the
ratio is one pass / one pass per model.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from bench.common import compare_interleaved, load_average, ratio_text, write_result
from mona_pipeline.config import load_params
from mona_pipeline.evaluate import read_labelled_folder
from mona_pipeline.evaluate.sets import LabelledSet, score_models, score_set
from mona_pipeline.inference import Panel, Scorer
from mona_pipeline.trained import load_trained


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=Path, nargs="+", default=[Path("models/target"), Path("models/baseline")])
    parser.add_argument("--pictures", type=int, default=300, help="the test archive's first N pictures")
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args(argv)
    params = load_params(args.params)
    load_start = load_average()
    labelled = read_labelled_folder(params.data.test_dir)
    labelled = LabelledSet(labelled.name, labelled.paths[: args.pictures], labelled.truth[: args.pictures],
                           labelled.kinds[: args.pictures])
    scorers = [Scorer(load_trained(model)) for model in args.models]
    batch, pixels, tiling = params.evaluate.batch_size, params.data.max_image_pixels, params.tiling
    seen: dict[str, list] = {}

    def one_pass() -> float:
        start = time.perf_counter()
        seen["one pass"] = score_models(Panel(scorers), labelled, batch, pixels, tiling)
        return time.perf_counter() - start

    def per_model() -> float:
        start = time.perf_counter()
        seen["a pass per model"] = [score_set(scorer, labelled, batch, pixels, tiling) for scorer in scorers]
        return time.perf_counter() - start

    comparison = compare_interleaved(one_pass, per_model, a="one pass", b="a pass per model", unit="seconds",
                                     pairs=args.pairs)
    difference = max(float(np.nanmax(np.abs(np.concatenate([a.whole - b.whole, a.tiles - b.tiles]))))
                     for a, b in zip(seen["one pass"], seen["a pass per model"]))
    boxes_same = all(a.boxes == b.boxes for a, b in zip(seen["one pass"], seen["a pass per model"]))
    result = {"models": [str(model) for model in args.models], "pictures": len(labelled.paths),
              "tiling": tiling.model_dump(), "comparison": comparison,
              "largest_score_difference": difference, "same_boxes": boxes_same}
    path = write_result("evaluate_pass", result, load_start)
    print(f"{len(labelled.paths)} test pictures, {len(scorers)} models: one pass / a pass per model = "
          f"{ratio_text(comparison)}; medians {comparison['medians']} s; largest score difference "
          f"{difference:.2g}, same boxes: {boxes_same} -> {path}")
    return result


if __name__ == "__main__":
    main()
