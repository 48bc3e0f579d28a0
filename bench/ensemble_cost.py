"""What an ensemble costs at sort time: a sort with `mona ensemble`'s model against the same sort with one of
its members, in interleaved pairs.

    python -m bench.ensemble_cost --ensemble models/ensemble --model models/target [--pictures 40] [--pairs 5]

Each repetition is a fresh sort (action none) of `common.make_archive`'s pictures, mostly full-HD
wallpapers; its time is the sort's own (after the model is loaded). The ensemble is one network of its
members' networks, scored from one decode, so it costs their networks' time, not their decodes'.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from bench.common import SortTimer, load_average, make_archive, write_result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ensemble", type=Path, required=True, help="a folder `mona ensemble` wrote")
    parser.add_argument("--model", type=Path, default=Path("models/target"), help="one of its members")
    parser.add_argument("--pictures", type=int, default=40)
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--tiling", nargs="+", default=["off", "auto"], choices=["off", "auto", "always"])
    parser.add_argument("--folder", type=Path, default=Path("bench/archive/wallpapers"))
    args = parser.parse_args(argv)
    load_start = load_average()
    pictures = make_archive(args.folder, args.pictures)
    members = json.loads((args.ensemble / "ensemble.json").read_text())
    result = {"pictures": args.pictures, "ensemble": str(args.ensemble), "members": len(members),
              "model": str(args.model), "input": "common.make_archive: 80% 1920x1080 JPEG wallpapers, the rest "
              "PNG and WebP, drawn by the demo's generator"}
    with tempfile.TemporaryDirectory() as scratch:
        result |= SortTimer(pictures, Path(scratch)).compare([args.ensemble], [args.model],
                                                              (f"ensemble of {len(members)}", "one member"),
                                                              args.tiling, args.pairs)
    path = write_result("ensemble_cost", result, load_start)
    print(f"-> {path}")
    return result


if __name__ == "__main__":
    main()
