"""The ingest stage as a Prefect flow; `dvc repro` runs it as

    python -m flows.ingest [--params params.yaml]

Before the flow starts, the project is checked (`mona check`'s errors and warnings): a set-up
with errors stops here, in seconds, with a table of what to fix.

With PREFECT_API_URL set the run appears on that server (and its UI); without
it Prefect starts a temporary local API for the run, so nothing needs the internet.
"""

import sys
from pathlib import Path

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from flows.stage import stage_main, stage_run_name
from mona_pipeline import ingest
from mona_pipeline.check import check_before_ingest
from mona_pipeline.config import Params, load_params
from mona_pipeline.markdown import markdown_table


@task(cache_policy=NO_CACHE)
def ingest_task(params: Params) -> dict:
    return ingest.run_ingest(params.data, params.stages)


@flow(name="ingest", flow_run_name=stage_run_name, log_prints=True)
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


if __name__ == "__main__":
    sys.exit(stage_main(ingest_flow, precheck=check_before_ingest))
