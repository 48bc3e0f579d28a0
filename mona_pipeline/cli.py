"""The `mona` command line.

    mona demo-data                         # draw the demo cast into data/raw and data/test
    mona ingest | shards | evaluate        # one pipeline step, straight from the library
    mona train gender|lookalike|target|baseline
    mona sort SOURCE --out DIR [--action copy|move|link|delete|none] [--confidence P] [--review-from R]
    mona undo OUT/runs/RUN                 # put moved or trashed pictures back
    mona purge OUT/runs/RUN --yes          # empty a run's trash for good
    mona review OUT/runs/RUN               # confirm or reject its pictures in a local page; see your precision
    mona apply OUT/runs/RUN                # move reviewed pictures to match the verdicts (also a button there)
    mona learn OUT/runs/RUN [--retrain]    # the verdicts into data/raw as training data, then dvc repro
    mona runs OUT                          # your sort runs: when, source, action, counts, undone or not
    mona summary [OUT/runs/RUN]            # one run (counts, settings, report, journal); no run: the evaluation
    mona check                             # the set-up before `dvc repro`: pictures per class, test set, plan
    mona compare                           # the curriculum vs the baseline over DVC experiments' seeds

Global options (--params, -v) may come before or after the command.
"""

from __future__ import annotations

import argparse
import difflib
import json
import logging
import os
import re
import sqlite3
import sys
import time
from pathlib import Path

from mona_pipeline.config import DEFAULT_MODEL, digest, load_params
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
    if args.pool is not None:  # a fresh archive for a review round; training's and the test's pictures untouched
        start = time.perf_counter()
        count = demo.generate_pool(params.demo, args.pool_dir, args.pool, args.seed, params.target)
        print(f"demo pool: {count} pictures in {args.pool_dir / 'images'} (seed {args.seed}), the answers a "
              f"reviewer would give in {args.pool_dir / 'labels.csv'} ({time.perf_counter() - start:.1f} s)")
        return 0
    marker = params.data.raw_dir / demo.DEMO_MARKER
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
    from mona_pipeline.check import check_before_ingest

    params = load_params(params_path(args))
    check_before_ingest(params)
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


class SortBar:
    """The sort's progress bar (tqdm): made at the first picture, so an error before it comes alone; given
    its total (percentage, ETA) once the source's size is known, from a count made beside the sort."""

    def __init__(self, quiet: bool):
        self.quiet, self.bar, self.total = quiet, None, None

    def set_total(self, total: int) -> None:  # from the counting thread: the bar takes it at its next update
        self.total = total

    def update(self, pictures: int) -> None:
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(unit="pic", desc="sorting", dynamic_ncols=True, disable=self.quiet, smoothing=0.1)
        if self.total is not None and self.bar.total != self.total:
            self.bar.total = self.total
            self.bar.refresh()
        self.bar.update(pictures)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def command_sort(args: argparse.Namespace) -> int:
    from mona_pipeline.sort import build_request, overrides_from, sort_source
    from mona_pipeline.sort.contact_sheet import not_done_lines
    from mona_pipeline.sort.stop import stop_on_signals
    from mona_pipeline.trained import ModelNotFound

    params = project_params(args)
    request = build_request(params, args.source, args.out, overrides_from(args))
    bar = SortBar(args.quiet)
    try:
        with stop_on_signals() as stop:
            summary = sort_source(request, bar.update, stop, total=bar.set_total)
    except ModelNotFound as error:
        if params is None and args.models is None:  # the default model, outside a project folder
            raise ModelNotFound(f"{error}. {Path.cwd()} is not a project folder (no params.yaml): run it from the "
                                f"project folder, or pass --model PROJECT/{DEFAULT_MODEL.as_posix()}") from None
        raise
    finally:
        bar.close()
    counts = summary.counts
    print(f"{summary.pictures} pictures: {counts['keep']} keep, {counts['review']} review, {counts['drop']} drop, "
          f"{counts['unreadable']} unreadable ({summary.pictures_per_second} pictures/s this session)")
    for target in summary.targets:
        counts = target.counts
        print(f"  {target.target}: {counts['keep']} keep, {counts['review']} review, {counts['drop']} drop "
              f"(P = {target.confidence}; kept in {target.kept_dir})")
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
    from mona_pipeline.sort.runs import read_run, run_text
    from mona_pipeline.summary import demo_summary

    if args.run is not None:
        print(run_text(read_run(args.run, target_precision(args))))
    if args.run is None or args.evaluation:
        print(demo_summary(args.reports, args.run))
    return 0


