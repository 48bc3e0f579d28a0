"""The command line every stage flow shares: `python -m flows.<stage> [STAGE] [--params params.yaml]`."""

import argparse
import sys
from pathlib import Path
from typing import Callable

from mona_pipeline.config import ParamsError


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
    try:
        stage_flow(*([args.stage] if stages else []), params_file=args.params)
    except ParamsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0
