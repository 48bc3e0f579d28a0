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
from pathlib import Path

from bench.common import small_pictures, write_result

CHILD = """
import json, resource, sys, time
from pathlib import Path
from mona_pipeline.sort import build_request, sort_source
start = time.perf_counter()
summary = sort_source(build_request(None, sys.argv[1], Path(sys.argv[2]),
                                    {"model": sys.argv[3], "action": "none", "batch_size": 128, "run": "scale"}))
print(json.dumps({"pictures": summary["pictures"], "seconds": time.perf_counter() - start,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 50000])
    parser.add_argument("--model", type=Path, default=Path("models/target"))
    parser.add_argument("--folder", type=Path, default=Path("bench/archive/small"))
    parser.add_argument("--name", default="scale", help="results file: bench/results/NAME.json")
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
    sizes = sorted(by_size)
    if len(sizes) >= 2:  # the largest against the one before it
        small, large = sizes[-2], sizes[-1]
        key = f"{large // 1000}k_vs_{small // 1000}k"
        result[f"rss_{key}"] = round(by_size[large]["peak_rss_mb"] / by_size[small]["peak_rss_mb"], 3)
        result[f"seconds_per_file_{key}"] = round(
            (by_size[large]["seconds"] / large) / (by_size[small]["seconds"] / small), 3)
    path = write_result(args.name, result)
    print(f"-> {path}")
    return result


if __name__ == "__main__":
    main()
