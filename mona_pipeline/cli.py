"""The `mona` command line.

    mona demo-data                     # draw the demo cast into data/raw and data/test
    mona ingest | shards               # one pipeline step, straight from the library
    mona sort SOURCE --out DIR         # see `mona sort --help`
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from mona_pipeline.config import ParamsError, digest, load_params

logger = logging.getLogger("mona_pipeline")


def command_demo_data(args: argparse.Namespace) -> int:
    from mona_pipeline import demo

    params = load_params(args.params)
    marker = params.data.raw_dir / ".demo"
    stamp = digest(params.demo)
    if marker.is_file() and marker.read_text().strip() == stamp and not args.force:
        print(f"demo data already generated for these parameters ({params.data.raw_dir}); --force redraws it")
        return 0
    if params.data.raw_dir.is_dir() and any(params.data.raw_dir.iterdir()) and not marker.is_file() and not args.force:
        print(f"error: {params.data.raw_dir} holds pictures that are not demo data; refusing to write into it "
              f"(use --force, or point data.raw_dir elsewhere)", file=sys.stderr)
        return 2
    start = time.perf_counter()
    raw = demo.generate_raw(params.demo, params.data.raw_dir, params.target)
    test = demo.generate_test(params.demo, params.data.test_dir, params.target)
    sheet = demo.render_contact_sheet(Path("reports/demo_cast.png"), params.data.test_dir / "images")
    marker.write_text(stamp + "\n")
    print(f"demo data: {raw} training pictures in {params.data.raw_dir}, {test} labelled test pictures in "
          f"{params.data.test_dir} ({time.perf_counter() - start:.1f} s); contact sheet: {sheet}")
    return 0


def command_ingest(args: argparse.Namespace) -> int:
    from mona_pipeline import ingest

    params = load_params(args.params)
    summary = ingest.run_ingest(params.data, params.stages)
    print(json.dumps({k: summary[k] for k in ("pictures", "groups", "rejected")}))
    return 0


def command_shards(args: argparse.Namespace) -> int:
    from mona_pipeline import shards

    params = load_params(args.params)
    index = shards.write_shards(params.data, params.shards, params.stages)
    print(f"{len(index['shards'])} shards in {params.shards.dir}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mona", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="parameters file")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo-data", help="draw the demo cast into data/raw and data/test")
    demo.add_argument("--force", action="store_true", help="redraw even if present")
    demo.set_defaults(handler=command_demo_data)
    commands.add_parser("ingest", help="data/raw -> manifest").set_defaults(handler=command_ingest)
    commands.add_parser("shards", help="manifest -> TFRecord shards").set_defaults(handler=command_shards)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.handler(args)
    except ParamsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
