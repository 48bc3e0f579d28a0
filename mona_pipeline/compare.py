"""compare: the three-stage model against its baseline over several seeds, with the spread.

    make compare                      # = dvc repro compare: seeds from params.yaml's compare.seeds
    python -m flows.compare           # the same as a Prefect flow: seeds side by side, one process each
    python -m mona_pipeline.compare --seed 1    # one seed (what each of the flow's processes runs)

One seed is one claim's worth of noise: the previous three runs of one configuration gave test F1 from
20% to 72%. Each seed trains the whole curriculum (gender -> lookalike -> target) and the baseline into
models/compare/seed-<n>/ (train.seed's are the pipeline's own models/target and models/baseline, not
trained twice) and evaluates both into reports/compare/seed-<n>/; reports/compare.{json,md} hold, per model and
metric, the mean, standard deviation, min and max over seeds, and the three-stage minus baseline
difference seed by seed (paired: both models of a seed share its data order).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

from mona_pipeline.config import Params, ParamsError, load_params
from mona_pipeline.evaluate import MODELS as PIPELINE_MODELS
from mona_pipeline.evaluate import TABLE_NAME, run_evaluate
from mona_pipeline.markdown import markdown_table
from mona_pipeline.models import MODEL_FILE
from mona_pipeline.train import train_stage

MODELS_ROOT, REPORTS_DIR = Path("models/compare"), Path("reports/compare")
SUMMARY_JSON, SUMMARY_MD = Path("reports/compare.json"), Path("reports/compare.md")
CURRICULUM = ("gender", "lookalike", "target")
# (set, metric) pairs compared; higher is better except where named in LOWER_IS_BETTER.
METRICS = [("test", "f1"), ("test", "precision"), ("test", "recall"), ("test", "recall_in_distribution"),
           ("test", "recall_held_out"), ("test", "lookalike_false_alarms"), ("test", "false_alarms"),
           ("test", "ece"), ("test", "roc_auc"), ("validation", "f1"), ("validation", "recall"),
           # multi-scale tiling (params.yaml's tiling section) against whole pictures alone
           ("test", "recall_small"), ("test", "recall_small_untiled"), ("test", "precision_untiled")]
LOWER_IS_BETTER = {"lookalike_false_alarms", "false_alarms", "ece"}


def train_seed(params: Params, seed: int, models_root: Path = MODELS_ROOT,
               reports_dir: Path = REPORTS_DIR, trained: dict[str, Path] | None = None) -> dict:
    """Train the curriculum and the baseline with one seed and evaluate both. Returns evaluate's metrics table.

    Args:
        trained: the two models already trained with this seed ({"three_stage": ..., "baseline": ...}):
            evaluated, not trained again (the pipeline's own models for train.seed; same seed, same weights).
    """
    seeded = params.model_copy(update={"train": params.train.model_copy(update={"seed": seed})})
    models_dir = models_root / f"seed-{seed}"
    if trained is None:
        for stage in (*CURRICULUM, "baseline"):
            train_stage(stage, seeded, models_dir)
        trained = {"three_stage": models_dir / "target", "baseline": models_dir / "baseline"}
    seed_dir = reports_dir / f"seed-{seed}"
    run_evaluate(seeded, seed_dir, seed_dir / "metrics.json", models=trained)
    return json.loads((seed_dir / TABLE_NAME).read_text())


def train_seed_in_process(params_file: Path, seed: int, reports_dir: Path = REPORTS_DIR) -> dict:
    """`train_seed` in a Python process of its own, so that seeds can train side by side: TensorFlow's
    precision policy, random seeds and determinism switch are per process. Returns its metrics table.

    Raises:
        RuntimeError: the child failed (its output, above, says why).
    """
    command = [sys.executable, "-m", "mona_pipeline.compare", "--params", str(params_file), "--seed", str(seed)]
    finished = subprocess.run(command)
    if finished.returncode != 0:
        raise RuntimeError(f"seed {seed}: training or evaluation failed (exit {finished.returncode}); "
                           f"its output is above")
    return json.loads((reports_dir / f"seed-{seed}" / TABLE_NAME).read_text())


def spread(values: list[float]) -> dict:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values), "values": values}


def summarise(per_seed: dict[int, dict]) -> dict:
    """Mean and spread per model and metric, and the paired three-stage minus baseline difference."""
    summary: dict = {"seeds": list(per_seed), "models": {}, "three_stage_minus_baseline": {}}
    for model in ("three_stage", "baseline"):
        summary["models"][model] = {f"{name}.{metric}": spread([m[model][name][metric] for m in per_seed.values()])
                                    for name, metric in METRICS if metric in next(iter(per_seed.values()))[model][name]}
    for key in summary["models"]["three_stage"]:
        name, metric = key.split(".")
        differences = [m["three_stage"][name][metric] - m["baseline"][name][metric] for m in per_seed.values()]
        summary["three_stage_minus_baseline"][key] = spread(differences)
    return summary


def _verdict(metric: str, difference: dict) -> str:
    """Better/worse only when every seed agrees (the paired difference never changes sign)."""
    better_sign = -1 if metric in LOWER_IS_BETTER else 1
    if all(better_sign * d > 0 for d in difference["values"]):
        return "three-stage better on every seed"
    if all(better_sign * d < 0 for d in difference["values"]):
        return "baseline better on every seed"
    return "within the seeds' spread"


def render(summary: dict) -> str:
    def cell(s: dict, metric: str) -> str:
        if metric.endswith("false_alarms"):
            return f"{s['mean']:.1f} ± {s['std']:.1f} ({s['min']:.0f}-{s['max']:.0f})"
        return f"{s['mean']:.3f} ± {s['std']:.3f} ({s['min']:.3f}-{s['max']:.3f})"

    rows = []
    for key, difference in summary["three_stage_minus_baseline"].items():
        metric = key.split(".")[1]
        rows.append([key, cell(summary["models"]["three_stage"][key], metric),
                     cell(summary["models"]["baseline"][key], metric), cell(difference, metric),
                     _verdict(metric, difference)])
    seeds = ", ".join(map(str, summary["seeds"]))
    return "\n".join([
        "# Three-stage curriculum vs baseline, over seeds", "",
        f"Seeds {seeds}: mean ± standard deviation (min-max). Each seed trains both models on the same data; the "
        "difference is taken seed by seed. test = the labelled archive (recall_held_out: the parts training never "
        "shows); validation = the target stage's validation split.", "",
        markdown_table(["set.metric", "three-stage", "baseline", "three-stage minus baseline", "verdict"], rows), ""])


def already_trained(params: Params, seed: int,
                    pipeline_models: dict[str, Path] | None = PIPELINE_MODELS) -> dict[str, Path] | None:
    """The pipeline's own models (DVC's train stages) when `seed` is their train.seed and they exist."""
    if pipeline_models and seed == params.train.seed and all(
            (folder / MODEL_FILE).is_file() for folder in pipeline_models.values()):
        return dict(pipeline_models)
    return None


def write_summary(per_seed: dict[int, dict], summary_json: Path = SUMMARY_JSON,
                  summary_md: Path = SUMMARY_MD) -> dict:
    summary = summarise(per_seed)
    summary_json.parent.mkdir(parents=True, exist_ok=True)
    summary_json.write_text(json.dumps(summary, indent=2))
    summary_md.write_text(render(summary))
    return summary


def main(argv: list[str] | None = None) -> int:
    """One seed of the comparison: `python -m mona_pipeline.compare --seed 1` (the flow runs one per seed)."""
    parser = argparse.ArgumentParser(prog="python -m mona_pipeline.compare", description=main.__doc__)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--seed", type=int, required=True)
    args = parser.parse_args(argv)
    try:
        params = load_params(args.params)
    except ParamsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    train_seed(params, args.seed, trained=already_trained(params, args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
