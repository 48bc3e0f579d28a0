"""One round of the review loop on the demo, with the test labels as the reviewing user (issue 20, item 5).

    python -m bench.review_loop [--pool 2000] [--pool-seed 9] [--reviews 100]    # in a project with trained models

In the project folder it runs (after `make demo`, or a `dvc repro` of another train.seed):
1. `mona demo-data --pool N --seed S`: a fresh labelled archive that neither training nor the test archive holds;
2. `mona sort` of it (action copy, review band from 0.5, params.yaml's tiling), as a user sorts an archive;
3. the review: the first `reviews` pictures of the page's own order (review band first, then the audit sample
   of keep and drop), each marked with the pool's label, as a user pressing y / n would;
4. the audit's estimate of keep's precision, against the pool's true precision of keep;
5. `mona learn`, `dvc add data/raw`, `dvc repro`: the next model; and the test archive's evaluation before and
   after (reports/metrics.json: precision and recall at the model's P, look-alike false alarms).
Results: bench/results/review_loop_seed<train.seed>.json. It changes data/raw and the models: run it in a clone.
`python -m bench.review_loop table bench/results/review_loop_seed*.json` tables the seeds and their paired
differences (mean ± sd).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.common import load_average, write_result
from mona_pipeline.config import load_params
from mona_pipeline.review import audit, learn, verdicts
from mona_pipeline.sort.journal import open_run

MODELS = ("three_stage", "baseline")
METRICS = ("precision", "recall", "f1", "lookalike_false_alarms", "recall_small")


def run(*command: str) -> float:
    """A command with the project's Python first on PATH (dvc.yaml runs `python`); returns its seconds."""
    start = time.perf_counter()
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    subprocess.run(command, check=True, env=os.environ | {"PATH": path, "DVC_NO_ANALYTICS": "1"})
    return round(time.perf_counter() - start, 1)


def evaluation() -> dict:
    metrics = json.loads(Path("reports/metrics.json").read_text())
    return {model: {key: metrics[model][key] for key in METRICS} for model in MODELS}


def audit_of_kept(run_dir: Path, truth: dict[str, dict], checked: int) -> dict:
    """The audit's estimate had the user gone on to `checked` kept pictures in the page's order (the answers
    from the labels, computed here and not marked: the learning round above is unchanged), against the true
    share of kept pictures that show her."""
    from mona_pipeline.review.audit import Rate

    with open_run(run_dir) as journal:
        entries = {entry.item_id: entry for entry in journal.entries()}
        kept = [item for item in verdicts.review_queue(journal) if entries[item].decision == "keep"][:checked]
    shows = [truth[entries[item].name]["target"] == "1" for item in kept]
    every = [truth[e.name]["target"] == "1" for e in entries.values() if e.decision == "keep"]
    rate = Rate("keep", len(every), len(shows), sum(shows))
    low, high = rate.interval
    true = sum(every) / len(every) if every else None
    return {"checked": len(shows), "estimate": rate.share, "interval": [low, high], "true": true,
            "within_interval": true is not None and low <= true <= high, "line": rate.line("mona")}


