"""Sort time and peak memory against the number of files: time should grow linearly, memory stay flat.

    python -m bench.scale [--small 1000] [--large 10000] [--pairs 5] [--once 50000]

Each sort is `mona sort` (action none) in its own process, so each peak RSS is that run's alone. The
ratios large/small (peak RSS, seconds per file) come from interleaved pairs of such processes
(`common.compare_interleaved`); the `--once` sizes run once each, for their absolute time and memory only.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.common import compare_interleaved, load_average, ratio_text, small_pictures, summarize_pairs, write_result

# The child's peak is VmHWM, its own address space's high-water mark: ru_maxrss would report at least the
# parent's peak (Linux keeps it across the vfork + exec that starts the child; measured: every child of a
# 1.8 GB parent "peaked" at exactly the parent's 1795.2 MB).
CHILD = """
import json, sys, time
from pathlib import Path
from mona_pipeline.sort import build_request, sort_source
start = time.perf_counter()
summary = sort_source(build_request(None, sys.argv[1], Path(sys.argv[2]),
                                    {"model": sys.argv[3], "action": "none", "batch_size": 128, "run": "scale"}))
seconds = time.perf_counter() - start
peak_kib = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"pictures": summary.pictures, "seconds": seconds, "peak_rss_mb": peak_kib / 1024}))
"""


def sort_in_child(folder: Path, model: Path) -> dict:
    """One sort of `folder` in a fresh process: {pictures, seconds, peak_rss_mb, pictures_per_second}."""
    with tempfile.TemporaryDirectory() as out:
        output = subprocess.run([sys.executable, "-c", CHILD, str(folder), out, str(model)],
                                capture_output=True, text=True, check=True).stdout
    run = json.loads(output.strip().splitlines()[-1])
    run["pictures_per_second"] = run["pictures"] / run["seconds"]
    print(f"{run['pictures']} files: {run['seconds']:.1f} s ({run['pictures_per_second']:.0f}/s), "
          f"peak RSS {run['peak_rss_mb']:.0f} MB")
    return run


def count_text(files: int) -> str:
    """10000 -> "10k" (result keys), 300 -> "300"."""
    return f"{files // 1000}k" if files % 1000 == 0 else str(files)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--large", type=int, default=10000)
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--once", type=int, nargs="*", default=[50000], help="sizes run once, for absolute figures")
    parser.add_argument("--model", type=Path, default=Path("models/target"))
    parser.add_argument("--folder", type=Path, default=Path("bench/archive/small"))
    parser.add_argument("--name", default="scale", help="results file: bench/results/NAME.json")
    args = parser.parse_args(argv)
    load_start = load_average()
    runs: dict[int, list[dict]] = {args.small: [], args.large: []}

    def peak_rss(size: int) -> float:
        run = sort_in_child(small_pictures(args.folder / str(size), size), args.model)
        runs[size].append(run)
        return run["peak_rss_mb"]

    warmup = 1
    rss = compare_interleaved(lambda: peak_rss(args.large), lambda: peak_rss(args.small), a=f"{args.large} files",
                              b=f"{args.small} files", unit="MB", pairs=args.pairs, warmup=warmup)
    # the same processes' times (the warm-up runs come first, then one run per pair, in the pairs' order)
    seconds_per_file = {size: [run["seconds"] / size for run in runs[size][warmup:]] for size in runs}
    key = f"{count_text(args.large)}_vs_{count_text(args.small)}"
    result = {
        f"rss_{key}": rss,
        f"seconds_per_file_{key}": {"ratio": summarize_pairs(seconds_per_file[args.large],
                                                             seconds_per_file[args.small]),
                                    "pairs": args.pairs, "unit": "s/file", "same_processes_as": f"rss_{key}"},
        "runs": {str(size): sized[warmup:] for size, sized in runs.items()},
        "once": [sort_in_child(small_pictures(args.folder / str(size), size), args.model) for size in args.once],
    }
    path = write_result(args.name, result, load_start)
    print(f"peak RSS {key}: {ratio_text(rss, 3)}; seconds per file {key}: "
          f"{ratio_text(result[f'seconds_per_file_{key}'], 3)} -> {path}")
    return result


if __name__ == "__main__":
    main()
