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
"""

import argparse
import itertools
import sys
import time
from functools import lru_cache
from pathlib import Path
from typing import Iterator, get_args

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_progress_artifact, create_table_artifact, \
    update_progress_artifact
from prefect.cache_policies import NO_CACHE
from prefect.futures import as_completed
from prefect.task_runners import ThreadPoolTaskRunner

from mona_pipeline.config import Action, load_params
from mona_pipeline.inference import Scorer
from mona_pipeline.models import load_trained
from mona_pipeline.sort import SortOverrides, SortRequest, SortRun, Tally, build_request, overrides_from

IN_FLIGHT = 4  # chunks submitted and not yet collected


@lru_cache(maxsize=2)
def _scorer(model: Path) -> Scorer:
    """One loaded, compiled model per process (the flow's, or each Dask worker's), reused by its chunks."""
    return Scorer(load_trained(model))


@task(cache_policy=NO_CACHE)
def recover_run(request: SortRequest) -> int:
    """Finish or roll back what an interrupted run left half done, before new work starts."""
    with SortRun(request, _scorer(request.model)) as run:
        return run.recover()


@task(cache_policy=NO_CACHE, retries=1, retry_delay_seconds=5)
def sort_chunk(request: SortRequest, item_ids: list[str]) -> Tally:
    """Score, decide and act on one chunk; journaled, so a retry redoes nothing already done."""
    with SortRun(request, _scorer(request.model)) as run:
        return run.process(run.source.items_for(item_ids), sheet=run.sheet.for_chunk(item_ids[0]))


def chunked(ids: Iterator[str], size: int) -> Iterator[list[str]]:
    while chunk := list(itertools.islice(ids, size)):
        yield chunk


def submit_chunks(request: SortRequest, item_ids: list[str], on_done) -> list[Tally]:
    """Submit the chunks with at most IN_FLIGHT outstanding (memory does not grow with the archive)."""
    tallies, running = [], []

    def collect(future, size: int) -> None:
        tallies.append(future.result())
        on_done(size)

    for chunk in chunked(iter(item_ids), request.chunk_size):
        running.append((sort_chunk.submit(request, chunk), len(chunk)))
        if len(running) >= IN_FLIGHT:
            collect(*running.pop(0))
    sizes = {id(future): size for future, size in running}
    for future in as_completed([future for future, _ in running]):
        collect(future, sizes[id(future)])
    return tallies


@flow(name="sort", task_runner=ThreadPoolTaskRunner(max_workers=2), log_prints=True)
def sort_flow(source: str, out: Path, overrides: SortOverrides | None = None,
              params_file: Path = Path("params.yaml")) -> dict:
    """Sort a folder, archive, list or remote folder: keep / review / drop, journaled and undoable.

    Args:
        source: folder, .zip/.tar archive, .txt list of paths, or URL.
        out: output folder (keep/, review/, runs/<run>/).
        overrides: settings that replace params.yaml's `sort` section for this run; empty = the file's.
        params_file: the project's parameters (absent: the built-in defaults).
    """
    start = time.perf_counter()
    params = load_params(params_file) if Path(params_file).is_file() else None
    request = build_request(params, source, out, overrides)
    with SortRun(request, _scorer(request.model)) as run:  # checks source, action and model before any work
        recover_run(request)
        item_ids = list(run.source.ids())  # one walk of the source: chunks and the progress total
        progress = create_progress_artifact(progress=0.0, key="sort-progress",
                                            description=f"sorting {len(item_ids)} pictures from {request.source}")
        done = 0

        def advance(size: int) -> None:
            nonlocal done
            done += size
            update_progress_artifact(progress, 100.0 * done / max(1, len(item_ids)))

        tallies = submit_chunks(request, item_ids, advance)
        run.sheet.merge([tally.samples for tally in tallies])
        summary = run.finish(Tally.merged(tallies), time.perf_counter() - start)
    publish(summary)
    return summary


def publish(summary: dict) -> None:
    counts = summary["counts"]
    create_table_artifact(key="sort-counts", table=[{"decision": k, "pictures": v} for k, v in counts.items()],
                          description=f"sort of {summary['source']}")
    create_markdown_artifact(key="sort-summary", markdown=(
        f"# Sort of `{summary['source']}`\n"
        f"{summary['pictures']} pictures: **{counts['keep']} keep**, {counts['review']} review, "
        f"{counts['drop']} drop, {counts['unreadable']} unreadable; action `{summary['action']}`, "
        f"confidence {summary['confidence']}.\n\n"
        f"- kept: `{summary['kept_dir']}`\n- report: `{summary['report']}`\n- journal: `{summary['journal']}`\n"
        f"- {summary['pictures_per_second']} pictures/s; {summary['resumed_skipped']} already done; "
        f"{summary['action_failures']} file operations failed (pictures left in place)\n"))


def dask_runner(address: str):
    """A DaskTaskRunner on an existing scheduler, or on a LocalCluster for `local`."""
    from prefect_dask import DaskTaskRunner

    if address == "local":
        return DaskTaskRunner(cluster_class="distributed.LocalCluster",
                              cluster_kwargs={"n_workers": 2, "threads_per_worker": 1, "processes": True})
    return DaskTaskRunner(address=address)


def serve(inbox: Path, out: Path, cron: str) -> None:
    """Serve the nightly deployment: sort `inbox` into `out` on `cron` (see also prefect.yaml)."""
    sort_flow.serve(name="nightly-inbox", cron=cron, parameters={
        "source": str(inbox), "out": str(out), "overrides": {"action": "move", "run": "nightly-inbox"}})


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"]:
        parser = argparse.ArgumentParser(prog="python -m flows.sort serve")
        parser.add_argument("--inbox", type=Path, default=Path("inbox"))
        parser.add_argument("--out", type=Path, default=Path("sorted"))
        parser.add_argument("--cron", default="0 2 * * *")
        args = parser.parse_args(argv[1:])
        serve(args.inbox, args.out, args.cron)
        return 0
    parser = argparse.ArgumentParser(prog="python -m flows.sort", description="Run one sort as a Prefect flow.")
    parser.add_argument("source")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    # Each option defaults to None = params.yaml's value.
    parser.add_argument("--action", default=None, choices=get_args(Action))
    parser.add_argument("--confidence", type=float, default=None)
    parser.add_argument("--review-from", type=float, default=None)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--run", default=None)
    parser.add_argument("--dask", default=None, help="Dask scheduler address, or 'local' for a LocalCluster")
    args = parser.parse_args(argv)
    overrides = overrides_from(args)
    runner = sort_flow.with_options(task_runner=dask_runner(args.dask)) if args.dask else sort_flow
    summary = runner(args.source, args.out, overrides, args.params)
    print(f"{summary['counts']}; report: {summary['report']}")
    return 0


if __name__ == "__main__":
    # Run the module's own import (`flows.sort`), not `__main__`: Dask workers unpickle tasks by module name.
    from flows.sort import main as imported_main

    sys.exit(imported_main())
