"""Two set-ups, paired by seed: each clone's reports/metrics.json (what `dvc repro` wrote), A minus B.

    python -m bench.variant_pairs --a ../v4-seed42 ../v4-seed1 ... --b ../v3-seed42 ../v3-seed1 ... \
        [--names V4 V3] [--out bench/results/variant_pairs.json]

`mona compare` pairs the three-stage model with the baseline inside one set-up; this pairs one set-up with
another (a params or code change), seed by seed: each folder's seed is its params.yaml's `train.seed`, and
only seeds both sides have count. Per model and metric: each side's mean ± sd and the paired difference,
plus the new default against the old one (`--default-a`, `--default-b`: the model each side's sort used).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml

from bench.common import RESULTS, cpu_model
from mona_pipeline.compare import spread

MODELS = ("three_stage", "baseline")


def by_seed(folders: list[Path]) -> dict[int, dict]:
    found = {}
    for folder in folders:
        seed = yaml.safe_load((folder / "params.yaml").read_text())["train"]["seed"]
        if seed in found:
            raise SystemExit(f"{folder}: seed {seed} twice on one side")
        found[seed] = json.loads((folder / "reports" / "metrics.json").read_text())
    return found


def _text(s: dict, signed: bool = False) -> str:
    sign = "+" if signed else ""
    return f"{s['mean']:{sign}.3f} ± {s['std']:.3f} ({s['min']:{sign}.3f} to {s['max']:{sign}.3f})"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--a", nargs="+", type=Path, required=True, help="clones of set-up A, one per seed")
    parser.add_argument("--b", nargs="+", type=Path, required=True, help="clones of set-up B, one per seed")
    parser.add_argument("--names", nargs=2, default=["A", "B"])
    parser.add_argument("--default-a", choices=MODELS, default="three_stage")
    parser.add_argument("--default-b", choices=MODELS, default="three_stage")
    parser.add_argument("--out", type=Path, default=RESULTS / "variant_pairs.json")
    args = parser.parse_args(argv)
    a, b = by_seed(args.a), by_seed(args.b)
    seeds = [seed for seed in a if seed in b]
    if len(seeds) < 2:
        raise SystemExit(f"seeds on both sides: {seeds}; a paired difference needs at least 2")
    metrics = [m for m in a[seeds[0]]["three_stage"] if all(m in side[s][x] for side in (a, b) for s in seeds
                                                             for x in MODELS)]
    name_a, name_b = args.names
    pairs = [(f"{model}", model, model) for model in MODELS] + [
        (f"default: {name_a} {args.default_a} minus {name_b} {args.default_b}", args.default_a, args.default_b)]
    result = {"cpu": cpu_model(), "seeds": seeds, "a": name_a, "b": name_b, "rows": []}
    lines = [f"| model | metric | {name_a} | {name_b} | {name_a} minus {name_b} |", "|---|---|---|---|---|"]
    for label, model_a, model_b in pairs:
        for metric in metrics:
            left = spread([a[s][model_a][metric] for s in seeds])
            right = spread([b[s][model_b][metric] for s in seeds])
            difference = spread([a[s][model_a][metric] - b[s][model_b][metric] for s in seeds])
            result["rows"].append({"model": label, "metric": metric, name_a: left, name_b: right,
                                   "difference": difference})
            lines.append(f"| {label} | {metric} | {_text(left)} | {_text(right)} | {_text(difference, True)} |")
    args.out.write_text(json.dumps(result, indent=1))
    print(f"seeds {seeds} ({result['cpu']})")
    print("\n".join(lines))
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
