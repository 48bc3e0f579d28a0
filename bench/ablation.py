"""Ablation: train the three-stage curriculum with changed params over seeds, against the baseline.

    python -m bench.ablation run moved_epochs stages.gender.finetune_epochs=5 stages.target.finetune_epochs=37 --seeds 42
    python -m bench.ablation run target_lr stages.target.finetune_learning_rate=0.002 --reuse-from moved_epochs
    python -m bench.ablation summary          # -> bench/results/ablation.{json,md}

Run from a checkout whose demo data and shards exist (`make demo`, or `mona demo-data` + `dvc repro shards`).
Each (variant, seed) trains gender -> lookalike -> target into <work>/<variant>/seed-<n>/ and evaluates the
target model with the pipeline's own `run_evaluate` (params.yaml's tiling). One process per seed, so two seeds
can train side by side on two cores.

The baseline is trained only when the variant changes it (its epochs, learning rate, model, data or training
settings): otherwise training is deterministic (issue 9, item 1) and the reference seed comparison (the same
seeds) already holds the baseline's numbers for exactly these weights.
`--reuse-from` copies the gender and lookalike models of another variant's seed when the variant changes only
the target stage (the copy is the same model its training would give).

The summary gives, per variant, mean ± standard deviation over its seeds and the paired difference from the
baseline seed by seed; the first row is the three-stage column of the seed comparison the ablation started
from (bench/results/compare_0947c03.json). Overrides are relative to the params.yaml of the run.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import yaml

from bench.common import RESULTS, cpu_model, load_average

WORK = Path("/tmp/mona-ablation")
# The seed comparison of the params the ablation started from (reports/compare.json at commit 0947c03: gender 25
# epochs, target 3 + 17 at a fine-tuning rate of 0.001): its baseline column is every variant's reference.
REFERENCE = RESULTS / "compare_0947c03.json"
REFERENCE_NAME = "0947c03 (before)"
# (set, metric) shown in the table; lower is better for the false alarms and ECE.
SHOWN = [("test", "f1"), ("test", "precision"), ("test", "recall"), ("test", "recall_in_distribution"),
         ("test", "recall_held_out"), ("test", "lookalike_false_alarms"), ("test", "ece"), ("validation", "f1")]


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """`a.b.c=value` (value read as YAML) set into the raw params mapping; unknown keys fail in validation."""
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"override {item!r} is not key=value")
        node = raw
        *path, last = key.split(".")
        for part in path:
            node = node.setdefault(part, {})
        node[last] = yaml.safe_load(value)
    return raw


def load(overrides: list[str]):
    from mona_pipeline.config import Params

    return Params.model_validate(apply_overrides(yaml.safe_load(Path("params.yaml").read_text()), overrides))


def baseline_changed(params, default) -> bool:
    """Whether the variant's baseline would train differently from the default's."""
    from mona_pipeline.train import plan_stage

    same_plan = plan_stage("baseline", params, WORK) == plan_stage("baseline", default, WORK)
    same_setup = (params.model == default.model and params.shards == default.shards and params.target == default.target
                  and params.train.model_copy(update={"seed": 0}) == default.train.model_copy(update={"seed": 0})
                  and params.stages.target.classes == default.stages.target.classes
                  and params.stages.target.threshold == default.stages.target.threshold)
    return not (same_plan and same_setup)


def run(name: str, overrides: list[str], seeds: list[int], reuse_from: str | None, work: Path) -> None:
    from mona_pipeline.compare import CURRICULUM
    from mona_pipeline.evaluate import TABLE_NAME, run_evaluate
    from mona_pipeline.train import train_stage

    params, default = load(overrides), load([])
    with_baseline = baseline_changed(params, default)
    for seed in seeds:
        seeded = params.model_copy(update={"train": params.train.model_copy(update={"seed": seed})})
        seed_dir = work / name / f"seed-{seed}"
        models_dir = seed_dir / "models"
        start = time.perf_counter()
        stages = list(CURRICULUM)
        if reuse_from:
            for stage in ("gender", "lookalike"):
                source = work / reuse_from / f"seed-{seed}" / "models" / stage
                if not source.is_dir():
                    raise SystemExit(f"--reuse-from {reuse_from}: {source} does not exist; run that variant first")
                shutil.rmtree(models_dir / stage, ignore_errors=True)
                shutil.copytree(source, models_dir / stage)
            stages = ["target"]
        for stage in stages + (["baseline"] if with_baseline else []):
            train_stage(stage, seeded, models_dir)
        models = {"three_stage": models_dir / "target"}
        if with_baseline:
            models["baseline"] = models_dir / "baseline"
        reports = seed_dir / "reports"
        run_evaluate(seeded, reports, reports / "metrics.json", models=models)
        table = json.loads((reports / TABLE_NAME).read_text())
        record = {"variant": name, "overrides": overrides, "seed": seed, "reuse_from": reuse_from,
                  "baseline_trained": with_baseline, "seconds": round(time.perf_counter() - start, 1),
                  "cpu": cpu_model(), "load_average_end": load_average(), "table": table}
        (seed_dir / "result.json").write_text(json.dumps(record, indent=2))
        print(f"{name} seed {seed}: test F1 {table['three_stage']['test']['f1']:.3f} "
              f"({record['seconds']:.0f} s)", flush=True)


def spread(values: list[float]) -> str:
    from mona_pipeline.compare import spread as mean_and_spread

    result = mean_and_spread(values)
    return f"{result['mean']:.3f} ± {result['std']:.3f}"


def summary(work: Path) -> dict:
    compare = json.loads(REFERENCE.read_text())
    seeds = compare["seeds"]
    baseline = {key: dict(zip(seeds, value["values"])) for key, value in compare["models"]["baseline"].items()}
    variants = {REFERENCE_NAME: {"overrides": [], "per_seed": {
        seed: {key: value["values"][index] for key, value in compare["models"]["three_stage"].items()}
        for index, seed in enumerate(seeds)}, "baseline": baseline}}
    for result_file in sorted(work.glob("*/seed-*/result.json")):
        record = json.loads(result_file.read_text())
        variant = variants.setdefault(record["variant"], {"overrides": record["overrides"], "per_seed": {},
                                                          "baseline": {}, "seconds": []})
        flat = {f"{s}.{m}": value for s, metrics in record["table"]["three_stage"].items() for m, value in metrics.items()}
        variant["per_seed"][record["seed"]] = flat
        variant["seconds"].append(record["seconds"])
        if record["baseline_trained"]:
            for s, metrics in record["table"]["baseline"].items():
                for m, value in metrics.items():
                    variant["baseline"].setdefault(f"{s}.{m}", {})[record["seed"]] = value
    rows = variant_rows(variants)
    if not rows:
        raise SystemExit(f"no results under {work}")
    result = {"cpu": cpu_model(), "variants": variants, "rows": rows}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ablation.json").write_text(json.dumps(result, indent=2, default=str))
    (RESULTS / "ablation.md").write_text(render(result))
    return result


def variant_rows(variants: dict) -> list[dict]:
    rows = []
    for name, variant in variants.items():
        baseline = variant["baseline"] or variants[REFERENCE_NAME]["baseline"]
        seeds = sorted(seed for seed in variant["per_seed"] if all(seed in baseline.get(f"{s}.{m}", {})
                                                                   for s, m in SHOWN))
        if not seeds:
            continue
        row = {"variant": name, "overrides": " ".join(variant["overrides"]) or "(params.yaml at 0947c03)",
               "seeds": seeds}
        for s, m in SHOWN:
            key = f"{s}.{m}"
            ours = [variant["per_seed"][seed][key] for seed in seeds]
            row[key] = spread(ours)
            row[f"{key} vs baseline"] = spread([a - baseline[key][seed] for a, seed in zip(ours, seeds)])
        rows.append(row)
    return rows


def render(result: dict) -> str:
    from mona_pipeline.markdown import markdown_table

    headers = ["variant", "seeds", "test F1", "F1 minus baseline", "precision", "recall", "recall in-dist",
               "recall held-out", "look-alike FA", "FA minus baseline", "ECE", "validation F1"]
    rows = [[r["variant"], ", ".join(map(str, r["seeds"])), r["test.f1"], r["test.f1 vs baseline"],
             r["test.precision"], r["test.recall"], r["test.recall_in_distribution"], r["test.recall_held_out"],
             r["test.lookalike_false_alarms"], r["test.lookalike_false_alarms vs baseline"], r["test.ece"],
             r["validation.f1"]] for r in result["rows"]]
    overrides = [f"- **{r['variant']}**: `{r['overrides']}`" for r in result["rows"]]
    return "\n".join(["# Ablation: the three-stage model's variants against the baseline", "",
                      f"Mean ± standard deviation over the seeds named; differences are paired by seed against "
                      f"the baseline of the same seed and settings. Every variant is params.yaml of the run "
                      f"(0947c03's for the runs recorded here) with the overrides listed below. Test = the 840-"
                      f"picture demo archive, at the model's threshold, tiling auto. CPU: {result['cpu']}. "
                      f"Made by `python -m bench.ablation summary`.", "",
                      markdown_table(headers, rows), "", *overrides, ""])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=WORK, help="where models and reports go (default %(default)s)")
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="train and evaluate one variant")
    run_parser.add_argument("name")
    run_parser.add_argument("overrides", nargs="*", help="dotted params.yaml keys: stages.target.finetune_epochs=30")
    run_parser.add_argument("--seeds", type=int, nargs="+", default=None, help="default: compare.seeds")
    run_parser.add_argument("--reuse-from", default=None, help="variant whose gender and lookalike models to copy")
    commands.add_parser("summary", help="write bench/results/ablation.{json,md}")
    args = parser.parse_args(argv)
    if args.command == "run":
        seeds = args.seeds or load(args.overrides).compare.seeds
        run(args.name, args.overrides, seeds, args.reuse_from, args.work)
    else:
        print(render(summary(args.work)))


if __name__ == "__main__":
    sys.exit(main())
