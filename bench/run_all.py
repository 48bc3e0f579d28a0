"""Every benchmark, one after another, then the table for docs/benchmarks.md (bench/results/table.md).

    make bench        # = python -m bench.run_all [--model models/target] [--project .] [--only NAME ...]

Every ratio in the table is the median (min-max) of interleaved A/B pairs (`common.compare_interleaved`).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

from bench import flow_scale, overhead, scale, several_models, sort_throughput, train_input, train_precision
from bench.common import RESULTS, ratio_text

BENCHMARKS = {"sort_throughput": sort_throughput, "train_input": train_input, "scale": scale, "overhead": overhead,
              "several_models": several_models, "flow_scale": flow_scale, "train_precision": train_precision}


def load(name: str) -> dict:
    return json.loads((RESULTS / f"{name}.json").read_text())


def sort_rows(sort: dict) -> list[tuple[str, str, str]]:
    compared = sort["comparisons"]
    off = [v for c in compared.values() for v in c["values"].get("sort_tiling_off", [])]  # every repetition
    auto, tiled = compared["tiling_auto_vs_off"], sort["tiling_auto"]
    return [
        ("sort, tiling off (pictures/s)", f"{statistics.median(off):.1f}", ""),
        (f"sort, tiling auto (pictures/s; {tiled['pictures_tiled']} of {tiled['pictures']} pictures tiled, "
         f"{tiled['tiles_scored']} tiles)", f"{auto['medians']['sort_tiling_auto']:.1f}", ""),
        ("decode only, same reader, no model: the ceiling (pictures/s)",
         f"{compared['sort_vs_ceiling']['medians']['decode_only']:.1f}", ""),
        ("paper's loop: open, resize, predict one at a time (pictures/s)",
         f"{compared['sort_vs_paper_loop']['medians']['paper_loop']:.2f}", ""),
        ("sort (tiling off) / ceiling", ratio_text(compared["sort_vs_ceiling"]), ">= 0.8"),
        ("sort, tiling auto / tiling off", ratio_text(auto), ">= 0.6"),
        ("sort (tiling off) / paper loop", ratio_text(compared["sort_vs_paper_loop"], 1), ">= 10"),
    ]


def precision_rows(precision: dict) -> list[tuple[str, str, str]]:
    """Training speed by precision on the CPU it ran on, and what `train.precision: auto` picks there."""
    comparison = precision["float32_vs_bfloat16"]
    return [(f"training steps/s: float32 / mixed bfloat16 ({precision['machine']['cpu']}; auto picks "
             f"{precision['auto_picks']})", ratio_text(comparison), "")]


def other_rows(train: dict, size: dict, over: dict) -> list[tuple[str, str, str]]:
    rss_key = next(key for key in size if key.startswith("rss_"))
    seconds_key = rss_key.replace("rss_", "seconds_per_file_")
    rss = size[rss_key]
    label = rss_key.removeprefix("rss_").replace("_vs_", " / ")  # "10k / 1k"
    runs = [(int(n), statistics.median(r["seconds"] for r in sized), statistics.median(r["peak_rss_mb"] for r in sized),
             f"median of {len(sized)} runs") for n, sized in size["runs"].items()]
    runs += [(r["pictures"], r["seconds"], r["peak_rss_mb"], "one run") for r in size["once"]]
    flow = over["flow_vs_library_seconds"]
    repro = over["dvc_repro_nothing_to_do_s"]
    return [
        ("training steps/s: shards / in memory", ratio_text(train["comparisons"]["shards_vs_in_memory"]), ">= 0.9"),
        ("training steps/s: raw folder / in memory", ratio_text(train["comparisons"]["raw_folder_vs_in_memory"]),
         ""),
        *([("training pictures/s: batch x2 / batch", ratio_text(train["comparisons"]["double_batch_vs_batch"]), "")]
          if "double_batch_vs_batch" in train["comparisons"] else []),
        *([(f"cores a training step keeps busy (of {train['cores']}; median)",
            ", ".join(f"{name} {value:.2f}" for name, value in train["cores_busy_median"].items()), "")]
          if "cores_busy_median" in train else []),
        *[(f"sort of {n} small files: s, peak RSS MB ({how})", f"{seconds:.1f} s, {rss_mb:.0f} MB", "")
          for n, seconds, rss_mb, how in sorted(runs)],
        (f"peak RSS {label} files", ratio_text(rss, 3), "<= 1.10"),
        (f"seconds per file {label} files (same runs)", ratio_text(size[seconds_key]), ""),
        ("`dvc repro` with nothing to do (s)",
         "not measured (pipeline not up to date here)" if math.isnan(repro) else repro, ""),
        (f"Prefect flow / library, seconds for the same {over['sort_pictures']} pictures",
         f"{ratio_text(flow)}; medians {flow['medians']['prefect_flow']:.2f} vs {flow['medians']['library']:.2f} s, "
         f"first flow run {over['first_flow_sort_s']:.2f} s", ""),
    ]


def archive_rows(several: dict, flows: dict) -> list[tuple[str, str, str]]:
    """Several characters in one pass, and archives of a user's size through the flow."""
    rows = [(f"sort with 3 models / 1 model, seconds, tiling {key.removeprefix('tiling_')} ({several['pictures']} "
             f"wallpapers)", f"{ratio_text(comparison)}; medians {comparison['medians']['three models']:.1f} vs "
             f"{comparison['medians']['one model']:.1f} s", "<= 1.3")
            for key, comparison in several.items() if key.startswith("tiling_")]
    for run in flows["runs"]:
        read = f", {run['bytes_read_per_archive_byte']:.3f} x the archive read" \
            if run["bytes_read_per_archive_byte"] and run["runner"] == "threads" else ""
        rows.append((f"flow, {run['size']} small pictures, {'tar.gz' if run['archive_bytes'] else 'folder'} on "
                     f"{run['runner']}: ms per picture, flow peak RSS", f"{1000 * run['seconds_per_picture']:.2f} ms, "
                     f"{run['peak_rss_mb']:.0f} MB{read}", ""))
    for name, flat in flows["largest_over_smallest"].items():
        small, large = flat["sizes"]
        rows.append((f"flow, {name}: {large} / {small} pictures, seconds per picture; peak RSS",
                     f"{flat['seconds_per_picture_ratio']:.2f}; {flat['peak_rss_ratio']:.2f}", "<= 1.1; <= 1.1"))
    return rows


