"""Pipeline overhead: `dvc repro` with nothing to do, and a Prefect sort flow vs. the same sort from the library.

    python -m bench.overhead [--pictures 200] [--pairs 5]

The flow/library ratio of seconds comes from interleaved repetitions (`common.compare_interleaved`), each a
fresh sort (tiling off: this measures orchestration, not scoring) into its own folder. The first flow run
of a process also starts Prefect's temporary local API (when no server is set): that is the warm-up, and
its time is reported on its own (`first_flow_sort_s`).
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import compare_interleaved, load_average, make_archive, ratio_text, write_result


def timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pictures", type=int, default=200)
    parser.add_argument("--model", type=Path, default=Path("models/target"))
    parser.add_argument("--pairs", type=int, default=5)
    args = parser.parse_args(argv)
    load_start = load_average()
    env = {**os.environ, "DVC_NO_ANALYTICS": "1",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    dvc = [sys.executable, "-m", "dvc"]
    noop = subprocess.run(dvc + ["status", "--quiet"], env=env)
    if noop.returncode != 0:  # `dvc repro` would rebuild (train!) instead of measuring its no-op cost
        print("pipeline not up to date: run `dvc repro` first; skipping the no-op measurement")
        repro_seconds = float("nan")
    else:
        repro_seconds = timed(lambda: subprocess.run(dvc + ["repro"], env=env, check=True, capture_output=True))
    version_seconds = timed(lambda: subprocess.run(dvc + ["version"], env=env, check=True, capture_output=True))

    from flows.sort import sort_flow
    from mona_pipeline.sort import build_request, sort_source

    folder = make_archive(Path("bench/archive/realistic"), args.pictures)
    listing_dir = Path(tempfile.mkdtemp())
    listing = listing_dir / "list.txt"
    listing.write_text("\n".join(str(p.resolve()) for p in sorted(folder.iterdir())[: args.pictures]) + "\n")

    counter = itertools.count()

    def fresh(name: str) -> tuple[Path, dict]:
        """A new run name and folder for each repetition: none resumes another's journal."""
        run = f"{name}{next(counter)}"
        return listing_dir / run, {"model": args.model, "action": "none", "tiling": "off", "run": run}

    def library() -> float:
        out, overrides = fresh("library")
        return timed(lambda: sort_source(build_request(None, str(listing), out, overrides)))

    def flow() -> float:
        out, overrides = fresh("flow")
        return timed(lambda: sort_flow(str(listing), out, overrides, Path("none.yaml")))

    first_flow_seconds = flow()  # starts the temporary API: the first run's cost, apart
    comparison = compare_interleaved(flow, library, a="prefect_flow", b="library", unit="s", pairs=args.pairs)
    shutil.rmtree(listing_dir)
    result = {"dvc_repro_nothing_to_do_s": round(repro_seconds, 2), "dvc_version_s": round(version_seconds, 2),
              "pipeline_up_to_date_before": noop.returncode == 0, "sort_pictures": args.pictures,
              "first_flow_sort_s": round(first_flow_seconds, 2), "flow_vs_library_seconds": comparison,
              "prefect_overhead_s": round(comparison["medians"]["prefect_flow"] - comparison["medians"]["library"], 2),
              "prefect_api": os.environ.get("PREFECT_API_URL", "temporary local server")}
    path = write_result("overhead", result, load_start)
    print(f"dvc repro with nothing to do: {repro_seconds:.1f} s (dvc itself starts in {version_seconds:.1f} s); "
          f"sort of {args.pictures}: first flow run {first_flow_seconds:.1f} s, then flow/library seconds "
          f"{ratio_text(comparison)}; medians {comparison['medians']} s -> {path}")
    return result


if __name__ == "__main__":
    main()
