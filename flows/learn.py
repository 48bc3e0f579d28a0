"""A review's verdicts as training data, as a Prefect flow (the Prefect UI's run form: a run folder).

    python -m flows.learn OUT/runs/RUN [--retrain] [--params params.yaml]

The flow calls `mona learn`'s library function (review/learn.py): confirmed pictures into
data/raw/<target>/learned/<run>/, rejected ones into data/raw/<target>_rejected/learned/<run>/, then,
with `retrain`, `dvc add data/raw` and `dvc repro` as one task each; what it added is the run's
markdown artifact. (No `from __future__ import annotations`: served flows resolve their types at run time.)
"""

import argparse
import os
import subprocess
import sys
from pathlib import Path

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from flows.stage import tag_this_run
from mona_pipeline.config import load_params
from mona_pipeline.review.learn import learn_run, retrain_commands, retrain_text


@task(cache_policy=NO_CACHE)
def learn_task(run_dir: Path, raw_dir: Path, target: str) -> list[str]:
    result = learn_run(run_dir, raw_dir, target)
    return result.lines()


@task(cache_policy=NO_CACHE)
def command_task(command: list[str]) -> None:
    """One retraining command, with the project's Python first on PATH (dvc.yaml runs `python`)."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    subprocess.run(command, check=True, env=os.environ | {"PATH": path})


@flow(name="learn", log_prints=True)
def learn_flow(run_dir: Path, retrain: bool = False, target: str = "", params_file: Path = Path("params.yaml")) -> list:
    """Add a sort run's review verdicts to the training data; with `retrain`, record them in DVC and rebuild."""
    params = load_params(params_file)
    target = target or params.target
    tag_this_run("learn", f"target:{target}")
    lines = learn_task(Path(run_dir), params.data.raw_dir, target)
    for command in retrain_commands(params.data.raw_dir) if retrain else ():
        command_task.with_options(name=" ".join(command))(command)
    create_markdown_artifact(key="learn", markdown="\n".join(f"- {line}" for line in lines) + (
        "" if retrain else f"\n\nRetrain: `{retrain_text(params.data.raw_dir)}`"))
    print("\n".join(lines))
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flows.learn", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--retrain", action="store_true")
    parser.add_argument("--target", default="")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args(argv)
    learn_flow(args.run_dir, args.retrain, args.target, args.params)
    return 0


if __name__ == "__main__":
    sys.exit(main())
