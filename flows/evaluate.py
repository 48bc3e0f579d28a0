"""The evaluate stage as a Prefect flow; `dvc repro` runs it as

    python -m flows.evaluate [--params params.yaml]
"""

import base64
import json
import sys
from pathlib import Path

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from flows.stage import stage_main, stage_run_name
from mona_pipeline.config import Params, load_params
from mona_pipeline.evaluate.paths import REPORTS_DIR, TABLE_NAME
from mona_pipeline.evaluate.run import Evaluation, run_evaluate


@task(cache_policy=NO_CACHE)
def evaluate_task(params: Params) -> Evaluation:
    return run_evaluate(params)


@flow(name="evaluate", flow_run_name=stage_run_name, log_prints=True)
def evaluate_flow(params_file: Path = Path("params.yaml")) -> dict:
    """The paper's tables for the three-stage model and the baseline; published as an artifact."""
    params = load_params(params_file)
    evaluation = evaluate_task(params)
    create_markdown_artifact(key="evaluation", markdown=evaluation.markdown + figures_markdown(
        REPORTS_DIR, ("precision_recall.png", "precision-recall, both models"),
        ("reliability.png", "reliability")))
    print(evaluation.markdown)
    return json.loads((REPORTS_DIR / TABLE_NAME).read_text())  # the main numbers


def figures_markdown(folder: Path, *figures: tuple[str, str]) -> str:
    """The evaluation's PNG figures as inline images (the Prefect UI renders data URIs; files it cannot reach)."""
    parts = []
    for name, caption in figures:
        if (folder / name).is_file():
            data = base64.b64encode((folder / name).read_bytes()).decode()
            parts.append(f"\n\n## {caption}\n![{caption}](data:image/png;base64,{data})")
    return "".join(parts)


if __name__ == "__main__":
    sys.exit(stage_main(evaluate_flow))
