"""The bulk sort as a Prefect flow: its typed parameters are the run form the Prefect UI shows.

    python -m flows.sort SOURCE --out DIR [--action move] [--dask tcp://scheduler:8786]   # one run
    python -m flows.sort serve                                                            # nightly inbox schedule

Settings come from params.yaml's `sort` section; the form's overrides replace
single values. The source is cut into chunks of `chunk_size` pictures, each a
task on the flow's task runner: threads by default, or Dask (`--dask ADDRESS`,
or `--dask local` for a LocalCluster) when one archive outgrows one machine.
Workers on other machines need the source, the model and OUT on a shared file
system. (No `from __future__ import annotations` here: served flows resolve
their parameter types at run time.)

The Dask scheduler unpickles the chunk tasks and so imports this module: it must
not load TensorFlow. The model code (`SortRun`, `Scorer`) is imported where a
chunk runs, inside the functions below.
"""

import argparse
import itertools
import logging
import re
import sys
import time
import uuid
from functools import lru_cache
from pathlib import Path
from typing import Iterator

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_progress_artifact, create_table_artifact, \
    update_progress_artifact
from prefect.cache_policies import NO_CACHE
from prefect.futures import as_completed
from prefect.runtime import deployment, flow_run
from prefect.states import Failed
from prefect.task_runners import ThreadPoolTaskRunner

from flows.progress import LiveProgress, live_progress, tracked_progress
from flows.stage import tag_this_run
from mona_pipeline.config import load_params
from mona_pipeline.errors import UserError
from mona_pipeline.sort.contact_sheet import summary_markdown
from mona_pipeline.sort.reading import SourceError
from mona_pipeline.sort.remote import exit_process
from mona_pipeline.sort.request import SortOverrides, SortRequest, add_sort_options, build_request, overrides_from
from mona_pipeline.sort.results import SortSummary
from mona_pipeline.sort.tally import Tally

IN_FLIGHT = 4  # chunks submitted and not yet collected
SERVED_DEPLOYMENT = "nightly-inbox-served"  # `serve`'s name; prefect.yaml's work-pool deployment is "nightly-inbox"
REFUSED = "Refused"  # the state name of a run that a user error stopped before any work (a Failed state)


def _scorer(model: Path):
    """One loaded, compiled model per process (the flow's, or each Dask worker's), reused by its chunks, and
    loaded again when the folder's content changes (a long-lived worker after `dvc repro` retrained it)."""
    from mona_pipeline.trained import model_fingerprint

    return _loaded_scorer(Path(model).resolve(), model_fingerprint(model))


@lru_cache(maxsize=8)  # a few characters' models, each a few MB
def _loaded_scorer(model: Path, fingerprint: str):
    from mona_pipeline.inference import Scorer
    from mona_pipeline.trained import load_trained

    return Scorer(load_trained(model))


def open_run(request: SortRequest, hold: bool = True):
    """The request's `SortRun` with this process's loaded model (imported here: see the module docstring).

    Args:
        hold: take the run's lock; the flow holds it for the whole run, its tasks work under it (False).
    """
    from mona_pipeline.sort.run import SortRun

    return SortRun(request, _scorer, hold=hold)


@task(cache_policy=NO_CACHE, task_run_name="recover interrupted operations")
def recover_run(request: SortRequest) -> int:
    """Finish or roll back what an interrupted run left half done, before new work starts."""
    with open_run(request, hold=False) as run:
        return run.recover()


@task(cache_policy=NO_CACHE, retries=1, retry_delay_seconds=5, tags=["sort-chunk"])
def sort_chunk(request: SortRequest, item_ids: list[str] | None, progress_id: uuid.UUID | None = None,
               label: str = "chunk") -> Tally:
    """Score, decide and act on one chunk; journaled, so a retry redoes nothing already done.

    Args:
        item_ids: the chunk's items; None: the whole source in one pass (a tar, which reads only in order).
        label: the chunk's name in logs (`chunk 3/12`).
    """
    logger = get_run_logger()
    if item_ids is not None:
        logger.info("%s: %d pictures, from %s", label, len(item_ids), item_ids[0])
    live = live_progress(progress_id)
    with open_run(request, hold=False) as run:  # under the lock of the flow that submitted the chunk
        items = run.source.items() if item_ids is None else run.source.items_for(item_ids)
        tally = run.process(items, progress=live.batch_done if live else lambda n: None,
                            sheet=run.sheet.for_chunk(item_ids[0] if item_ids else request.source))
    logger.info("%s done: %s; %d already done, %d file operations failed", label,
                ", ".join(f"{count} {decision}" for decision, count in tally.counts.items()), tally.skipped_done,
                tally.action_failures)
    return tally


