"""Sort time and peak memory against the number of files: time should grow linearly, memory stay flat.

    python -m bench.scale [--sizes 1000 10000 50000]

Each size runs `mona sort` (action none) in its own process, so each peak RSS is that run's alone.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import small_pictures, write_result

CHILD = """
import json, resource, sys, time
from pathlib import Path
from mona_pipeline.sort import SortRequest, sort_source
start = time.perf_counter()
summary = sort_source(SortRequest(source=sys.argv[1], out=Path(sys.argv[2]), model=Path(sys.argv[3]),
                                  action="none", batch_size=128, run="scale"))
print(json.dumps({"pictures": summary["pictures"], "seconds": time.perf_counter() - start,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 50000])
    parser.add_argument("--model", type=Path, default=Path("models/target"))
    parser.add_argument("--folder", type=Path, default=Path("bench/archive/small"))
    args = parser.parse_args(argv)
    runs = []
    for size in args.sizes:
        folder = small_pictures(args.folder / str(size), size)
        with tempfile.TemporaryDirectory() as out:
            output = subprocess.run([sys.executable, "-c", CHILD, str(folder), out, str(args.model)],
                                    capture_output=True, text=True, check=True).stdout
        run = json.loads(output.strip().splitlines()[-1])
        run["pictures_per_second"] = run["pictures"] / run["seconds"]
        runs.append(run)
        print(f"{run['pictures']} files: {run['seconds']:.1f} s ({run['pictures_per_second']:.0f}/s), "
              f"peak RSS {run['peak_rss_mb']:.0f} MB")
    by_size = {r["pictures"]: r for r in runs}
    result = {"runs": runs}
    if 10000 in by_size and 50000 in by_size:
        result["rss_50k_vs_10k"] = round(by_size[50000]["peak_rss_mb"] / by_size[10000]["peak_rss_mb"], 3)
        result["seconds_per_file_50k_vs_10k"] = round(
            (by_size[50000]["seconds"] / 50000) / (by_size[10000]["seconds"] / 10000), 3)
    path = write_result("scale", result)
    print(f"-> {path}")
    return result


if __name__ == "__main__":
    main()
