"""Pipeline overhead: `dvc repro` with nothing to do, and a Prefect sort flow vs. the same sort from the library.

    python -m bench.overhead [--pictures 200]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import make_archive, write_result


def timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pictures", type=int, default=200)
    parser.add_argument("--model", type=Path, default=Path("models/target"))
    args = parser.parse_args(argv)
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

    def overrides(name: str) -> dict:
        return {"model": args.model, "action": "none", "run": name}

    library_seconds = timed(lambda: sort_source(build_request(None, str(listing), listing_dir / "library",
                                                              overrides("library"))))
    flow_seconds = timed(lambda: sort_flow(str(listing), listing_dir / "flow", overrides("flow"), Path("none.yaml")))
    shutil.rmtree(listing_dir)
    result = {"dvc_repro_nothing_to_do_s": round(repro_seconds, 2), "dvc_version_s": round(version_seconds, 2),
              "pipeline_up_to_date_before": noop.returncode == 0, "sort_pictures": args.pictures,
              "library_sort_s": round(library_seconds, 2), "prefect_flow_sort_s": round(flow_seconds, 2),
              "prefect_overhead_s": round(flow_seconds - library_seconds, 2),
              "prefect_api": os.environ.get("PREFECT_API_URL", "temporary local server")}
    path = write_result("overhead", result)
    print(f"dvc repro with nothing to do: {repro_seconds:.1f} s (dvc itself starts in {version_seconds:.1f} s); "
          f"sort of {args.pictures}: library {library_seconds:.1f} s, Prefect flow {flow_seconds:.1f} s -> {path}")
    return result


if __name__ == "__main__":
    main()
