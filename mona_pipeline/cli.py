"""The `mona` command line.

    mona demo-data                         # draw the demo cast into data/raw and data/test
    mona ingest | shards | evaluate        # one pipeline step, straight from the library
    mona train gender|lookalike|target|baseline
    mona sort SOURCE --out DIR [--action copy|move|link|delete|none] [--confidence P] [--review-from R]
    mona undo OUT/runs/RUN                 # put moved or trashed pictures back
    mona purge OUT/runs/RUN --yes          # empty a run's trash for good
    mona summary [--sort-run OUT/runs/RUN] # the evaluation table, and how a sort agrees with it
    mona compare                           # the curriculum vs the baseline over DVC experiments' seeds
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sqlite3
import sys
import time
from pathlib import Path

from mona_pipeline.config import digest, load_params
from mona_pipeline.errors import UserError
from mona_pipeline.sort.request import add_sort_options
from mona_pipeline.sort.stop import Interrupted, SortStopped

# Before TensorFlow loads (the commands import it lazily): its C++ start-up lines on a machine without a
# GPU ("Unable to register cuFFT factory", "Could not find cuda drivers") read like failures and are not.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

logger = logging.getLogger("mona_pipeline")


def params_path(args: argparse.Namespace) -> Path:
    return args.params or Path("params.yaml")


def command_demo_data(args: argparse.Namespace) -> int:
    from mona_pipeline import demo

    params = load_params(params_path(args))
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

    params = load_params(params_path(args))
    summary = ingest.run_ingest(params.data, params.stages)
    print(json.dumps({k: summary[k] for k in ("pictures", "groups", "rejected")}))
    return 0


def command_shards(args: argparse.Namespace) -> int:
    from mona_pipeline import shards

    params = load_params(params_path(args))
    index = shards.write_shards(params.data, params.shards, params.stages, params.tiling)
    print(f"{len(index['shards'])} shards in {params.shards.dir}")
    return 0


def command_train(args: argparse.Namespace) -> int:
    from mona_pipeline import train

    start = time.perf_counter()
    metadata = train.train_stage(args.stage, load_params(params_path(args)))
    print(json.dumps({**metadata.model_dump(include={"stage", "class_names", "epochs", "metrics"}),
                      "train_seconds": round(time.perf_counter() - start, 1)}))
    return 0


def command_evaluate(args: argparse.Namespace) -> int:
    from mona_pipeline.evaluate.run import run_evaluate

    evaluation = run_evaluate(load_params(params_path(args)), test_dir=args.labels)
    print(evaluation.markdown)
    return 0


def project_params(args: argparse.Namespace):
    """The project's params for a sort: `--params` (an error when it is not a file), else ./params.yaml when
    there is one, else None: outside a project the built-in defaults apply, and a line says so."""
    if args.params is not None:
        return load_params(args.params)
    if Path("params.yaml").is_file():
        return load_params(Path("params.yaml"))
    logger.warning("no params.yaml in %s: the built-in defaults apply (give --params to use a project's)",
                   Path.cwd())
    return None


def command_sort(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from mona_pipeline.sort import build_request, overrides_from, sort_source
    from mona_pipeline.sort.contact_sheet import not_done_lines
    from mona_pipeline.sort.stop import stop_on_signals

    request = build_request(project_params(args), args.source, args.out, overrides_from(args))
    with tqdm(unit="pic", desc="sorting", dynamic_ncols=True, disable=args.quiet) as bar, stop_on_signals() as stop:
        summary = sort_source(request, bar.update, stop)
    counts = summary.counts
    print(f"{summary.pictures} pictures: {counts['keep']} keep, {counts['review']} review, {counts['drop']} drop, "
          f"{counts['unreadable']} unreadable ({summary.pictures_per_second} pictures/s this session)")
    if summary.action_failures:
        print(f"{summary.action_failures} file operations failed; those pictures were left in place (see the journal)")
    for line in not_done_lines(summary):
        print(line)
    print(f"kept: {summary.kept_dir}\nreport: {summary.report}\njournal: {summary.journal}")
    for problem in summary.problems:
        print(f"not finished: {problem}", file=sys.stderr)
    return 0 if summary.complete else 1


def command_undo(args: argparse.Namespace) -> int:
    from mona_pipeline.sort import undo_run
    from mona_pipeline.sort.stop import stop_on_signals

    with stop_on_signals() as stop:
        result = undo_run(args.run_dir, stop)
    print(f"restored {result.restored} pictures, removed {result.removed_copies} copies/links")
    for source, problem in result.problems:
        print(f"could not undo {source}: {problem}", file=sys.stderr)
    if result.purged:
        print(f"{result.purged} trashed pictures were purged for good and cannot be restored", file=sys.stderr)
    if result.problems:
        print("run the same undo again once the problems above are solved: it retries what is left",
              file=sys.stderr)
    return 1 if result.problems else 0


def command_purge(args: argparse.Namespace) -> int:
    from mona_pipeline.sort import purge_run

    if not args.yes:
        print("purge deletes the run's trash for good; add --yes to confirm", file=sys.stderr)
        return 2
    result = purge_run(args.run_dir)
    print(f"deleted {result.purged} trashed pictures for good")
    if result.gone:
        print(f"{result.gone} were no longer in the trash (taken out by hand?): not deleted, not counted")
    for path, problem in result.problems:
        print(f"could not delete {path}: {problem}", file=sys.stderr)
    return 1 if result.problems else 0


def command_summary(args: argparse.Namespace) -> int:
    from mona_pipeline.summary import demo_summary

    print(demo_summary(args.reports, args.sort_run))
    return 0


def command_compare(args: argparse.Namespace) -> int:
    from mona_pipeline import compare

    text = compare.render(compare.summarise(compare.collect(args.repo)))
    print(text)
    if args.markdown:
        args.markdown.write_text(text)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mona", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--params", type=Path, default=None,
                        help="parameters file (default: params.yaml, in the current folder)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo-data", help="draw the demo cast into data/raw and data/test")
    demo.add_argument("--force", action="store_true", help="redraw even if present")
    demo.set_defaults(handler=command_demo_data)
    commands.add_parser("ingest", help="data/raw -> manifest").set_defaults(handler=command_ingest)
    commands.add_parser("shards", help="manifest -> TFRecord shards").set_defaults(handler=command_shards)
    train = commands.add_parser("train", help="train one stage or the baseline")
    train.add_argument("stage", choices=["gender", "lookalike", "target", "baseline"])
    train.set_defaults(handler=command_train)
    evaluate = commands.add_parser("evaluate", help="the paper's tables for the trained models")
    evaluate.add_argument("--labels", type=Path, default=None, help="a folder with labels.csv (default data.test_dir)")
    evaluate.set_defaults(handler=command_evaluate)
    sort = commands.add_parser("sort", help="sort a folder, archive or list of pictures")
    sort.add_argument("source", help="folder, .zip/.tar[.gz|.bz2|.xz] archive, .txt list of paths, or URL")
    sort.add_argument("--out", required=True, help="output folder (keep/, review/, runs/)")
    # Every option defaults to None = params.yaml's `sort` section (or the built-in default outside a project).
    add_sort_options(sort)
    sort.add_argument("--quiet", action="store_true", help="no progress bar")
    sort.set_defaults(handler=command_sort)
    undo = commands.add_parser("undo", help="undo a sort run")
    undo.add_argument("run_dir", type=Path)
    undo.set_defaults(handler=command_undo)
    purge = commands.add_parser("purge", help="delete a run's trash for good")
    purge.add_argument("run_dir", type=Path)
    purge.add_argument("--yes", action="store_true", help="confirm permanent deletion")
    purge.set_defaults(handler=command_purge)
    summary = commands.add_parser("summary", help="the evaluation table, and how a sort run agrees with it")
    summary.add_argument("--reports", type=Path, default=Path("reports/evaluation"), help="evaluate's report folder")
    summary.add_argument("--sort-run", type=Path, default=None, help="a sort run folder (OUT/runs/RUN)")
    summary.set_defaults(handler=command_summary)
    compare = commands.add_parser("compare", help="the curriculum vs the baseline over DVC experiments' seeds")
    compare.add_argument("--repo", type=Path, default=Path("."), help="the project folder (a DVC repository)")
    compare.add_argument("--markdown", type=Path, default=None, help="also write the tables to this file")
    compare.set_defaults(handler=command_compare)
    return parser


def main(argv: list[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):  # a file name that is not UTF-8 is printed with escapes, not a crash
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        code = args.handler(args)
    except UserError as error:  # ParamsError, SourceError, NotARun, SettingsError, ModelNotFound, RunBusy, ...
        print(f"error: {error}", file=sys.stderr)
        code = 2
    except Interrupted as error:  # Ctrl-C or SIGTERM, honoured at a file-operation boundary
        print(str(error), file=sys.stderr)
        code = error.exit_code
    except SortStopped as error:  # a full or read-only disk half way: resumable, and said so
        print(f"error: {error}", file=sys.stderr)
        code = 1
    except OSError as error:  # the machine refused: OUT cannot be created or written (permissions, a full disk)
        where = f"{error.filename}: " if error.filename else ""
        print(f"error: {where}{error.strerror or error}", file=sys.stderr)
        code = 2
    except sqlite3.Error as error:
        print(f"error: the run's journal cannot be used: {error}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        print("interrupted: run the same command again to resume", file=sys.stderr)
        code = 130
    from mona_pipeline.sort.remote import exit_process

    return exit_process(code)  # an S3 source's file system would abort the process at exit


if __name__ == "__main__":
    sys.exit(main())
