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

--pipeline: per-frame latency of the whole mobile pipeline (MediaPipe's pose detector + our
int8 model at the mobile preset, tracking) with the detector on every frame and on every 5th,
beside MediaPipe's detector + BlazePose full pipeline on the same frames, one thread
(tfdphpe.inference.latency).
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
flags.DEFINE_bool("pipeline", False, "Per-frame latency of the video pipeline (detector + pose "
                  "+ tracking, 1 thread) vs MediaPipe's detector + BlazePose full, instead.")
flags.DEFINE_integer("frames", 100, "--pipeline: frames of the test clip (one person).")
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


def bench_pipeline():
    from tfdphpe.inference import CropPoseEstimator, MediaPipePoseDetector, PipelineConfig
    from tfdphpe.inference import PosePipeline
    from tfdphpe.inference.latency import BlazePoseTracker, SteadyPose, per_frame_latency
    from tfdphpe.inference.video import ImageReader

    size = export.PRESETS["mobile"].input_size
    pose = convert(f"int8_{size[0]}x{size[1]}", size, "int8")
    blazepose = fetch_blazepose(FLAGS.output_dir)
    photo = next(iter(ImageReader("../shared/fixtures/coco/000000000785.jpg"))).image
    frames = [photo[40:392, (4 * t) % 160:(4 * t) % 160 + 480] for t in range(FLAGS.frames)]
    # Untrained weights: random joints would lose every track; SteadyPose times the model but
    # returns joints spanning the box, as a trained model's would.
    runners = {}
    for every in (1, 5):
        runners[f"ours: detector + int8 {size[0]}x{size[1]}, detect every {every}"] = \
            PosePipeline(MediaPipePoseDetector(),
                         SteadyPose(CropPoseEstimator(export.load_predictor(pose))),
                         PipelineConfig(detect_every=every))
    if blazepose:
        for every in (1, 5):
            runners[f"MediaPipe: detector + BlazePose full, detect every {every}"] = \
                BlazePoseTracker(blazepose, every)
    per_frame_latency(runners, frames[:5])   # warm-up
    load = os.getloadavg()[0]
    result = per_frame_latency(runners, frames)
    print(f"\nPer-frame latency, {len(frames)} frames {frames[0].shape[1]}x{frames[0].shape[0]} "
          f"(one person), {compat.tflite_runtime_name()}, 1 thread, interleaved; load average "
          f"{load:.1f} -> {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores.")
    ref = next((n for n in result if n.startswith("MediaPipe") and n.endswith("1")), None)
    print("| pipeline | mean ms | median | p95 | CPU ms | mean x MediaPipe (detect every 1) |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, r in result.items():
        ratio = f"{r['mean_ms'] / result[ref]['mean_ms']:.2f}" if ref else "-"
        print(f"| {name} | {r['mean_ms']:.1f} | {r['median_ms']:.1f} | {r['p95_ms']:.1f} | "
              f"{r['cpu_ms']:.1f} | {ratio} |")


def main(argv):
    del argv
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    if FLAGS.pipeline:
        return bench_pipeline()
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
