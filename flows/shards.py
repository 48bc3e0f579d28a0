"""The shards stage as a Prefect flow; `dvc repro` runs it as

    python -m flows.shards [--params params.yaml]
"""

import sys
from pathlib import Path

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from flows.stage import stage_main, stage_run_name
from mona_pipeline import shards
from mona_pipeline.config import Params, load_params
from mona_pipeline.markdown import markdown_table


@task(cache_policy=NO_CACHE)
def shards_task(params: Params) -> dict:
    return shards.write_shards(params.data, params.shards, params.stages, params.tiling)


@flow(name="shards", flow_run_name=stage_run_name, log_prints=True)
def shards_flow(params_file: Path = Path("params.yaml")) -> dict:
    """Resize every manifest picture once into TFRecord shards (train and validation apart)."""
    params = load_params(params_file)
    index = shards_task(params)
    rows = [[e["file"], e["pictures"], f"{e['bytes'] / 1e6:.1f}"] for e in index["shards"]]
    create_markdown_artifact(key="shards-index",
                             markdown="# Shards\n" + markdown_table(["file", "pictures", "MB"], rows))
    return index


if __name__ == "__main__":
    sys.exit(stage_main(shards_flow))