def target_precision(args: argparse.Namespace) -> float:
    """The precision a review's suggested threshold aims at: --precision, else params.yaml's
    evaluate.target_precision where there is a params.yaml, else 0.95."""
    if getattr(args, "precision", None) is not None:
        return args.precision
    path = params_path(args)
    return load_params(path).evaluate.target_precision if Path(path).is_file() else 0.95


def command_review(args: argparse.Namespace) -> int:
    import webbrowser

    from mona_pipeline.review.server import ReviewServer

    server = ReviewServer(args.run_dir, args.port, target_precision(args))
    print(f"reviewing {args.run_dir.absolute()} at {server.url}  (y: she is there, n: she is not, u: undo the last "
          f"mark; Ctrl-C stops: every verdict is already in the run's journal)", flush=True)
    if not args.no_browser and (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or
                                sys.platform in ("darwin", "win32")):
        webbrowser.open(server.url)
    try:
        server.serve()
    except KeyboardInterrupt:
        pass
    return 0


def command_apply(args: argparse.Namespace) -> int:
    from mona_pipeline.review.apply import apply_verdicts

    result = apply_verdicts(args.run_dir)
    for line in result.lines():
        print(line)
    if result.changed:
        print(f"mona undo {args.run_dir} puts everything back, these moves included")
    return 1 if result.problems else 0


def command_learn(args: argparse.Namespace) -> int:
    import subprocess

    from mona_pipeline.review.learn import learn_run, retrain_commands, retrain_text

    params = load_params(params_path(args))
    result = learn_run(args.run_dir, params.data.raw_dir, args.target or params.target)
    for line in result.lines():
        print(line)
    if not result.changed:
        print("nothing new to learn: the training data already holds these verdicts")
    if args.retrain:
        for command in retrain_commands(params.data.raw_dir):
            print(f"$ {' '.join(command)}", flush=True)
            subprocess.run(command, check=True, env=os.environ | {"PATH": f"{Path(sys.executable).parent}"
                                                                          f"{os.pathsep}{os.environ['PATH']}"})
    else:
        print(f"retrain: {retrain_text(params.data.raw_dir)}   (or mona learn {args.run_dir} --retrain)")
    return 1 if result.problems else 0


def command_runs(args: argparse.Namespace) -> int:
    from mona_pipeline.sort.runs import list_runs, runs_table

    out = args.out.expanduser().absolute()
    records = list_runs(out)
    print(runs_table(records))
    print(f"{len(records)} run{'s' if len(records) != 1 else ''} in {out}; one in detail: mona summary "
          f"{out / 'runs' / '<run>'}")
    return 0


def command_check(args: argparse.Namespace) -> int:
    from mona_pipeline.check import check_project, render

    params = load_params(params_path(args))
    report = check_project(params)
    print(render(report, params))
    if not args.quick:
        from mona_pipeline.plan import describe_compute, estimate_minutes, measure_machine, render_plan, repro_plan

        stages = repro_plan(Path("."))
        timing = measure_machine(params) if stages and report.tags else None
        minutes = estimate_minutes(stages, report, params, timing) if timing else None
        print("\n" + render_plan(stages, minutes, describe_compute(params), timing))
    return 1 if report.errors else 0


def command_compare(args: argparse.Namespace) -> int:
    from mona_pipeline import compare

    text = compare.render(compare.summarise(compare.collect(args.repo)))
    print(text)
    if args.markdown:
        args.markdown.write_text(text)
    return 0


def command_ensemble(args: argparse.Namespace) -> int:
    from mona_pipeline import ensemble

    metadata = ensemble.combine(args.models, args.out)
    print(f"{args.out}: {metadata.architecture}, one model for {metadata.target} (threshold {metadata.threshold}); "
          f"sort with it: mona sort SRC --out OUT --model {args.out}")
    return 0


