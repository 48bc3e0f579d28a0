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
import logging
import os
import subprocess
import sys
import time
import uuid
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

from mona_pipeline.config import Params, ParamsError, load_params
from mona_pipeline.errors import UserError

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


class TemporaryServerLines(logging.Filter):
    """Without PREFECT_API_URL every stage process of a `dvc repro` starts Prefect's temporary server, and
    Prefect says so in three lines each time (start, a link to its docs, stop). Said once per `dvc repro`:
    the first stage of a repro keeps the start lines, the later ones drop them; the stop line is dropped."""

    def __init__(self, first: bool):
        super().__init__()
        self.first = first

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        if message.startswith("Stopping temporary server"):
            return False
        return self.first or not message.startswith("Starting temporary server")


def first_stage_of_this_repro() -> bool:
    """Whether no earlier stage of the `dvc repro` that runs this process has said it yet (a marker per repro
    process in PREFECT_HOME); True outside a repro, or where it cannot tell."""
    repro = _dvc_ancestor()
    if repro is None:
        return True
    home = Path(os.environ.get("PREFECT_HOME") or Path.home() / ".prefect")
    marker = home / f".temporary-server-said-{repro}"
    try:
        home.mkdir(parents=True, exist_ok=True)
        for old in home.glob(".temporary-server-said-*"):  # earlier repros' markers, a day on
            if old.stat().st_mtime < time.time() - 86400:
                old.unlink(missing_ok=True)
        marker.open("x").close()  # atomic: of two stages at once, one wins
    except FileExistsError:
        return False
    except OSError:
        return True
    return True


def _dvc_ancestor() -> str | None:
    """`<pid>-<start time>` of the nearest `dvc` process above this one (Linux /proc), or None."""
    pid = os.getppid()
    for _ in range(8):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        if any(Path(part.decode(errors="replace")).name == "dvc" or part == b"dvc" for part in command[:3]):
            return f"{pid}-{stat[19]}"  # field 22 of stat: the start time, so a reused pid is another repro
        pid = int(stat[1])
        if pid <= 1:
            return None
    return None


def quiet_temporary_server() -> None:
    if not os.environ.get("PREFECT_API_URL"):
        logging.getLogger("prefect").addFilter(TemporaryServerLines(first_stage_of_this_repro()))


def stage_main(stage_flow: Callable, stages: Callable[[Params], tuple[str, ...]] | None = None,
               argv: list[str] | None = None, precheck: Callable[[Params], None] | None = None,
               dvc_stage: Callable[[str, Params], str] | None = None) -> int:
    """Parse the arguments and run the flow; a bad params file is one clear line, not a traceback.

    Args:
        stages: the flow's first argument's allowed values from the params, when it takes one (train).
        precheck: run on the params before the flow (and its server) starts; its UserError stops the stage.
        dvc_stage: dvc.yaml's name of the stage run with that argument (for the flow run's tag).
    """
    parser = argparse.ArgumentParser(prog=f"python -m flows.{stage_flow.name}", description=stage_flow.description)
    if stages:
        parser.add_argument("stage")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args(argv)
    parameters = ({"stage": args.stage} if stages else {}) | {"params_file": args.params}
    try:
        params = load_params(args.params)  # a bad file is one clear line here, before a flow run logs a crash
        if stages and args.stage not in stages(params):
            parser.error(f"argument stage: invalid choice: {args.stage!r} (choose from "
                         f"{', '.join(map(repr, stages(params)))})")
        tag = dvc_stage(args.stage, params) if stages and dvc_stage else stage_flow.name
        if precheck is not None:
            precheck(params)
        quiet_temporary_server()
        run_stage_flow(stage_flow, parameters, with_commit("stage", f"stage:{tag}"))
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0
