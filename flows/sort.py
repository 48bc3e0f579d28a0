"""The bulk sort as a Prefect flow: its typed parameters are the run form the Prefect UI shows.

    python -m flows.sort SOURCE --out DIR [--dask tcp://scheduler:8786]   # one run
    python -m flows.sort serve                                            # nightly inbox schedule

The source is cut into chunks of `chunk_size` pictures, each a task on the flow's
task runner: threads by default, or Dask (`--dask ADDRESS`, or `--dask local`
for a LocalCluster) when one archive outgrows one machine. Workers on other
machines need the source, the model and OUT on a shared file system.
"""

from __future__ import annotations

import argparse
import itertools
import random
import sys
import time
import zlib
from functools import lru_cache
from pathlib import Path
from typing import Iterator

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_progress_artifact, create_table_artifact, \
    update_progress_artifact
from prefect.cache_policies import NO_CACHE
from prefect.futures import as_completed
from prefect.task_runners import ThreadPoolTaskRunner

from mona_pipeline.report import ReportSampler
from mona_pipeline.sort import RunState, Sorter, SortRequest

IN_FLIGHT = 4  # chunks submitted and not yet collected


@lru_cache(maxsize=4)
def _sorter(request_json: str) -> Sorter:
    """One Sorter (model, journal) per worker process and request, reused by its chunks."""
    return Sorter(SortRequest.model_validate_json(request_json))


@task(cache_policy=NO_CACHE, retries=1, retry_delay_seconds=5)
def sort_chunk(request: SortRequest, item_ids: list[str]) -> RunState:
    """Score, decide and act on one chunk; journaled, so a retry redoes nothing already done."""
    sorter = _sorter(request.model_dump_json())
    chunk_sampler = ReportSampler(sorter.run_dir / "thumbs", seed=zlib.crc32(item_ids[0].encode()))
    return sorter.process(sorter.source.items_for(item_ids), sampler=chunk_sampler)


@task(cache_policy=NO_CACHE)
def recover_run(request: SortRequest) -> int:
    """Finish or roll back what an interrupted run left half done, before new work starts."""
    return _sorter(request.model_dump_json()).recover()


def chunked(ids: Iterator[str], size: int) -> Iterator[list[str]]:
    while chunk := list(itertools.islice(ids, size)):
        yield chunk


def merge_samples(states: list[RunState], sampler: ReportSampler) -> None:
    """Pool the chunks' report samples, keeping a random `per_decision` of each decision."""
    rng = random.Random(0)
    for decision in ("keep", "review", "drop"):
        pooled = [s for state in states for s in state.samples.get(decision, [])]
        sampler.samples[decision] = rng.sample(pooled, min(len(pooled), sampler.per_decision))


@flow(name="sort", task_runner=ThreadPoolTaskRunner(max_workers=2), log_prints=True)
def sort_flow(request: SortRequest) -> dict:
    """Sort a folder, archive, list or remote folder: keep / review / drop, journaled and undoable."""
    start = time.perf_counter()
    sorter = _sorter(request.model_dump_json())  # validates source, action and model before any work
    recover_run(request)
    total = sum(1 for _ in sorter.source.ids())
    progress = create_progress_artifact(progress=0.0, key="sort-progress",
                                        description=f"sorting {total} pictures from {request.source}")
    states, done, running = [], 0, []
    chunks = chunked(sorter.source.ids(), request.chunk_size)
    for chunk in chunks:  # bounded in flight: memory does not grow with the number of chunks
        running.append((sort_chunk.submit(request, chunk), len(chunk)))
        if len(running) >= IN_FLIGHT:
            done += _collect(running.pop(0), states)
            update_progress_artifact(progress, 100.0 * done / max(1, total))
    for future in as_completed([f for f, _ in running]):
        size = next(n for f, n in running if f is future)
        done += _collect((future, size), states)
        update_progress_artifact(progress, 100.0 * done / max(1, total))
    merged = RunState()
    for state in states:
        for decision, count in state.counts.items():
            merged.counts[decision] += count
        merged.errors += state.errors
        merged.skipped_done += state.skipped_done
        merged.action_failures += state.action_failures
    merge_samples(states, sorter.sampler)
    summary = sorter.finish(merged, time.perf_counter() - start)
    publish(summary)
    return summary


def _collect(running: tuple, states: list[RunState]) -> int:
    future, size = running
    states.append(future.result())
    return size


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
    request = SortRequest(source=str(inbox), out=out, action="move", run="nightly-inbox")
    sort_flow.serve(name="nightly-inbox", cron=cron, parameters={"request": request.model_dump(mode="json")})


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
    parser.add_argument("--action", default="copy", choices=["copy", "move", "link", "delete", "none"])
    parser.add_argument("--confidence", type=float, default=None)
    parser.add_argument("--review-from", type=float, default=None)
    parser.add_argument("--model", type=Path, default=Path("models/target"))
    parser.add_argument("--run", default=None)
    parser.add_argument("--dask", default=None, help="Dask scheduler address, or 'local' for a LocalCluster")
    args = parser.parse_args(argv)
    request = SortRequest(source=args.source, out=args.out, action=args.action, confidence=args.confidence,
                          review_from=args.review_from, model=args.model, run=args.run)
    runner = sort_flow.with_options(task_runner=dask_runner(args.dask)) if args.dask else sort_flow
    summary = runner(request)
    print(f"{summary['counts']}; report: {summary['report']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
