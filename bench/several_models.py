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
import tempfile
from pathlib import Path

from bench.common import SortTimer, load_average, make_archive, write_result

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
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path, default=Path("models/target"))
    parser.add_argument("--pictures", type=int, default=40)
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--tiling", nargs="+", default=["off", "auto"], choices=["off", "auto", "always"])
    parser.add_argument("--folder", type=Path, default=Path("bench/archive/wallpapers"))
    args = parser.parse_args(argv)
    load_start = load_average()
    pictures = make_archive(args.folder, args.pictures)
    result = {"pictures": args.pictures, "model": str(args.model), "input": "common.make_archive: 80% 1920x1080 "
              "JPEG wallpapers, the rest PNG and WebP, drawn by the demo's generator"}
    with tempfile.TemporaryDirectory() as scratch:
        models = copies(args.model, Path(scratch) / "models")
        result |= SortTimer(pictures, Path(scratch)).compare(models, models[:1], ("three models", "one model"),
                                                              args.tiling, args.pairs)
    path = write_result("several_models", result, load_start)
    print(f"-> {path}")
    return result


if __name__ == "__main__":
    main()
