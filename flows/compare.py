"""The seed comparison as a Prefect flow; `dvc repro compare` (or `make compare`) runs it as

    python -m flows.compare [--params params.yaml]

One task per seed (each trains the curriculum and the baseline, then evaluates both, in a Python process of
its own); as many seeds run side by side as the machine has cores, since one training keeps about one core
busy. The flow writes the summary and publishes it as an artifact.
"""

import os
import sys
from pathlib import Path

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner

from flows.stage import stage_main, stage_run_name
from mona_pipeline import compare
from mona_pipeline.config import load_params

SIDE_BY_SIDE = os.cpu_count() or 1  # seeds training at once (a training keeps about one core busy)


@task(cache_policy=NO_CACHE, task_run_name="train and evaluate seed {seed}")
def seed_task(params_file: Path, seed: int) -> dict:
    return compare.train_seed_in_process(params_file, seed)


@flow(name="compare", flow_run_name=stage_run_name, log_prints=True,
      task_runner=ThreadPoolTaskRunner(max_workers=SIDE_BY_SIDE))
def compare_flow(params_file: Path = Path("params.yaml")) -> dict:
    """Three-stage vs baseline over params.compare.seeds: mean and spread of every headline metric."""
    params = load_params(params_file)
    futures = {seed: seed_task.submit(params_file, seed) for seed in params.compare.seeds}
    per_seed = {seed: future.result() for seed, future in futures.items()}
    summary = compare.write_summary(per_seed)
    markdown = compare.render(summary)
    create_markdown_artifact(key="compare", markdown=markdown)
    print(markdown)
    return summary


if __name__ == "__main__":
    sys.exit(stage_main(compare_flow))
