r"""TFLite size and latency of each export format, side by side with MediaPipe BlazePose full.

    python scripts/bench_tflite.py --threads=1,2 --rounds=20 \
        --calibration_images='../shared/fixtures/coco/*.jpg'

Untrained TinyViT-5M + SimCC at 256x192 (latency does not depend on the weights), converted to
float32 / float16 / int8 with the speed fixes of tfdphpe.export.tflite and, for comparison,
without them ("stock graph"); the mobile preset and candidate mobile input sizes in int8.
BlazePose full (pose_landmark_full.tflite, 256x256) is taken from the mediapipe==0.10.14 wheel
via `pip download` (mediapipe is not a dependency); if that fails the table has no BlazePose.
All models run in interleaved rounds in one process; on a shared machine read the ratios and
the 1-thread CPU times (wall times, above all with 2 threads, move with the load, printed).
"""

import glob
import os
import subprocess
import sys
import tempfile
import zipfile

from absl import app, flags

import _app  # scripts/_app.py: absl's app.run, help exits 0

from tfdphpe import compat, export
from tfdphpe.export.latency import measure_latency

flags.DEFINE_list("threads", ["1", "2"], "Interpreter thread counts.")
flags.DEFINE_integer("rounds", 20, "Timed rounds per model and thread count.")
flags.DEFINE_string("variant", "5m", "TinyViT variant.")
flags.DEFINE_list("input_size", ["256", "192"], "Input height,width.")
flags.DEFINE_list("mobile_sizes", ["192x144", "160x128", "128x96"], "Candidate mobile inputs.")
flags.DEFINE_string("calibration_images", None, "Glob of PUBLIC images for int8 calibration "
                    "(default: synthetic crops; latency does not depend on them).")
flags.DEFINE_string("output_dir", "bench_out", "Where the .tflite files are written.")
FLAGS = flags.FLAGS
BLAZEPOSE = "mediapipe/modules/pose_landmark/pose_landmark_full.tflite"


def fetch_blazepose(directory):
    path = os.path.join(directory, "pose_landmark_full.tflite")
    if os.path.exists(path):
        return path
    try:
        with tempfile.TemporaryDirectory() as tmp:
            # Wheels up to CPython 3.12; the .tflite inside does not depend on the interpreter.
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                            "--only-binary=:all:", "--python-version=3.12",
                            "mediapipe==0.10.14", "-d", tmp], check=True, timeout=600)
            (wheel,) = glob.glob(os.path.join(tmp, "mediapipe-*.whl"))
            with zipfile.ZipFile(wheel) as z, open(path, "wb") as f:
                f.write(z.read(BLAZEPOSE))
        return path
    except Exception as e:  # noqa: BLE001 - the benchmark runs on without the reference
        print(f"BlazePose not available ({type(e).__name__}: {e}); continuing without it")
        return None


def convert(name, size, fmt, optimize=True):
    model = export.fresh_model(FLAGS.variant, size).model
    crops, source = None, None
    if fmt == "int8":
        files = sorted(glob.glob(FLAGS.calibration_images or ""))
        crops = (export.public_calibration_crops(files, size, limit=32) if files
                 else export.synthetic_crops(16, size))
        source = FLAGS.calibration_images if files else "synthetic crops"
    data = export.convert_to_tflite(model, fmt, calibration_crops=crops,
                                    calibration_source=source, optimize=optimize)
    path = os.path.join(FLAGS.output_dir, f"{name}.tflite")
    with open(path, "wb") as f:
        f.write(data)
    print(f"converted {name}: {len(data) / 1e6:.1f} MB", flush=True)
    return path


def main(argv):
    del argv
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    size = tuple(int(v) for v in FLAGS.input_size)
    tag = f"{size[0]}x{size[1]}"
    models = {f"float32 stock graph {tag}": convert("float32_stock", size, "float32", False),
              f"float32 {tag}": convert("float32", size, "float32"),
              f"float16 {tag}": convert("float16", size, "float16"),
              f"int8 stock graph {tag}": convert("int8_stock", size, "int8", False),
              f"int8 {tag}": convert("int8", size, "int8")}
    preset = export.PRESETS["mobile"]
    for text in FLAGS.mobile_sizes:
        mobile = tuple(int(v) for v in text.split("x"))
        label = " (mobile preset)" if mobile == preset.input_size else ""
        models[f"int8 {text}{label}"] = convert(f"int8_{text}", mobile, "int8")
    blazepose = fetch_blazepose(FLAGS.output_dir)
    if blazepose:
        models["BlazePose full 256x256"] = blazepose
    load = os.getloadavg()[0]
    results = {t: measure_latency(models, int(t), FLAGS.rounds) for t in FLAGS.threads}
    ref = "BlazePose full 256x256" if blazepose else f"float32 stock graph {tag}"
    print(f"\nTinyViT-{FLAGS.variant} + SimCC vs {ref}; {compat.tflite_runtime_name()} "
          f"interpreter (XNNPACK), median of {FLAGS.rounds} interleaved rounds; load average "
          f"{load:.1f} -> {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (shared machine).")
    head = " | ".join(f"{t} thr ms (min) | x ref" for t in FLAGS.threads)
    print(f"| model | MB | {head} | 1 thr CPU ms | x ref (CPU) |")
    print("|---|---:|" + "---:|---:|" * len(FLAGS.threads) + "---:|---:|")
    for name, path in models.items():
        cells = [f"{os.path.getsize(path) / 1e6:.1f}"]
        for t in FLAGS.threads:
            ms = results[t][name]["median_ms"]
            cells += [f"{ms:.1f} ({results[t][name]['min_ms']:.1f})",
                      f"{ms / results[t][ref]['median_ms']:.2f}"]
        if "1" in results:
            cpu = results["1"][name]["cpu_ms"]
            cells += [f"{cpu:.1f}", f"{cpu / results['1'][ref]['cpu_ms']:.2f}"]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    _app.run(main)
