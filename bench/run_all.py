"""Every benchmark, one after another, then the table for README.md.

    make bench        # = python -m bench.run_all
"""

from __future__ import annotations

import json
import sys

from bench import overhead, scale, sort_throughput, train_input
from bench.common import RESULTS


def table() -> str:
    load = lambda name: json.loads((RESULTS / f"{name}.json").read_text())  # noqa: E731
    sort, train, size, over = (load(n) for n in ("sort_throughput", "train_input", "scale", "overhead"))
    runs = {r["pictures"]: r for r in size["runs"]}
    rows = [
        ("sort, full pipeline (pictures/s)", sort["sort_img_s"], ""),
        ("decode only, same reader, no model: the ceiling (pictures/s)", sort["decode_only_img_s"], ""),
        ("paper's loop: open, resize, predict one at a time (pictures/s)", sort["paper_loop_img_s"], ""),
        ("sort / ceiling", sort["sort_vs_ceiling"], ">= 0.8"),
        ("sort / paper loop", sort["sort_vs_paper_loop"], ">= 10"),
        ("training steps/s: shards / in memory", train["shards_vs_in_memory"], ">= 0.9"),
        ("training steps/s: raw folder / in memory", train["raw_folder_vs_in_memory"], ""),
        *[(f"sort of {n} small files: s, peak RSS MB", f"{r['seconds']:.1f} s, {r['peak_rss_mb']:.0f} MB", "")
          for n, r in sorted(runs.items())],
        ("peak RSS 50k / 10k files", size.get("rss_50k_vs_10k", "-"), "<= 1.10"),
        ("`dvc repro` with nothing to do (s)", over["dvc_repro_nothing_to_do_s"], ""),
        ("Prefect flow vs. library sort of the same pictures (s)",
         f"{over['prefect_flow_sort_s']} vs {over['library_sort_s']}", ""),
    ]
    when = ", ".join(f"{name} {result['when']}" for name, result in
                     (("sort", sort), ("training input", train), ("scale", size), ("overhead", over)))
    lines = [f"Measured ({when}) on {sort['machine']['cpu']} ({sort['machine']['cores']} cores, "
             f"GPUs: {sort['machine']['gpus'] or 'none'}), model {sort['architecture']} at {sort['image_size']} px, "
             f"{sort['precision_policy']}.", "", "| measure | value | target |", "|---|---|---|"]
    lines += [f"| {name} | {value} | {target} |" for name, value, target in rows]
    return "\n".join(lines)


def main() -> int:
    sort_throughput.main([])
    train_input.main([])
    scale.main([])
    overhead.main([])
    text = table()
    (RESULTS / "table.md").write_text(text + "\n")
    print("\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
