"""Several characters in one pass: a sort scored by three models from one decode, against the same sort
with one of them.

    python -m bench.several_models [--model models/target] [--pictures 40] [--pairs 5] [--tiling off auto]

The three models are copies of `--model` under three target names (the same network three times: what a
user with three characters of one project pays). Each repetition is a fresh sort (action none) of the same
pictures in this process; its time is the sort's own (`SortSummary.seconds`, after the models are loaded),
and the ratio three/one comes from interleaved pairs (`common.compare_interleaved`). The pictures are
`common.make_archive`'s, mostly full-HD wallpapers: decoding them is most of a picture's cost on a CPU.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from bench.common import sort_pair_arguments, sort_pairs

TARGETS = ("first", "second", "third")


def copies(model: Path, folder: Path) -> list[Path]:
    """The model three times, each under its own target name (a sort refuses two models of one character)."""
    made = []
    for target in TARGETS:
        copy = folder / target
        shutil.copytree(model, copy)
        metadata = json.loads((copy / "metadata.json").read_text())
        (copy / "metadata.json").write_text(json.dumps({**metadata, "target": target}))
        made.append(copy)
    return made


def main(argv: list[str] | None = None) -> dict:
    parser = sort_pair_arguments(argparse.ArgumentParser())
    parser.add_argument("--model", type=Path, default=Path("models/target"))
    args = parser.parse_args(argv)

    def models(scratch: Path) -> tuple[list[Path], list[Path]]:
        made = copies(args.model, scratch / "models")
        return made, made[:1]

    return sort_pairs("several_models", args, {"model": str(args.model)}, models, ("three models", "one model"))


if __name__ == "__main__":
    main()
