"""Model-building flows, one per DVC stage. `dvc repro` runs each stage as

    python -m flows.build ingest [--params params.yaml]

With PREFECT_API_URL set the runs appear on that server (and its UI); without
it Prefect starts a temporary local API for the run, so nothing needs the internet.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from mona_pipeline import evaluate, ingest, shards, train
from mona_pipeline.config import Params, load_params
from mona_pipeline.reporting import markdown_table


@task(cache_policy=NO_CACHE)
def ingest_task(params: Params) -> dict:
    return ingest.run_ingest(params.data, params.stages)


@task(cache_policy=NO_CACHE)
def shards_task(params: Params) -> dict:
    return shards.write_shards(params.data, params.shards, params.stages)


@flow(name="ingest", log_prints=True)
def ingest_flow(params_file: Path = Path("params.yaml")) -> dict:
    """Walk data/raw, decode and hash every picture, write the labelled manifest and the rejects."""
    params = load_params(params_file)
    summary = ingest_task(params)
    rows = [[tag, counts["train"], counts["validation"]] for tag, counts in summary["per_tag"].items()]
    rejects = [[path, reason] for path, reason in summary["rejects"].items()]
    create_markdown_artifact(
        key="ingest-summary",
        markdown=f"# Ingest\n{summary['pictures']} pictures in {summary['groups']} duplicate groups, "
                 f"{summary['rejected']} rejected.\n\n" + markdown_table(["tag", "train", "validation"], rows)
                 + ("\n\n## Rejected\n" + markdown_table(["path", "reason"], rejects) if rejects else ""),
    )
    return summary


@flow(name="shards", log_prints=True)
def shards_flow(params_file: Path = Path("params.yaml")) -> dict:
    """Resize every manifest picture once into TFRecord shards (train and validation apart)."""
    params = load_params(params_file)
    index = shards_task(params)
    rows = [[e["file"], e["pictures"], f"{e['bytes'] / 1e6:.1f}"] for e in index["shards"]]
    create_markdown_artifact(key="shards-index",
                             markdown="# Shards\n" + markdown_table(["file", "pictures", "MB"], rows))
    return index


@task(cache_policy=NO_CACHE)
def train_task(name: str, params: Params) -> dict:
    return train.train_stage(name, params)


@flow(name="train", log_prints=True)
def train_flow(stage: str, params_file: Path = Path("params.yaml")) -> dict:
    """Train one transfer stage (gender, lookalike, target) or the baseline; on a GPU when there is one."""
    params = load_params(params_file)
    metadata = train_task(stage, params)
    metrics = metadata["metrics"]
    create_markdown_artifact(
        key=f"train-{stage}",
        markdown=f"# Stage {stage}: {' vs '.join(metadata['class_names'])}\n"
                 f"{metadata['epochs']} epochs in {metadata['train_seconds']} s ({metadata['precision_policy']}); "
                 f"best validation accuracy {metrics['val_accuracy']:.3f}, loss {metrics['val_loss']:.3f} "
                 f"(epoch {metrics['best_epoch']}).")
    return metadata


@task(cache_policy=NO_CACHE)
def evaluate_task(params: Params) -> dict:
    return evaluate.run_evaluate(params)


@flow(name="evaluate", log_prints=True)
def evaluate_flow(params_file: Path = Path("params.yaml")) -> dict:
    """The paper's tables for the three-stage model and the baseline; published as an artifact."""
    params = load_params(params_file)
    result = evaluate_task(params)
    create_markdown_artifact(key="evaluation", markdown=result["markdown"])
    print(result["markdown"])
    return result["metrics"]


STAGES = ("ingest", "shards", "train_gender", "train_lookalike", "train_target", "baseline", "evaluate")


def run_stage(stage: str, params_file: Path) -> dict:
    """Run the flow behind one DVC stage."""
    if stage == "ingest":
        return ingest_flow(params_file)
    if stage == "shards":
        return shards_flow(params_file)
    if stage == "evaluate":
        return evaluate_flow(params_file)
    return train_flow(stage.removeprefix("train_"), params_file)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run one pipeline stage as a Prefect flow.")
    parser.add_argument("stage", choices=STAGES)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args(argv)
    run_stage(args.stage, args.params)
    return 0


if __name__ == "__main__":
    sys.exit(main())