def table(results: list[dict]) -> str:
    """The seeds' before/after rows and the mean and spread of each paired difference, as Markdown."""
    import statistics

    lines = ["| seed | model | P before -> after | R before -> after | F1 before -> after | look-alike FA before -> "
             "after | audit of 50 kept: estimate (interval) / true |", "|---|---|---|---|---|---|---|"]
    for result in sorted(results, key=lambda r: r["train_seed"]):
        fifty = result["review"]["audit_of_50_kept"]
        low, high = fifty["interval"]
        estimate = f"{fifty['estimate']:.2f} ({low:.2f}-{high:.2f}) / {fifty['true']:.2f}"
        for model in MODELS:
            b, a = result["before"][model], result["after"][model]
            lines.append(f"| {result['train_seed']} | {model} | {b['precision']:.3f} -> {a['precision']:.3f} | "
                         f"{b['recall']:.3f} -> {a['recall']:.3f} | {b['f1']:.3f} -> {a['f1']:.3f} | "
                         f"{b['lookalike_false_alarms']} -> {a['lookalike_false_alarms']} | "
                         f"{estimate if model == MODELS[0] else ''} |")
    lines += ["", "| model | after - before, mean ± sd over seeds (n) | P | R | F1 | look-alike FA |", "|---|---|---|---|---|---|"]
    for model in MODELS:
        cells = []
        for key in ("precision", "recall", "f1", "lookalike_false_alarms"):
            values = [r["after_minus_before"][model][key] for r in results]
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            cells.append(f"{statistics.mean(values):+.3f} ± {spread:.3f}")
        lines.append(f"| {model} | n = {len(results)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["table"]:  # python -m bench.review_loop table bench/results/review_loop_seed*.json
        print(table([json.loads(Path(path).read_text()) for path in argv[1:]]))
        return 0
    parser = argparse.ArgumentParser(prog="python -m bench.review_loop", description=__doc__.splitlines()[0])
    parser.add_argument("--pool", type=int, default=2000)
    parser.add_argument("--pool-seed", type=int, default=9)
    parser.add_argument("--reviews", type=int, default=100)
    parser.add_argument("--review-from", type=float, default=0.5)
    args = parser.parse_args(argv)
    params = load_params("params.yaml")
    load_start, seconds = load_average(), {}
    before = evaluation()
    pool = Path("data/pool")
    seconds["pool"] = run(sys.executable, "-m", "mona_pipeline.cli", "demo-data", "--pool", str(args.pool),
                          "--seed", str(args.pool_seed), "--pool-dir", str(pool))
    seconds["sort"] = run(sys.executable, "-m", "mona_pipeline.cli", "sort", str(pool / "images"), "--out",
                          "sorted/pool", "--run", "pool", "--action", "copy", "--review-from", str(args.review_from),
                          "--quiet")
    with open(pool / "labels.csv", newline="") as handle:
        truth = {row["path"].removeprefix("images/"): row for row in csv.DictReader(handle)}
    run_dir = Path("sorted/pool/runs/pool")
    with open_run(run_dir) as journal:
        entries = {entry.item_id: entry for entry in journal.entries()}
        order = verdicts.review_queue(journal)
        reviewed = order[:args.reviews]
        for item in reviewed:  # the user: y when she is in the picture, n when she is not
            verdicts.mark(journal, item, "yes" if truth[entries[item].name]["target"] == "1" else "no", queued=True)
        estimate = audit.estimate(journal, None, params.evaluate.target_precision)
    kept = [entry for entry in entries.values() if entry.decision == "keep"]
    true_precision = sum(truth[entry.name]["target"] == "1" for entry in kept) / len(kept) if kept else None
    keep = estimate.rates["keep"]
    low, high = keep.interval
    judged = [truth[entries[item].name] for item in reviewed]
    review = {
        "reviewed": len(reviewed), "by_decision": {d: sum(entries[i].decision == d for i in reviewed)
                                                   for d in verdicts.AUDITED},
        "confirmed": sum(row["target"] == "1" for row in judged), "rejected": sum(row["target"] != "1" for row in judged),
        "rejected_lookalikes": sum(row["target"] != "1" and row["kind"] == "lookalike" for row in judged),
        "pool_counts": {d: sum(e.decision == d for e in entries.values()) for d in ("keep", "review", "drop")},
        "keep_precision_estimate": keep.share, "keep_interval": [low, high], "keep_checked": keep.checked,
        "keep_precision_true": true_precision,
        "estimate_within_interval": true_precision is not None and low <= true_precision <= high,
        "audit_lines": estimate.lines()}
    review["audit_of_50_kept"] = audit_of_kept(run_dir, truth, 50)
    learned = learn.learn_run(run_dir, params.data.raw_dir, params.target)
    seconds["dvc_add"] = run("dvc", "add", "--quiet", str(params.data.raw_dir))
    seconds["dvc_repro"] = run("dvc", "repro")
    after = evaluation()
    difference = {model: {key: round(after[model][key] - before[model][key], 4) for key in METRICS}
                  for model in MODELS}
    path = write_result(f"review_loop_seed{params.train.seed}", {
        "train_seed": params.train.seed, "pool": args.pool, "pool_seed": args.pool_seed,
        "review_from": args.review_from, "review": review, "learned": learned.lines(), "before": before,
        "after": after, "after_minus_before": difference, "seconds": seconds}, load_start)
    print(json.dumps({"review": review, "after_minus_before": difference}, indent=1))
    print(f"written: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
