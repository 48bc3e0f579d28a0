"""The evaluate stage as a Prefect flow; `dvc repro` runs it as

    python -m flows.evaluate [--params params.yaml]
"""

import sys
from pathlib import Path

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from flows.stage import stage_main, stage_run_name
from mona_pipeline import evaluate
from mona_pipeline.config import Params, load_params


@task(cache_policy=NO_CACHE)
def evaluate_task(params: Params) -> dict:
    return evaluate.run_evaluate(params)


@flow(name="evaluate", flow_run_name=stage_run_name, log_prints=True)
def evaluate_flow(params_file: Path = Path("params.yaml")) -> dict:
    """The paper's tables for the three-stage model and the baseline; published as an artifact."""
    params = load_params(params_file)
    result = evaluate_task(params)
    create_markdown_artifact(key="evaluation", markdown=result["markdown"])
    print(result["markdown"])
    return result["metrics"]


if __name__ == "__main__":
    sys.exit(stage_main(evaluate_flow))
