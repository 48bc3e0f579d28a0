"""The training stages as a Prefect flow; `dvc repro` runs each as

    python -m flows.train gender|lookalike|target|baseline|<character> [--params params.yaml]

A character (params.characters) is the target stage trained again for her, from models/lookalike
(mona_pipeline/characters.py).

On a GPU when there is one (train.resolve_precision / resolve_strategy).
"""

import sys
import time
from pathlib import Path

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from flows.stage import stage_main, stage_run_name
from mona_pipeline import train
from mona_pipeline.config import Params, load_params
from mona_pipeline.trained import ModelMetadata


@task(cache_policy=NO_CACHE)
def train_task(name: str, params: Params) -> ModelMetadata:
    return train.train_stage(name, params)


@flow(name="train", flow_run_name=stage_run_name, log_prints=True)
def train_flow(stage: str, params_file: Path = Path("params.yaml")) -> dict:
    """Train one transfer stage (gender, lookalike, target), the baseline or a character."""
    params = load_params(params_file)
    start = time.perf_counter()
    metadata = train_task(stage, params)
    seconds = time.perf_counter() - start
    metrics = metadata.metrics
    create_markdown_artifact(
        key=f"train-{stage}",
        markdown=f"# Stage {stage}: {' vs '.join(metadata.class_names)}\n"
                 f"{metadata.epochs} epochs in {seconds:.0f} s ({metadata.precision_policy}); "
                 f"best validation accuracy {metrics['val_accuracy']:.3f}, loss {metrics['val_loss']:.3f} "
                 f"(epoch {int(metrics['best_epoch'])}).")
    return {**metadata.model_dump(exclude={"history"}), "train_seconds": round(seconds, 1)}


def dvc_stage(stage: str, params: Params) -> str:
    """dvc.yaml's name of a training: train_gender ... baseline, train_character@<name>."""
    if stage in params.characters:
        return f"train_character@{stage}"
    return stage if stage == "baseline" else f"train_{stage}"


if __name__ == "__main__":
    sys.exit(stage_main(train_flow, stages=train.trainable, dvc_stage=dvc_stage))