class Parser(argparse.ArgumentParser):
    """argparse with errors in one line, a "did you mean" for a mistyped command or option, and the
    global options accepted after the command too."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {with_suggestion(message, self)} (see `{self.prog} --help`)\n")

    def parse_args(self, args=None, namespace=None):
        """As argparse's, but an unknown option is reported by the command's own parser, which knows the
        options to suggest."""
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            commands = next((action for action in self._actions if isinstance(action, argparse._SubParsersAction)),
                            None)
            chosen = commands.choices.get(getattr(parsed, "command", None)) if commands else None
            (chosen or self).error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed


def with_suggestion(message: str, parser: argparse.ArgumentParser) -> str:
    """`message`, and the closest known command or option to the one it names, when there is one."""
    choice = re.search(r"argument (\S+): invalid choice: '([^']*)' \(choose from (.*)\)", message)
    if choice:
        argument, given, known = choice[1], choice[2], re.findall(r"'([^']*)'", choice[3])
        close = difflib.get_close_matches(given, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f" (one of: {', '.join(known)})"
        return (f"unknown command {given!r}" if argument == "command" else
                f"argument {argument}: invalid choice: {given!r}") + hint
    unknown = re.match(r"unrecognized arguments: (.*)", message)
    if unknown:
        options = [option for action in parser._actions for option in action.option_strings]
        words = unknown[1].split()
        guesses = [f"{word}: did you mean {close[0]}?" for word in words if word.startswith("-")
                   for close in [difflib.get_close_matches(word.split("=")[0], options, n=1)] if close]
        return f"unrecognized arguments: {unknown[1]}" + (f" ({'; '.join(guesses)})" if guesses else "")
    return message


def global_options(parser: argparse.ArgumentParser, suppress: bool = False) -> None:
    """--params and -v: on the top-level parser, and on every command (default SUPPRESS there, so that an
    option given before the command is not reset by the command's own parser)."""
    default = {"default": argparse.SUPPRESS} if suppress else {}
    parser.add_argument("--params", type=Path, **({"default": None} | default),
                        help="parameters file (default: params.yaml, in the current folder)")
    parser.add_argument("-v", "--verbose", action="store_true", **default, help="log debug details")


def version() -> str:
    from importlib.metadata import PackageNotFoundError, version as installed

    try:
        return f"mona-pipeline {installed('mona-pipeline')} (Python {sys.version.split()[0]})"
    except PackageNotFoundError:
        return "mona-pipeline (not installed)"


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1 (the message names the value)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def precision(text: str) -> float:
    """An argparse type: a precision in (0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"{value} is not a precision: give a number in (0, 1], e.g. 0.95")
    return value


def precision_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--precision", type=precision, default=None,
                        help="the precision a review's suggested threshold aims at (default evaluate.target_precision)")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="mona", description=__doc__, formatter_class=argparse.RawTextHelpFormatter,
                    allow_abbrev=False)
    global_options(parser)
    parser.add_argument("--version", action="version", version=version())
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    common = argparse.ArgumentParser(add_help=False)
    global_options(common, suppress=True)

    def command(name: str, **options) -> argparse.ArgumentParser:
        return commands.add_parser(name, parents=[common], allow_abbrev=False, **options)

    demo = command("demo-data", help="draw the demo cast into data/raw and data/test")
    demo.add_argument("--force", action="store_true", help="redraw even if present")
    demo.add_argument("--pool", type=positive_int, default=None, metavar="N",
                      help="instead: draw N new pictures, a user's archive to sort and review (docs/review.md)")
    demo.add_argument("--seed", type=int, default=9, help="--pool: its seed (default 9)")
    demo.add_argument("--pool-dir", type=Path, default=Path("data/pool"), help="--pool: where (default data/pool)")
    demo.set_defaults(handler=command_demo_data)
    command("ingest", help="data/raw -> manifest").set_defaults(handler=command_ingest)
    command("shards", help="manifest -> TFRecord shards").set_defaults(handler=command_shards)
    train = command("train", help="train one stage or the baseline")
    train.add_argument("stage", choices=["gender", "lookalike", "target", "baseline"])
    train.set_defaults(handler=command_train)
    evaluate = command("evaluate", help="the paper's tables for the trained models")
    evaluate.add_argument("--labels", type=Path, default=None, help="a folder with labels.csv (default data.test_dir)")
    evaluate.set_defaults(handler=command_evaluate)
    sort = command("sort", help="sort a folder, archive or list of pictures")
    sort.add_argument("source", help="folder, .zip/.tar[.gz|.bz2|.xz] archive, .txt list of paths, or URL")
    sort.add_argument("--out", required=True, help="output folder (keep/, review/, runs/)")
    # Every option defaults to None = params.yaml's `sort` section (or the built-in default outside a project).
    add_sort_options(sort)
    sort.add_argument("--quiet", action="store_true", help="no progress bar")
    sort.set_defaults(handler=command_sort)
    undo = command("undo", help="undo a sort run")
    undo.add_argument("run_dir", type=Path)
    undo.set_defaults(handler=command_undo)
    purge = command("purge", help="delete a run's trash for good")
    purge.add_argument("run_dir", type=Path)
    purge.add_argument("--yes", action="store_true", help="confirm permanent deletion")
    purge.set_defaults(handler=command_purge)
    summary = command("summary", help="one sort run in a few lines; without a run: the evaluation")
    summary.add_argument("run", type=Path, nargs="?", default=None, help="a sort run folder (OUT/runs/RUN)")
    summary.add_argument("--evaluation", action="store_true",
                         help="with a run: also the evaluation table, and how the run agrees with it")
    precision_option(summary)
    summary.add_argument("--reports", type=Path, default=Path("reports/evaluation"), help="evaluate's report folder")
    summary.set_defaults(handler=command_summary)
    review = command("review", help="confirm or reject a run's pictures in a local page (127.0.0.1)")
    review.add_argument("run_dir", type=Path, help="a sort run folder (OUT/runs/RUN)")
    review.add_argument("--port", type=int, default=0, help="the port (default: a free one, printed)")
    review.add_argument("--no-browser", action="store_true", help="only print the address")
    precision_option(review)
    review.set_defaults(handler=command_review)
    apply = command("apply", help="move a run's reviewed pictures to match the verdicts (undone by mona undo)")
    apply.add_argument("run_dir", type=Path)
    apply.set_defaults(handler=command_apply)
    learn = command("learn", help="add a run's verdicts to data/raw as training data (then dvc repro)")
    learn.add_argument("run_dir", type=Path)
    learn.add_argument("--target", default=None, help="the character whose verdicts to learn (default params target)")
    learn.add_argument("--retrain", action="store_true", help="then run `dvc add data/raw` and `dvc repro`")
    learn.set_defaults(handler=command_learn)
    runs = command("runs", help="the sort runs under an output folder")
    runs.add_argument("out", type=Path, help="a sort's --out folder")
    runs.set_defaults(handler=command_runs)
    check = command("check", help="look the project over before `dvc repro`: exit 1 on errors")
    check.add_argument("--quick", action="store_true",
                       help="only params, pictures and test set (no dvc status, no timing, no devices)")
    check.set_defaults(handler=command_check)
    compare = command("compare", help="the curriculum vs the baseline over DVC experiments' seeds")
    compare.add_argument("--repo", type=Path, default=Path("."), help="the project folder (a DVC repository)")
    compare.add_argument("--markdown", type=Path, default=None, help="also write the tables to this file")
    compare.set_defaults(handler=command_compare)
    ensemble = command("ensemble", help="combine models of one character (e.g. several seeds) into one model")
    ensemble.add_argument("models", type=Path, nargs="+", help="trained model folders (models/target, ...)")
    ensemble.add_argument("--out", type=Path, required=True, help="the ensemble's model folder")
    ensemble.set_defaults(handler=command_ensemble)
    return parser


def main(argv: list[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):  # a file name that is not UTF-8 is printed with escapes, not a crash
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.verbose:  # the project's own details, not every library's debug log
        logger.setLevel(logging.DEBUG)
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
