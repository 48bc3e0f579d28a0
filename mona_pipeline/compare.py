"""compare: the three-stage model against its baseline over DVC experiments, with the spread over seeds.

    dvc exp run --queue -S train.seed=1 -n seed-1        # one experiment per seed (and per variant:
    dvc exp run --queue -S train.seed=2 -n seed-2        #   -S train.lookalike_weight=3 -n weighted-seed-1)
    dvc queue start -j 2                                  # two side by side
    dvc exp show                                          # every experiment's params and metrics
    mona compare [--markdown reports/seeds.md]            # mean ± spread per variant, paired differences

DVC runs and stores the experiments; this module only adds what `dvc exp show` cannot: per variant
(experiments whose model-building params are equal except `train.seed`), the mean, standard deviation,
min and max of each metric of reports/metrics.json over its seeds, for both models, and the paired
difference three-stage minus baseline. Both models of one experiment share its seed, data and test
archive, so the difference is taken experiment by experiment; it is called better or worse only when
every seed agrees.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from mona_pipeline.errors import UserError
from mona_pipeline.markdown import markdown_table

MODELS = ("three_stage", "baseline")  # reports/metrics.json's sections
SEED = "train.seed"
LOWER_IS_BETTER = {"lookalike_false_alarms", "false_alarms", "ece"}
METRICS_FILE = "reports/metrics.json"  # evaluate's DVC metrics: both models on the test archive


@dataclass(frozen=True)
class Experiment:
    """One row of `dvc exp show`: its name, the params that build the models, and evaluate's metrics."""

    name: str
    params: dict[str, object]  # dotted params.yaml keys that are stage dependencies
    metrics: dict[str, dict[str, float]]  # {"three_stage": {"f1": ...}, "baseline": {...}}

    @property
    def seed(self) -> int:
        return int(self.params[SEED])

    @property
    def variant(self) -> tuple:
        return tuple(sorted((key, json.dumps(value)) for key, value in self.params.items() if key != SEED))


def experiments_from_json(commits: list[dict]) -> list[Experiment]:
    """`dvc exp show --json --param-deps` -> the workspace and every finished experiment with both models'
    metrics. Commit rows are left out (their metrics may come from another machine); a row identical to one
    already kept (an applied experiment is also the workspace) is kept once."""
    found, seen = [], set()
    for commit in commits:
        rows = [("workspace" if commit["rev"] == "workspace" else None, commit)]
        for experiment in commit.get("experiments") or []:
            state = (experiment.get("executor") or {}).get("state")
            rows += [(revision.get("name") or experiment.get("name"), revision)
                     for revision in experiment.get("revs", []) if state in (None, "success")]
        for name, row in rows:
            if name is None or row.get("error"):
                continue
            data = row.get("data") or {}
            params = flatten(((data.get("params") or {}).get("params.yaml") or {}).get("data") or {})
            metrics = ((data.get("metrics") or {}).get(METRICS_FILE) or {}).get("data") or {}
            if SEED not in params or not all(isinstance(metrics.get(model), dict) for model in MODELS):
                continue
            fingerprint = json.dumps([params, metrics], sort_keys=True)
            if fingerprint not in seen:
                seen.add(fingerprint)
                found.append(Experiment(name, params, {model: metrics[model] for model in MODELS}))
    return found


def flatten(tree: dict, prefix: str = "") -> dict[str, object]:
    """{"train": {"seed": 1}} -> {"train.seed": 1}"""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat |= flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def spread(values: list[float]) -> dict:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values), "values": values}


def summarise(experiments: list[Experiment]) -> list[dict]:
    """Per variant with >= 2 seeds: its seeds, its params that differ from the other variants', and per
    metric the spread of each model and of the paired difference."""
    variants: dict[tuple, list[Experiment]] = {}
    for experiment in experiments:
        variants.setdefault(experiment.variant, []).append(experiment)
    shared = set.intersection(*(set(key) for key in variants)) if variants else set()
    summaries = []
    for key, members in variants.items():
        members = sorted({e.seed: e for e in members}.values(), key=lambda e: e.seed)  # one row per seed
        if len(members) < 2:
            continue
        metrics = [m for m in members[0].metrics["three_stage"] if all(m in e.metrics[x] for e in members
                                                                        for x in MODELS)]
        summaries.append({
            "variant": ", ".join(f"{k}={json.loads(v)}" for k, v in key if (k, v) not in shared) or "params.yaml",
            "seeds": [e.seed for e in members], "experiments": [e.name for e in members],
            "metrics": {metric: {
                **{model: spread([e.metrics[model][metric] for e in members]) for model in MODELS},
                "difference": spread([e.metrics["three_stage"][metric] - e.metrics["baseline"][metric]
                                      for e in members])} for metric in metrics}})
    return summaries


def verdict(metric: str, difference: dict) -> str:
    """Better/worse only when every seed agrees (the paired difference never changes sign)."""
    better_sign = -1 if metric in LOWER_IS_BETTER else 1
    if all(better_sign * d > 0 for d in difference["values"]):
        return "three-stage better on every seed"
    if all(better_sign * d < 0 for d in difference["values"]):
        return "baseline better on every seed"
    return "within the seeds' spread"


def _cell(s: dict, metric: str) -> str:
    if metric.endswith("false_alarms"):
        return f"{s['mean']:.1f} ± {s['std']:.1f} ({s['min']:.0f} to {s['max']:.0f})"
    return f"{s['mean']:.3f} ± {s['std']:.3f} ({s['min']:.3f} to {s['max']:.3f})"


def render(summaries: list[dict]) -> str:
    """The summaries as Markdown: one table per variant."""
    if not summaries:
        return ("No variant has finished experiments with two or more seeds yet: queue some with "
                "`dvc exp run --queue -S train.seed=N`, then `dvc queue start`.\n")
    parts = ["# Three-stage curriculum vs baseline, over seeds", "",
             "Mean ± standard deviation (min to max) over the seeds of each variant; the difference is taken "
             "experiment by experiment (both models share its seed and data) and is called better only when "
             "every seed agrees. From `dvc exp show`: reports/metrics.json of each experiment.", ""]
    for summary in summaries:
        rows = [[metric, _cell(values["three_stage"], metric), _cell(values["baseline"], metric),
                 _cell(values["difference"], metric), verdict(metric, values["difference"])]
                for metric, values in summary["metrics"].items()]
        parts += [f"## {summary['variant']}: seeds {', '.join(map(str, summary['seeds']))}", "",
                  markdown_table(["metric", "three-stage", "baseline", "three-stage minus baseline", "verdict"],
                                 rows), ""]
    return "\n".join(parts)


def collect(repo: Path = Path(".")) -> list[Experiment]:
    """The repository's finished experiments (and its workspace), from `dvc exp show --json`.

    Raises:
        UserError: DVC could not list them (not a DVC repository, say); with DVC's message.
    """
    command = [sys.executable, "-m", "dvc", "exp", "show", "--json", "--param-deps"]
    listed = subprocess.run(command, cwd=repo, capture_output=True, text=True)
    if listed.returncode != 0:
        raise UserError(f"`dvc exp show` failed in {Path(repo).absolute()}: {listed.stderr.strip()[-500:]}")
    return experiments_from_json(json.loads(listed.stdout))


