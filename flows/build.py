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

from mona_pipeline import ingest, shards
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


FLOWS = {"ingest": ingest_flow, "shards": shards_flow}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run one pipeline stage as a Prefect flow.")
    parser.add_argument("stage", choices=sorted(FLOWS))
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args(argv)
    FLOWS[args.stage](params_file=args.params)
    return 0


if __name__ == "__main__":
    sys.exit(main())
