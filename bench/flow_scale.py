"""Archives of a user's size through the Prefect sort flow: flow-process memory, seconds per picture and
bytes read, for a folder and a .tar.gz, on threads and on a local Dask cluster.

    python -m bench.flow_scale [--sizes 10000 200000] [--runners threads dask] [--chunk-size 25000]

Each run is `python -m flows.sort SOURCE --action none --tiling off` in a fresh process with its own
PREFECT_HOME (a temporary local API). The pictures are `common.small_pictures` (96x64 JPEGs) and the model is
`common.stand_in_model` (a tiny real Keras network): what is measured is the pipeline's own cost per picture
(listing, reading, decoding, journal), which is what grows with the archive, not the network's. Reported per
run: the flow process's peak resident memory (VmHWM; Dask workers are processes of their own), the flow's
seconds per picture (`SortSummary.seconds`: the flow's body, after Prefect and the cluster started), and for
archives the bytes read from the archive file over its size (counted in the process that reads it: the flow
process on threads; on Dask the one chunk of a tar is read by one worker through the same code).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from bench.common import load_average, small_pictures, stand_in_model, write_result

CHILD = """
import io, json, sys, tarfile
from mona_pipeline.sort import archives
read = [0]
class Counting(io.FileIO):
    def read(self, size=-1):
        data = super().read(size)
        read[0] += len(data)
        return data
    def readinto(self, buffer):
        count = super().readinto(buffer)
        read[0] += count or 0
        return count
opened = tarfile.open
archives.tarfile.open = lambda name, mode="r", **kw: opened(fileobj=Counting(name, "rb"), mode=mode, **kw)
from flows.sort import main
code = main(sys.argv[1:])
summary = json.load(open(sys.argv[sys.argv.index("--out") + 1] + "/runs/scale/summary.json"))
peak_kib = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print("RESULT " + json.dumps({"code": code, "pictures": summary["pictures"], "seconds": summary["seconds"],
                              "peak_rss_mb": peak_kib / 1024, "archive_bytes_read": read[0]}))
"""


def tar_of(folder: Path, path: Path) -> Path:
    """The folder's pictures as one .tar.gz (written once)."""
    if not path.is_file():
        with tarfile.open(path.with_suffix(".partial"), "w:gz") as archive:
            archive.add(folder, arcname=folder.name)
        path.with_suffix(".partial").rename(path)
    return path


def run_flow(source: Path, model: Path, runner: str, chunk_size: int) -> dict:
    with tempfile.TemporaryDirectory() as scratch:
        env = {**os.environ, "PREFECT_HOME": str(Path(scratch) / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
               "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90", "TF_CPP_MIN_LOG_LEVEL": "3",
               "PREFECT_LOGGING_LEVEL": "WARNING"}
        arguments = [sys.executable, "-c", CHILD, str(source), "--out", str(Path(scratch) / "out"), "--model",
                     str(model), "--action", "none", "--tiling", "off", "--run", "scale", "--chunk-size",
                     str(chunk_size), "--params", str(Path(scratch) / "none.yaml")]
        if runner == "dask":
            arguments += ["--dask", "local"]
        done = subprocess.run(arguments, capture_output=True, text=True, env=env)
        lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
        if done.returncode != 0 or not lines:
            raise RuntimeError(f"flow run failed ({done.returncode}): {done.stderr[-3000:]}")
        run = json.loads(lines[-1][len("RESULT "):])
    size = source.stat().st_size if source.is_file() else None
    counted = size and runner == "threads"  # on Dask a worker reads the archive: its reads are not counted here
    run.update(source=source.name, runner=runner, seconds_per_picture=run["seconds"] / run["pictures"],
               archive_bytes=size, bytes_read_per_archive_byte=run["archive_bytes_read"] / size if counted else None)
    print(f"{source.name} on {runner}: {run['pictures']} pictures, {run['seconds']:.0f} s "
          f"({1000 * run['seconds_per_picture']:.2f} ms each), flow peak RSS {run['peak_rss_mb']:.0f} MB"
          + (f", read {run['bytes_read_per_archive_byte']:.3f}x the archive" if counted else ""), flush=True)
    return run


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[10000, 200000])
    parser.add_argument("--runners", nargs="+", default=["threads", "dask"], choices=["threads", "dask"])
    parser.add_argument("--sources", nargs="+", default=["folder", "tar.gz"], choices=["folder", "tar.gz"])
    parser.add_argument("--chunk-size", type=int, default=25000, help="pictures per chunk (200k: 8 chunks)")
    parser.add_argument("--folder", type=Path, default=Path("bench/archive/small"))
    args = parser.parse_args(argv)
    load_start = load_average()
    with tempfile.TemporaryDirectory() as scratch:
        model = stand_in_model(Path(scratch) / "model")
        runs = []
        for size in args.sizes:
            folder = small_pictures(args.folder / str(size), size)
            sources = {"folder": folder, "tar.gz": tar_of(folder, args.folder / f"{size}.tar.gz")}
            for name in args.sources:
                for runner in args.runners:
                    runs.append({"size": size, **run_flow(sources[name], model, runner, args.chunk_size)})
    flat = {}
    for name in args.sources:
        for runner in args.runners:
            by_size = {run["size"]: run for run in runs if run["runner"] == runner and
                       (run["archive_bytes"] is None) == (name == "folder")}
            if len(by_size) >= 2:
                small, large = min(by_size), max(by_size)
                flat[f"{name} on {runner}"] = {
                    "seconds_per_picture_ratio": round(by_size[large]["seconds_per_picture"] /
                                                       by_size[small]["seconds_per_picture"], 3),
                    "peak_rss_ratio": round(by_size[large]["peak_rss_mb"] / by_size[small]["peak_rss_mb"], 3),
                    "sizes": [small, large]}
    result = {"pictures": "common.small_pictures: 96x64 JPEGs", "model": "common.stand_in_model (32 px)",
              "chunk_size": args.chunk_size, "runs": runs, "largest_over_smallest": flat}
    path = write_result("flow_scale", result, load_start)
    print(json.dumps(flat, indent=1), f"-> {path}")
    return result


if __name__ == "__main__":
    main()
