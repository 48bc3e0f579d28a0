"""The evaluate stage of a character (params.characters); `dvc repro` runs it as

    python -m flows.evaluate_character <name> [--params params.yaml]    # dvc.yaml: evaluate_character@<name>
"""

import json
import sys
from pathlib import Path

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from flows.evaluate import figures_markdown
from flows.stage import stage_main, stage_run_name
from mona_pipeline.config import Params, load_params
from mona_pipeline.evaluate.paths import TABLE_NAME
from mona_pipeline.evaluate.run import Evaluation, character_reports, evaluate_character


@task(cache_policy=NO_CACHE)
def evaluate_character_task(params: Params, name: str) -> Evaluation:
    return evaluate_character(params, name)


@flow(name="evaluate_character", flow_run_name=stage_run_name, log_prints=True)
def evaluate_character_flow(stage: str, params_file: Path = Path("params.yaml")) -> dict:
    """One more character's model (models/<name>) on her validation split and the test archive."""
    params = load_params(params_file)
    evaluation = evaluate_character_task(params, stage)
    folder = character_reports(stage)
    create_markdown_artifact(key=f"evaluation-{stage.replace('_', '-').lower()}", markdown=evaluation.markdown +
                             figures_markdown(folder, ("precision_recall.png", f"precision-recall, {stage}")))
    print(evaluation.markdown)
    return json.loads((folder / TABLE_NAME).read_text())


def characters(params: Params) -> tuple[str, ...]:
    return tuple(params.characters)


if __name__ == "__main__":
    sys.exit(stage_main(evaluate_character_flow, stages=characters,
                        dvc_stage=lambda name, params: f"evaluate_character@{name}"))
