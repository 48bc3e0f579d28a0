"""Would an ensemble of seeds be a steadier shipped model? Replayed from each seed's evaluation scores.

Each seed's evaluation writes every test picture's calibrated whole-picture score and best tile score
(reports/evaluation/scores_<model>_test.csv). An ensemble of the seeds' models averages their logits. For
the whole picture that is exactly what the ensemble would score. For tiles it is an estimate: each seed's
best tile may be another crop, so the mean of best tiles is at least the best mean tile (optimistic for
recall, pessimistic for false alarms). The sort's tile rule decides (`TilingParams.tile_decides`).
Each single seed is replayed the same way, so the table compares like with like.

    python -m bench.seed_ensemble clone1/reports/evaluation clone2/reports/evaluation ...
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
from pathlib import Path

import numpy as np

from bench.common import RESULTS, cpu_model, evaluation_scores, evaluation_seed
from mona_pipeline.config import TilingParams
from mona_pipeline.ensemble import mean_log_odds

MODELS = ("three_stage", "baseline")


def decide(whole: float, tile: float | None, tiling: TilingParams, threshold: float) -> bool:
    return whole >= threshold or tiling.tile_decides(whole, tile, threshold)


def rates(kept: list[bool], truth: list[bool], small: list[bool]) -> dict:
    tp = sum(k and t for k, t in zip(kept, truth))
    fp = sum(k and not t for k, t in zip(kept, truth))
    positives, small_positives = sum(truth), sum(s and t for s, t in zip(small, truth))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / positives
    return {"precision": round(precision, 3), "recall": round(recall, 3),
            "f1": round(2 * precision * recall / (precision + recall), 3) if tp else 0.0, "false_alarms": fp,
            "small_recall": round(sum(k and s and t for k, s, t in zip(kept, small, truth)) / small_positives, 3)}


def ensemble_scores(tables: list[dict[str, dict]], path: str) -> tuple[float, float | None]:
    """What `mona ensemble` of the seeds scores (ensemble.mean_log_odds) for the whole picture, and for the
    seeds' best tiles (None where not every seed looked at a tile)."""
    wholes = [float(table[path]["whole_score"]) for table in tables]
    tiles = [float(table[path]["tile_score"]) for table in tables if table[path]["tile_score"]]
    return float(mean_log_odds(np.array(wholes))), (float(mean_log_odds(np.array(tiles)))
                                                     if len(tiles) == len(tables) else None)


def spread(results: list[dict]) -> str:
    return ", ".join(f"{statistics.mean(r[k] for r in results):.3f} ± {statistics.stdev(r[k] for r in results):.3f}"
                     for k in ("f1", "precision", "recall"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("evaluations", nargs="+", type=Path, help="reports/evaluation folders, one per seed")
    parser.add_argument("--threshold", type=float, default=0.95)
    parser.add_argument("--members", type=int, default=3,
                        help="also every ensemble of this many of the seeds: their mean ± sd (overlapping subsets)")
    parser.add_argument("--out", type=Path, default=RESULTS / "seed_ensemble.json")
    args = parser.parse_args()
    seeds = [evaluation_seed(folder) for folder in args.evaluations]
    results = {"cpu": cpu_model(), "threshold": args.threshold, "seeds": seeds, "models": {}}
    print("| model | tiling | seeds one by one: mean ± sd (F1, precision, recall) | ensemble of all seeds | "
          "ensembles of --members seeds: mean ± sd |")
    print("|---|---|---|---|---|")
    for model in MODELS:
        tables = [evaluation_scores(folder, model) for folder in args.evaluations]
        paths = sorted(tables[0])
        truth = [tables[0][p]["target"] == "1" for p in paths]
        small = [tables[0][p]["part"] == "small" for p in paths]
        results["models"][model] = {}
        for tiling in (TilingParams(mode="off"), TilingParams(mode="auto")):
            singles = []
            for table in tables:
                kept = [decide(float(table[p]["whole_score"]),
                               float(table[p]["tile_score"]) if table[p]["tile_score"] else None,
                               tiling, args.threshold) for p in paths]
                singles.append(rates(kept, truth, small))
            def ensemble(chosen: list[dict[str, dict]]) -> dict:
                kept = [decide(*ensemble_scores(chosen, p), tiling, args.threshold) for p in paths]
                return rates(kept, truth, small)

            together = ensemble(tables)
            subsets = [ensemble(list(chosen)) for chosen in itertools.combinations(tables, args.members)
                       ] if 1 < args.members < len(tables) else []
            results["models"][model][tiling.mode] = {"single": singles, "ensemble": together,
                                                     f"ensembles_of_{args.members}": subsets}
            print(f"| {model} | {tiling.mode} | {spread(singles)} | {together['f1']:.3f}, {together['precision']:.3f}, "
                  f"{together['recall']:.3f} | {spread(subsets) if len(subsets) > 1 else '-'} |")
    args.out.write_text(json.dumps(results, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
