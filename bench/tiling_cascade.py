"""Would a cascade make small-figure finding cheap? Tiles only where the whole picture is already warm.

`tiling.auto_from` is that cascade: a picture's tiles are scored only when its whole score is at least
auto_from (and below the threshold). This bench replays the evaluation's own per-picture scores
(reports/evaluation/scores_<model>_test.csv: whole score, best tile score) under each auto_from, so it
costs no inference: the share of pictures tiled (what the sort pays for), precision, recall, false alarms
and recall on small figures, per seed and model. The decision rule is the sort's
(`TilingParams.tile_decides`: a tile decides only at the threshold).

    python -m bench.tiling_cascade reports/evaluation [other clones' reports/evaluation ...]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bench.common import RESULTS, cpu_model, evaluation_scores, evaluation_seed
from mona_pipeline.config import TilingParams

AUTO_FROM = [0.0, 0.001, 0.01, 0.05, 0.2, 0.5]
MODELS = ("three_stage", "baseline")


def replay(rows: list[dict], threshold: float, tiling: TilingParams) -> dict:
    """One tiling setting over one model's test scores: what the sort would have decided."""
    tp = fp = fn = tiled = small = small_found = 0
    for row in rows:
        whole, truth = float(row["whole_score"]), row["target"] == "1"
        tile = float(row["tile_score"]) if row["tile_score"] else None
        tiled += tiling.needs_tiles(whole, threshold)
        kept = whole >= threshold or tiling.tile_decides(whole, tile, threshold)
        tp, fp, fn = tp + (kept and truth), fp + (kept and not truth), fn + (truth and not kept)
        if truth and row["part"] == "small":
            small, small_found = small + 1, small_found + kept
    setting = f"auto, from {tiling.auto_from}" if tiling.mode == "auto" else tiling.mode
    return {"tiling": setting, "tiled": round(tiled / len(rows), 3),
            "precision": round(tp / (tp + fp), 3) if tp + fp else None, "recall": round(tp / (tp + fn), 3),
            "false_alarms": fp, "small_recall": round(small_found / small, 3) if small else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("evaluations", nargs="+", type=Path, help="reports/evaluation folders (one per seed)")
    parser.add_argument("--threshold", type=float, default=0.95)
    parser.add_argument("--out", type=Path, default=RESULTS / "tiling_cascade.json")
    args = parser.parse_args()
    results = []
    for folder in args.evaluations:
        seed = evaluation_seed(folder)
        for model in MODELS:
            rows = list(evaluation_scores(folder, model).values())
            settings = [TilingParams(mode="off")] + [TilingParams(mode="auto", auto_from=a) for a in AUTO_FROM]
            results += [{"evaluation": str(folder), "seed": seed, "model": model,
                         **replay(rows, args.threshold, tiling)} for tiling in settings]
    args.out.write_text(json.dumps({"cpu": cpu_model(), "threshold": args.threshold, "rows": results}, indent=1))
    print("| seed | model | tiling | tiled | precision | recall | false alarms | small recall |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['seed']} | {r['model']} | {r['tiling']} | {r['tiled']:.2f} | {r['precision']} | "
              f"{r['recall']} | {r['false_alarms']} | {r['small_recall']} |")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