def chunked(ids: Iterator[str], size: int) -> Iterator[list[str]]:
    while chunk := list(itertools.islice(ids, size)):
        yield chunk


def plan_chunks(source, size: int) -> tuple[Iterator[list[str] | None], int | None, int]:
    """The chunks to submit, lazily, and how many pictures and chunks there are.

    A source read only in order (a tar, compressed or not) is one chunk, None (its whole stream): it is read
    once, however large. Any other source is walked twice, once to count and once as its chunks are
    submitted, so no list of every id is ever held (a folder of millions costs the flow a chunk's worth).
    Returns:
        (chunks, pictures or None when not known before the end, chunks)
    """
    if source.streamed:
        return iter([None]), None, 1
    pictures = sum(1 for _ in source.ids())
    return chunked(source.ids(), size), pictures, max(1, -(-pictures // size))


def chunk_label(number: int, total: int) -> str:
    """`chunk 3/12`: a chunk's name in task-run names and logs."""
    return f"chunk {number}/{total}"


def submit_chunks(request: SortRequest, chunks: Iterator[list[str] | None], total: int,
                  progress: LiveProgress) -> list[Tally]:
    """Submit the chunks as they come, with at most IN_FLIGHT outstanding (memory does not grow with the
    archive). Each chunk's task run is named `chunk 3/12 (2048 pictures)`."""
    tallies, running = [], []

    def collect(future, size: int) -> None:
        tallies.append(future.result())
        progress.chunk_done(size)

    for number, chunk in enumerate(chunks, start=1):
        label = chunk_label(number, total)
        size = len(chunk) if chunk is not None else 0
        named = sort_chunk.with_options(task_run_name=f"{label} ({size or 'all'} pictures)")
        running.append((named.submit(request, chunk, progress.artifact_id, label), size))
        if len(running) >= IN_FLIGHT:
            collect(*running.pop(0))
    sizes = {id(future): size for future, size in running}
    for future in as_completed([future for future, _ in running]):
        collect(future, sizes[id(future)])
    return tallies


def source_label(source: str) -> str:
    """A short name for a source in a tag: the URL scheme and the last path part (`s3:inbox`, `wallpapers.zip`)."""
    scheme, _, rest = source.rpartition("://")
    name = Path(rest.rstrip("/")).name or rest
    return f"{scheme}:{name}" if scheme else name


def artifact_key(*parts: str) -> str:
    """An artifact key from names (lower-case letters, digits and dashes, as Prefect requires).

    Every run of one named run (a deployment's, for example) reuses its keys, so the UI keeps its history.
    """
    key = re.sub(r"[^a-z0-9]+", "-", "-".join(part for part in parts if part).lower()).strip("-")
    return key[:60].strip("-") or "sort"


def run_artifact_key(run_name: str) -> str:
    """`sort-<deployment>-<run>` in a deployment's runs, `sort-<run>` otherwise: two deployments that sort
    under one run name (served and on a worker, say) keep separate histories."""
    return artifact_key("sort", deployment.name or "", run_name)


def sort_run_name() -> str:
    """`sort <run> of <source>`: the run's journal name (the same name resumes it) and where it reads."""
    parameters = flow_run.parameters
    try:
        params_file = Path(parameters.get("params_file") or "params.yaml")
        params = load_params(params_file) if params_file.is_file() else None
        request = build_request(params, parameters["source"], parameters["out"], parameters.get("overrides"))
        # A derived run name depends on settings the open run resolves; the flow renames itself then.
        return f"sort {request.run} of {request.source}" if request.run else f"sort of {request.source}"
    except Exception:  # a bad parameter fails the run with its own message; the name must not
        return f"sort of {parameters.get('source')}"


@flow(name="sort", flow_run_name=sort_run_name, task_runner=ThreadPoolTaskRunner(max_workers=2), log_prints=True)
def sort_flow(source: str, out: Path, overrides: SortOverrides = SortOverrides(),
              params_file: Path = Path("params.yaml"), create_source: bool = False) -> SortSummary:
    """Sort a folder, archive, list or remote folder: keep / review / drop, journaled and undoable.

    Args:
        source: what to sort: a folder, a .zip/.tar archive (read in place), a .txt list of paths, or a URL
            (s3://bucket/folder). A relative path is relative to the folder the flow runs in (a deployment's:
            the project folder it was deployed from).
        out: output folder: keep/ and review/ receive pictures, runs/RUN/ holds the journal and report.
            Relative paths as for source.
        overrides: settings for this run only; each empty field keeps params.yaml's `sort` value. The action
            decides what happens to your files: copy and link leave the source as it was, move takes kept and
            review pictures out of the source folder, delete moves dropped pictures into the run's trash
            (`mona undo` puts everything back).
        params_file: the project's parameters file (relative to the run's folder); absent: built-in defaults.
        create_source: make the source folder when it does not exist yet, inside a folder that does (a nightly
            inbox: the first run finds it empty); otherwise a missing source refuses the run.
    """
    start = time.perf_counter()
    logger = get_run_logger()
    try:
        params = load_params(params_file) if Path(params_file).is_file() else None
        if params is None:
            logger.warning("no params file at %s: the built-in defaults apply", Path(params_file).absolute())
        request = build_request(params, source, out, overrides)
        if create_source:
            make_inbox(request.source)
        run = open_run(request)  # checks source, action and model before any work
    except UserError as error:
        return refuse(error)
    with run:
        tag_this_run("sort", f"action:{request.action}", f"source:{source_label(request.source)}",
                     *(f"target:{target}" for target in run.targets or [run.scorer.trained.metadata.target or 'model']),
                     name=f"sort {run.run_dir.name} of {request.source}")
        recover_run(request)
        chunks, pictures, total = plan_chunks(run.source, request.chunk_size)
        key = run_artifact_key(run.run_dir.name)
        counted = f"{pictures} pictures" if pictures is not None else "the pictures (read in one pass)"
        logger.info("sorting %s from %s into %s (run %s, action %s, %d chunks)", counted, request.source,
                    request.out, run.run_dir.name, request.action, total)
        progress_id = create_progress_artifact(progress=0.0, key=f"{key}-progress",
                                               description=f"sorting {counted} from {request.source}")
        with tracked_progress(progress_id, pictures) as progress:
            tallies = submit_chunks(request, chunks, total, progress)
        update_progress_artifact(progress_id, 100.0)
        summary = run.finish_chunks(tallies, time.perf_counter() - start)
        publish(summary, run.sheet, key)
    counts = summary.counts
    logger.info("sorted %d pictures: %d keep, %d review, %d drop, %d unreadable; %s s, %s pictures/s; "
                "%d already done, %d file operations failed; report %s", summary.pictures, counts["keep"],
                counts["review"], counts["drop"], counts["unreadable"], summary.seconds, summary.pictures_per_second,
                summary.resumed_skipped, summary.action_failures, summary.report)
    return summary


def make_inbox(source: str) -> None:
    """Make a missing local source folder, inside a folder that exists (a typo two levels deep is an error)."""
    folder = Path(source).absolute()
    if "://" in source or folder.exists() or not folder.parent.is_dir():
        return  # open_run says what is wrong with it, if anything
    folder.mkdir()
    get_run_logger().info("created the inbox folder %s: pictures put there are sorted by the next run", folder)


def refuse(error: UserError):
    """End the run as Failed (named Refused) with the problem as one log line: a user's mistake (a missing
    source, a bad setting) is no crash and gets no traceback."""
    message = f"{error}. Relative paths are relative to {Path.cwd()}; give the run other parameters (the run " \
              f"form, `--param source=...`) or change the deployment" if isinstance(error, SourceError) else str(error)
    get_run_logger().error(message)
    _REFUSALS.add(message)
    return Failed(name=REFUSED, message=message)


_REFUSALS: set[str] = set()  # messages of the runs this process refused


class _QuietRefusal(logging.Filter):
    """In a deployment's process Prefect's engine logs a run's Failed state once more, as a traceback of
    `FailedRun` ("Engine execution exited with unexpected exception"); for a run refused here that would
    bury the one line that says what to change, so that record alone is dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not (type(error).__name__ == "FailedRun" and str(error) in _REFUSALS)


logging.getLogger("prefect.flow_runs").addFilter(_QuietRefusal())


def publish(summary: SortSummary, sheet, key: str) -> None:
    """The run's counts table and its summary with sample thumbnails, under keys of this run (history kept)."""
    create_table_artifact(key=f"{key}-counts", description=f"sort of {summary.source}",
                          table=[{"decision": k, "pictures": v} for k, v in summary.counts.items()])
    create_markdown_artifact(key=f"{key}-summary", description=f"sort of {summary.source}",
                             markdown=summary_markdown(summary, sheet))


def dask_runner(address: str):
    """A DaskTaskRunner on an existing scheduler, or on a LocalCluster for `local`."""
    from prefect_dask import DaskTaskRunner

    if address == "local":
        return DaskTaskRunner(cluster_class="distributed.LocalCluster",
                              cluster_kwargs={"n_workers": 2, "threads_per_worker": 1, "processes": True})
    return DaskTaskRunner(address=address)


def serve(inbox: Path, out: Path, cron: str, name: str, overrides: SortOverrides, params_file: Path) -> None:
    """Serve the nightly sort from this process: `inbox` into `out` on `cron` (prefect.yaml: the same for a pool).
    The inbox is made on the first run if it does not exist; one run at a time (the deployment's limit)."""
    sort_flow.serve(name=name, cron=cron, tags=["nightly", "served"], limit=1, parameters={
        "source": str(inbox.resolve()), "out": str(out.resolve()), "create_source": True,
        "overrides": overrides.model_dump(mode="json", exclude_none=True), "params_file": str(params_file.resolve())})


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"]:
        parser = argparse.ArgumentParser(prog="python -m flows.sort serve")
        parser.add_argument("--inbox", type=Path, default=Path("inbox"))
        parser.add_argument("--out", type=Path, default=Path("sorted"))
        parser.add_argument("--cron", default="0 2 * * *")
        parser.add_argument("--name", default=SERVED_DEPLOYMENT, help="deployment name")
        parser.add_argument("--params", type=Path, default=Path("params.yaml"))
        # every night resumes one journal, and the nightly sort moves
        add_sort_options(parser, defaults={"run": "nightly-inbox", "action": "move"})
        args = parser.parse_args(argv[1:])
        serve(args.inbox, args.out, args.cron, args.name, overrides_from(args), args.params)
        return 0
    parser = argparse.ArgumentParser(prog="python -m flows.sort", description="Run one sort as a Prefect flow.")
    parser.add_argument("source")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--dask", default=None, help="Dask scheduler address, or 'local' for a LocalCluster")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    add_sort_options(parser)
    args = parser.parse_args(argv)
    overrides = overrides_from(args)
    runner = sort_flow.with_options(task_runner=dask_runner(args.dask)) if args.dask else sort_flow
    state = runner(args.source, args.out, overrides, args.params, return_state=True)
    if state.is_failed() and state.name == REFUSED:
        print(f"error: {state.message}", file=sys.stderr)
        return exit_process(2)
    summary = state.result()  # a crash raises here, with its traceback
    print(f"{summary.counts}; report: {summary.report}")
    return exit_process(0 if summary.complete else 1)  # an S3 source's file system would abort the process at exit


if __name__ == "__main__":
    # Run the module's own import (`flows.sort`), not `__main__`: Dask workers unpickle tasks by module name.
    from flows.sort import main as imported_main

    sys.exit(imported_main())
