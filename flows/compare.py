"""The seed comparison as a Prefect flow; `dvc repro compare` (or `make compare`) runs it as

    python -m flows.compare [--params params.yaml]

One task per seed (each trains the curriculum and the baseline, then evaluates both); the flow writes
the summary and publishes it as an artifact.
"""

import sys
from pathlib import Path

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from flows.stage import stage_main, stage_run_name
from mona_pipeline import compare
from mona_pipeline.config import Params, load_params


@task(cache_policy=NO_CACHE, task_run_name="train and evaluate seed {seed}")
def seed_task(params: Params, seed: int) -> dict:
    return compare.train_seed(params, seed, trained=compare.already_trained(params, seed))


@flow(name="compare", flow_run_name=stage_run_name, log_prints=True)
def compare_flow(params_file: Path = Path("params.yaml")) -> dict:
    """Three-stage vs baseline over params.compare.seeds: mean and spread of every headline metric."""
    params = load_params(params_file)
    per_seed = {seed: seed_task(params, seed) for seed in params.compare.seeds}
    summary = compare.write_summary(per_seed)
    markdown = compare.render(summary)
    create_markdown_artifact(key="compare", markdown=markdown)
    print(markdown)
    return summary


if __name__ == "__main__":
    sys.exit(stage_main(compare_flow))
