"""What every flow shares: the stage command line, run names and tags, and joining a build.

    python -m flows.<stage> [STAGE] [--params params.yaml]     # what `dvc repro` runs per stage

A stage's flow run is named from what it does (`train gender seed 7`) and tagged
with its stage and the project's git commit; Prefect's default names are random
words. Under `python -m flows.build` (one parent flow run around `dvc repro`) the
variable MONA_BUILD_TASK_RUN names the parent's task run, and each stage's run is
created as its child on the parent's server instead of as a top-level run on a
temporary server of its own.
"""

import argparse
import os
import subprocess
import sys
import uuid
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

from mona_pipeline.config import ParamsError, load_params

BUILD_TASK_RUN_VARIABLE = "MONA_BUILD_TASK_RUN"


@lru_cache(maxsize=1)
def code_version() -> str | None:
    """The project's git commit (short), with `+` when tracked files have changes; None outside git."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+" if dirty else "")


def with_commit(*tags: str) -> list[str]:
    version = code_version()
    return [tag for tag in tags if tag] + ([f"commit:{version}"] if version else [])


def tag_this_run(*tags: str, name: str | None = None) -> None:
    """Add tags (and the commit) to the flow run in progress, keeping those it has (from a deployment, say);
    and rename it when `name` is given."""
    from prefect.client.orchestration import get_client
    from prefect.runtime import flow_run

    if flow_run.id is None:
        return
    with get_client(sync_client=True) as client:
        current = client.read_flow_run(flow_run.id).tags
        client.update_flow_run(flow_run.id, tags=sorted(set(current) | set(with_commit(*tags))), name=name)


def stage_run_name() -> str:
    """`<flow> [<stage>]`, and the seed from the params file for training: `train gender seed 7`."""
    from prefect.runtime import flow_run

    parameters, name = flow_run.parameters, flow_run.flow_name
    what = f"{name} {parameters['stage']}" if parameters.get("stage") else name
    if name != "train":
        return what
    try:
        params = load_params(Path(parameters.get("params_file") or "params.yaml"))
    except (OSError, ParamsError):
        return what
    return f"{what} seed {params.train.seed}"


def run_stage_flow(stage_flow: Callable, parameters: dict[str, Any], tags: list[str]) -> Any:
    """Run the flow: as a child of a build's task run when MONA_BUILD_TASK_RUN is set, else on its own."""
    from prefect import tags as tags_context

    parent = os.environ.get(BUILD_TASK_RUN_VARIABLE)
    if not parent:
        with tags_context(*tags):
            return stage_flow(**parameters)
    from prefect.client.orchestration import get_client
    from prefect.flow_engine import run_flow

    with get_client(sync_client=True) as client:
        child = client.create_flow_run(stage_flow, parameters=parameters, tags=tags,
                                       parent_task_run_id=uuid.UUID(parent))
    return run_flow(stage_flow, flow_run=child, parameters=parameters)


def stage_main(stage_flow: Callable, stages: tuple[str, ...] = (), argv: list[str] | None = None) -> int:
    """Parse the arguments and run the flow; a bad params file is one clear line, not a traceback.

    Args:
        stages: the flow's first argument's allowed values, when it takes one (train).
    """
    parser = argparse.ArgumentParser(prog=f"python -m flows.{stage_flow.name}", description=stage_flow.description)
    if stages:
        parser.add_argument("stage", choices=stages)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args(argv)
    parameters = ({"stage": args.stage} if stages else {}) | {"params_file": args.params}
    dvc_stage = stage_flow.name if not stages else (  # dvc.yaml's name: train_gender ... baseline
        args.stage if args.stage == "baseline" else f"{stage_flow.name}_{args.stage}")
    try:
        load_params(args.params)  # a bad file is one clear line here, before a flow run logs it as a crash
        run_stage_flow(stage_flow, parameters, with_commit("stage", f"stage:{dvc_stage}"))
    except ParamsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0
