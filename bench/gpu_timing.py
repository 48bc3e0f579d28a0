"""Per-picture time on a GPU, measured the paper's way, for the paper's MonaCNN and the project default.

The paper reports 0.075 s a picture (mean; mode 0.06 s) for MonaCNN at 512x512 on an unstated GPU,
one picture at a time. This benchmark repeats that measurement with the project's own builder
(`mona_pipeline.models.build_model`, random weights) under three precision policies, and adds
the model-only numbers that say where the time goes:

- paper: decode a synthetic full-HD JPEG with Pillow, resize it to the model input (bilinear,
  antialiased, as the project's decoder), predict on a batch of 1, read the probabilities back;
- latency: model only, batch 1, from a host array to host probabilities (transfer included);
- throughput: model only, batches of 64 and 256 already on the device, in pictures per second.

Keras runs on JAX by default (`KERAS_BACKEND=jax`); the model is called through `jax.jit` over
`model.stateless_call(..., training=False)`. On another backend it falls back to
`model.predict_on_batch`. Every output is turned into a NumPy array (or blocked on) before the
clock stops.

    KERAS_BACKEND=jax python -m bench.gpu_timing                      # full run, ~5 minutes on a GPU
    KERAS_BACKEND=jax python -m bench.gpu_timing --quick --out /tmp/smoke.json   # smoke test on a CPU

Writes JSON to `--out` after every model (a run cut short keeps what it measured) and prints a
Markdown table at the end.
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import logging
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras  # noqa: E402  (the backend is chosen before keras is imported)
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from bench.common import cpu_model  # noqa: E402
from mona_pipeline.config import ModelParams  # noqa: E402
from mona_pipeline.models import build_model  # noqa: E402

log = logging.getLogger("bench.gpu_timing")

PAPER_MEAN_SECONDS = 0.075
PAPER_MODE_SECONDS = 0.06
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "gpu_timing.json"
POLICIES = ("float32", "mixed_bfloat16", "mixed_float16")
MODELS = (("monacnn", 512), ("mobilenetv3small", 128), ("mobilenetv3small", 512))

Predictor = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Counts:
    """How many times each measurement repeats; `--quick` shrinks them for a CPU smoke test."""

    warmup: int = 10
    pictures: int = 200
    latency_calls: int = 200
    batch_sizes: tuple[int, ...] = (64, 256)
    throughput_seconds: float = 2.0  # per batch size, after one warm-up batch
    throughput_min_batches: int = 3


QUICK = Counts(warmup=1, pictures=3, latency_calls=3, batch_sizes=(2, 4), throughput_seconds=0.0,
               throughput_min_batches=2)


@dataclass
class Result:
    """One model under one precision policy; times in milliseconds."""

    policy: str
    architecture: str
    image_size: int
    parameters: int = 0
    compile_seconds: dict[str, float] = field(default_factory=dict)
    paper_ms: dict[str, float] = field(default_factory=dict)
    latency_ms: dict[str, float] = field(default_factory=dict)
    throughput: dict[str, float] = field(default_factory=dict)  # batch size -> pictures/s
    error: str | None = None


def summarise(seconds: list[float]) -> dict[str, float]:
    """mean, median, mode (of times rounded to whole ms, as the paper's 0.06 s mode), min, max, p95 in ms."""
    ms = np.asarray(seconds) * 1000.0
    rounded = np.round(ms).astype(int).tolist()
    return {"mean": float(ms.mean()), "median": float(np.median(ms)), "mode": float(statistics.mode(rounded)),
            "min": float(ms.min()), "max": float(ms.max()), "p95": float(np.percentile(ms, 95)), "n": len(ms)}


def make_jpeg(width: int = 1920, height: int = 1080, seed: int = 0) -> bytes:
    """A full-HD JPEG with smooth gradients, shapes and noise, so it decodes like a real wallpaper."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.stack([128 + 100 * np.sin(x / 97 + k) * np.cos(y / 61 - k) for k in range(3)], axis=-1)
    for _ in range(40):  # flat-coloured discs: edges, as in drawn pictures
        cx, cy, r = rng.integers(0, width), rng.integers(0, height), rng.integers(20, 200)
        image[(x - cx) ** 2 + (y - cy) ** 2 < r * r] = rng.integers(0, 256, 3)
    image += rng.normal(0, 6, image.shape)
    buffer = io.BytesIO()
    Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def load_for_model(data: bytes, image_size: int) -> np.ndarray:
    """JPEG bytes -> (1, S, S, 3) float32 in [0, 255]: full decode, then an antialiased bilinear resize."""
    with Image.open(io.BytesIO(data)) as image:
        image = image.convert("RGB").resize((image_size, image_size), Image.BILINEAR)
    return np.asarray(image, dtype=np.float32)[None]


def describe_predict() -> str:
    """How `make_predictor` calls the model on this backend."""
    if keras.backend.backend() == "jax":
        return "jax.jit(model.stateless_call(training=False))"
    return "keras model.predict_on_batch"


def make_predictor(model: keras.Model) -> tuple[Predictor, Callable[[np.ndarray], object]]:
    """(host predict, device-resident predict for throughput) for `model`.

    The host predict takes and returns NumPy arrays; the device one takes an array already placed
    with `place` and returns an unsynchronised device array (the caller blocks on it).
    """
    if keras.backend.backend() != "jax":
        def predict(batch: np.ndarray) -> np.ndarray:
            return np.asarray(model.predict_on_batch(batch))
        return predict, predict
    import jax

    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]

    @jax.jit
    def forward(trainable, non_trainable, batch):
        outputs, _ = model.stateless_call(trainable, non_trainable, batch, training=False)
        return outputs

    def predict(batch: np.ndarray) -> np.ndarray:
        return np.asarray(forward(trainable, non_trainable, batch))

    def predict_on_device(batch) -> object:
        return forward(trainable, non_trainable, batch)

    return predict, predict_on_device


def place(batch: np.ndarray) -> object:
    """Put a batch on the accelerator once, so throughput counts the model and not the transfer."""
    if keras.backend.backend() == "jax":
        import jax
        return jax.device_put(batch)
    return batch


def block(outputs: object) -> None:
    if keras.backend.backend() == "jax":
        import jax
        jax.block_until_ready(outputs)
    else:
        np.asarray(outputs)


def time_calls(function: Callable[[], object], calls: int) -> list[float]:
    seconds = []
    for _ in range(calls):
        start = time.perf_counter()
        function()
        seconds.append(time.perf_counter() - start)
    return seconds


def measure_throughput(predict_on_device: Callable, image_size: int, batch_size: int,
                       counts: Counts) -> tuple[float, float]:
    """(pictures per second, first-call seconds) for back-to-back batches already on the device."""
    batch = place(np.random.default_rng(1).uniform(0, 255, (batch_size, image_size, image_size, 3))
                  .astype(np.float32))
    start = time.perf_counter()
    block(predict_on_device(batch))  # compiles this batch shape
    first = time.perf_counter() - start
    block(predict_on_device(batch))
    batches, start = 0, time.perf_counter()
    while batches < counts.throughput_min_batches or time.perf_counter() - start < counts.throughput_seconds:
        outputs = [predict_on_device(batch) for _ in range(counts.throughput_min_batches)]
        block(outputs)
        batches += len(outputs)
    return batches * batch_size / (time.perf_counter() - start), first


def measure_model(result: Result, jpeg: bytes, counts: Counts) -> None:
    """Fill `result` in place: build, compile, then the paper, latency and throughput measurements."""
    keras.backend.clear_session()
    keras.mixed_precision.set_global_policy(result.policy)
    model = build_model(ModelParams(architecture=result.architecture, image_size=result.image_size,
                                    weights="none"), num_classes=2)
    result.parameters = int(model.count_params())
    predict, predict_on_device = make_predictor(model)
    picture = load_for_model(jpeg, result.image_size)
    start = time.perf_counter()
    probabilities = predict(picture)
    result.compile_seconds["1"] = time.perf_counter() - start
    if probabilities.shape != (1, 2) or not np.all(np.isfinite(probabilities)):
        raise ValueError(f"unexpected output {probabilities!r} (shape {probabilities.shape})")
    for _ in range(counts.warmup):
        predict(load_for_model(jpeg, result.image_size))
    result.paper_ms = summarise(time_calls(lambda: predict(load_for_model(jpeg, result.image_size)),
                                           counts.pictures))
    result.latency_ms = summarise(time_calls(lambda: predict(picture), counts.latency_calls))
    for batch_size in counts.batch_sizes:
        rate, first = measure_throughput(predict_on_device, result.image_size, batch_size, counts)
        result.throughput[str(batch_size)] = rate
        result.compile_seconds[str(batch_size)] = first


def describe_machine() -> dict:
    """Devices, versions, CPU and date, so the numbers can be compared with the right card."""
    cpu = cpu_model()
    machine = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
               "cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
               "platform": platform.platform(), "keras": keras.__version__, "backend": keras.backend.backend(),
               "numpy": np.__version__, "pillow": Image.__version__}
    if keras.backend.backend() == "jax":
        import jax
        machine |= {"jax": jax.__version__, "devices": [str(d) for d in jax.devices()],
                    "device_kind": jax.devices()[0].device_kind,
                    "jax_default_matmul_precision": str(jax.config.jax_default_matmul_precision)}
    try:
        query = ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"]
        machine["nvidia_smi"] = subprocess.run(query, capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        machine["nvidia_smi"] = None
    return machine


def markdown_table(results: list[Result], device: str, decode_ms: dict[str, dict[str, float]]) -> str:
    """One row per policy and model: paper-style ms, model-only ms, pictures/s, ratio to the paper."""
    batch_sizes = sorted({int(b) for r in results for b in r.throughput})
    header = (["policy", "model", "size", "paper-style mean ms", "median", "mode", "min", "max",
               "paper 75 ms / mean", "model-only b1 ms (median)"] + [f"pics/s b{b}" for b in batch_sizes])
    lines = [f"Device: {device}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in results:
        if r.error or not r.paper_ms:
            lines.append(f"| {r.policy} | {r.architecture} | {r.image_size} | failed: {r.error or 'skipped'} |")
            continue
        p = r.paper_ms
        row = [r.policy, r.architecture, str(r.image_size), f"{p['mean']:.2f}", f"{p['median']:.2f}",
               f"{p['mode']:.0f}", f"{p['min']:.2f}", f"{p['max']:.2f}",
               f"{PAPER_MEAN_SECONDS * 1000 / p['mean']:.1f}x", f"{r.latency_ms['median']:.2f}"]
        row += [f"{r.throughput[str(b)]:.0f}" if str(b) in r.throughput else "-" for b in batch_sizes]
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "Decode + resize alone (Pillow, 1920x1080 JPEG, on the CPU), median ms: "
              + ", ".join(f"to {size}: {ms['median']:.2f}" for size, ms in decode_ms.items()),
              "Mode: of the times rounded to whole milliseconds. float32 runs under XLA's default matmul "
              "precision (on NVIDIA Ampere and newer it may use TF32 tensor cores)."]
    return "\n".join(lines)


def measure_decode(jpeg: bytes, image_sizes: set[int], calls: int) -> dict[str, dict[str, float]]:
    """Decode + resize alone, per model input size: the part of the paper-style time spent on the CPU."""
    for size in image_sizes:
        load_for_model(jpeg, size)
    return {str(size): summarise(time_calls(lambda: load_for_model(jpeg, size), calls))
            for size in sorted(image_sizes)}


def write_results(path: Path, header: dict, results: list[Result], skipped: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"benchmark": "gpu_timing", "paper": {"mean_s": PAPER_MEAN_SECONDS, "mode_s": PAPER_MODE_SECONDS},
                **header, "results": [asdict(r) for r in results], "skipped": skipped}
    path.write_text(json.dumps(document, indent=2))


def main(argv: list[str] | None = None) -> list[Result]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--quick", action="store_true", help="tiny counts, small models: a CPU smoke test")
    parser.add_argument("--policies", default=",".join(POLICIES))
    parser.add_argument("--models", default=",".join(f"{a}@{s}" for a, s in MODELS),
                        help="architecture@image_size, comma-separated")
    parser.add_argument("--budget-seconds", type=float, default=330.0,
                        help="start no new model after this long; the rest is recorded as skipped")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    counts = QUICK if args.quick else Counts()
    models = [(name, int(size)) for name, size in (item.split("@") for item in args.models.split(","))]
    if args.quick:  # the CPU smoke test skips the slowest network
        models = [model for model in models if model != ("mobilenetv3small", 512)]
    machine = describe_machine()
    method = ("paper: Pillow full decode of a 1920x1080 JPEG + bilinear antialiased resize + batch-1 predict, "
              "probabilities read back as NumPy; latency: batch-1 predict from a host array; throughput: "
              "batches already on the device, back to back, blocked on; predict = "
              + describe_predict())
    log.info("machine: %s", machine)
    jpeg, results, skipped, start = make_jpeg(), [], [], time.perf_counter()
    decode_ms = measure_decode(jpeg, {size for _, size in models}, max(3, counts.pictures // 2))
    header = {"method": method, "counts": asdict(counts), "machine": machine, "jpeg_bytes": len(jpeg),
              "decode_resize_ms": decode_ms}
    for policy in args.policies.split(","):
        for architecture, image_size in models:
            name = f"{policy}/{architecture}@{image_size}"
            if time.perf_counter() - start > args.budget_seconds:
                skipped.append(name)
                continue
            result = Result(policy, architecture, image_size)
            try:
                measure_model(result, jpeg, counts)
            except Exception as error:  # a policy the backend cannot run is a result, not a crash
                result.error = f"{type(error).__name__}: {error}"[:500]
            log.info("%s: %s", name, asdict(result))
            results.append(result)
            write_results(args.out, header, results, skipped)
    keras.mixed_precision.set_global_policy("float32")
    write_results(args.out, header, results, skipped)
    device = machine.get("nvidia_smi") or machine.get("device_kind") or machine["cpu"]
    table = markdown_table(results, device, decode_ms)
    args.out.with_suffix(".md").write_text(f"# gpu_timing ({machine['date']})\n\n{table}\n")
    print(table)
    return results


if __name__ == "__main__":
    main()