def table() -> str:
    sort, train, size, over = (load(n) for n in ("sort_throughput", "train_input", "scale", "overhead"))
    several, flows, precision = (load(n) for n in ("several_models", "flow_scale", "train_precision"))
    rows = sort_rows(sort) + other_rows(train, size, over) + precision_rows(precision) + archive_rows(several, flows)
    named = (("sort", sort), ("training input", train), ("scale", size), ("overhead", over),
             ("several models", several), ("flow scale", flows), ("training precision", precision))
    when = "; ".join(f"{name} {result['when']}, load {result['load_start'][0]:.1f} -> {result['load_end'][0]:.1f}"
                     for name, result in named)
    tiling = sort["tiling_auto"]["tiling"]
    machine = sort["machine"]
    lines = [f"Measured on {machine['cpu']} ({machine['cores']} cores, GPUs: {machine['gpus'] or 'none'}), model "
             f"{sort['architecture']} at {sort['image_size']} px, {sort['precision_policy']}; "
             f"{sort['pictures']} pictures ({sort['paper_loop_pictures']} for the paper loop), tiling "
             f"{', '.join(f'{k} {v}' for k, v in tiling.items() if k != 'mode')} at decision threshold "
             f"{sort['tiling_auto']['decision_threshold']:.3f}. Each result's time written (UTC) and 1-minute load "
             f"average at its start -> end: {when}.", "",
             "Ratios: median (min-max) of the pair ratios, n interleaved A/B pairs after a warm-up.", "",
             "| measure | value | target |", "|---|---|---|"]
    lines += [f"| {name} | {value} | {target} |" for name, value, target in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path, default=Path("models/target"))
    parser.add_argument("--project", type=Path, default=Path("."),
                        help="the checkout whose training data (manifest, raw, shards) train_input reads")
    parser.add_argument("--only", nargs="*", choices=BENCHMARKS, default=BENCHMARKS,
                        help="run only these (none: only the table, from the results files)")
    args = parser.parse_args(argv)
    model = ["--model", str(args.model)]
    arguments = {"sort_throughput": model, "train_input": ["--project", str(args.project)], "scale": model,
                 "overhead": model, "several_models": model, "flow_scale": [], "train_precision": []}
    for name in args.only:
        BENCHMARKS[name].main(arguments[name])
    text = table()
    (RESULTS / "table.md").write_text(text + "\n")
    print("\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
