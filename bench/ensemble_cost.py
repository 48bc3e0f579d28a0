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
from pathlib import Path

from bench.common import sort_pair_arguments, sort_pairs


def main(argv: list[str] | None = None) -> dict:
    parser = sort_pair_arguments(argparse.ArgumentParser())
    parser.add_argument("--ensemble", type=Path, required=True, help="a folder `mona ensemble` wrote")
    parser.add_argument("--model", type=Path, default=Path("models/target"), help="one of its members")
    args = parser.parse_args(argv)
    members = len(json.loads((args.ensemble / "ensemble.json").read_text()))
    return sort_pairs("ensemble_cost", args, {"ensemble": str(args.ensemble), "members": members,
                                              "model": str(args.model)},
                      lambda scratch: ([args.ensemble], [args.model]), (f"ensemble of {members}", "one member"))


if __name__ == "__main__":
    main()
