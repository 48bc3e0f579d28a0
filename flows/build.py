"""A whole `dvc repro` as one Prefect flow run, with each stage DVC runs as its child:

    python -m flows.build                      # dvc repro: what changed, under one `build` run
    python -m flows.build -- -s evaluate       # any `dvc repro` arguments after --

DVC still decides what runs (its lock file and cache); this flow only wraps it. The
`repro` task starts `dvc repro` with this flow's API address and its own task-run id
(MONA_BUILD_TASK_RUN), so every stage command (`python -m flows.<stage>`) creates its
flow run as a child of that task on the same server: one temporary API for the whole
build when no server is set, and in the UI one `build` run with the stages beneath it.
The stage commands find this Python first on PATH, so no virtual environment needs activating.
"""

import os
import subprocess
import sys
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.runtime import flow_run, task_run

from flows.stage import BUILD_TASK_RUN_VARIABLE, tag_this_run


@task(cache_policy=NO_CACHE)
def repro(arguments: list[str]) -> list[str]:
    """Run `dvc repro ARGUMENTS`, logging its output; returns the stages it ran.

    Raises:
        RuntimeError: dvc repro failed; with its last lines.
    """
    logger = get_run_logger()
    with get_client(sync_client=True) as client:
        api_url = str(client.api_url)  # the server in use: PREFECT_API_URL's, or the temporary one
    environment = dict(os.environ, PREFECT_API_URL=api_url, **{BUILD_TASK_RUN_VARIABLE: str(task_run.id)})
    environment["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), environment.get("PATH", "")])
    command = [sys.executable, "-m", "dvc", "repro", *arguments]
    logger.info("running %s", " ".join(["dvc", "repro", *arguments]))
    lines, ran = [], []
    with subprocess.Popen(command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as dvc:
        for line in dvc.stdout:
            line = line.rstrip()
            lines.append(line)
            if line.startswith("Running stage '"):
                ran.append(line.split("'")[1])
                logger.info(line)
    if dvc.returncode:
        raise RuntimeError(f"dvc repro failed (exit code {dvc.returncode}):\n" + "\n".join(lines[-30:]))
    return ran


def build_run_name() -> str:
    """`build: dvc repro [ARGUMENTS]`, so a one-stage rebuild reads differently from a full one."""
    return " ".join(["build: dvc repro", *(flow_run.parameters.get("arguments") or [])])


@flow(name="build", flow_run_name=build_run_name, log_prints=True)
def build_flow(arguments: list[str] | None = None) -> list[str]:
    """Rebuild the pipeline with `dvc repro` (DVC decides what is stale); each stage it runs is a child run.

    Args:
        arguments: extra `dvc repro` arguments, e.g. ["-s", "evaluate"] for one stage, ["train_target"] for a
            stage and what it needs.
    """
    tag_this_run("build")
    ran = repro(list(arguments or []))
    create_markdown_artifact(key="build", description="dvc repro", markdown=(
        "# Build\n" + (f"Stages run: {', '.join(f'`{stage}`' for stage in ran)}." if ran
                       else "Nothing to do: every stage was up to date.")))
    return ran


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    if arguments[:1] == ["--"]:
        arguments = arguments[1:]
    if arguments[:1] in (["-h"], ["--help"]):
        print(__doc__)
        return 0
    state = build_flow(arguments, return_state=True)
    return 0 if state.is_completed() else 1


if __name__ == "__main__":
    from flows.build import main as imported_main  # the module by name, as workers and serve need it

    sys.exit(imported_main())
