r"""Step time and peak memory of every privacy method relative to the non-private step.

    python scripts/bench_privacy.py --batch_sizes=16 --steps=3
    python scripts/bench_privacy.py --batch_sizes=16,32,64,128 --methods=none,dpsgd --steps=2
    python scripts/bench_privacy.py --batch_sizes=4 --steps=2 --public_examples=16 --projection_dim=8
    python scripts/bench_privacy.py --strategies=finetune --batch_sizes=16,64 --methods=none,dpsgd \
        --clipping=ghost --keras_fit=dpsgd --stock --memory=false --steps=2

For each strategy (finetune, full) and batch size one process times every method's step with each
clipping path (``vectorized``: per-example gradients by tf.vectorized_map; ``ghost``: per-example
norms from layer inputs and output gradients, tfdphpe.privacy.ghost), dp_gradients +
apply_gradients inside one tf.function; same model, batch and input; rounds interleave the entries
so drift on a shared machine hits all alike; and the subspace refresh. Peak memory is measured per
entry in a fresh subprocess each (--memory, peak resident set VmHWM); "model" is building the model
and one forward pass, the floor under every other figure. Peak RSS also holds the traced graphs
and the allocator's slack, and varies by several percent from run to run; --tensor_memory adds
a second fresh subprocess per entry with TensorFlow's BFC allocator on the CPU
(TF_CPU_ALLOCATOR_USE_BFC), which reports the peak bytes of live tensors during the training steps
(weights, optimizer slots, the batch, activations, per-example work): the figure that scales with
the batch and that a GPU's memory must hold.

--peer=tfp_fast instead compares our DPModel with TF-Privacy's DPModel and its fast-clipping
registry, each against the plain Keras step, on an MLP, a transformer and the pose model
(scripts/_peer.py):

    python scripts/bench_privacy.py --peer=tfp_fast --peer_models=mlp,transformer,pose \
        --batch_sizes=16,64 --steps=5 --input_size=128,96

--keras_fit adds 'method/clipping/fit': the same step through Keras, ``DPModel.fit``'s train
function (tfdphpe.privacy.dp_model: dp_gradients + apply_gradients inside Keras's train_step, the
batch read from a tf.data iterator, the logged loss); --stock adds TF-Privacy's own dpsgd path,
which is what ``model.compile(optimizer=...); model.fit`` runs without DPModel.
"""

import json
import os
import subprocess
import sys
import time

import numpy as np
import tfdphpe  # noqa: F401  (first: tfdphpe.compat must run before TensorFlow)
import tensorflow as tf
from absl import app, flags

import _app  # scripts/_app.py: absl's app.run, help exits 0
import _peer  # scripts/_peer.py: --peer=tfp_fast

from tfdphpe import privacy
from tfdphpe.models import apply_strategy, build_pose_model, freeze_batchnorm, simcc_kl_loss

flags.DEFINE_list("batch_sizes", ["16"], "Examples per step (one table per batch size).")
flags.DEFINE_list("clipping", ["vectorized", "ghost"], "Per-example clipping paths to time.")
flags.DEFINE_integer("steps", 3, "Timed rounds (after one warm-up/trace step).")
flags.DEFINE_list("strategies", ["finetune", "full"], "Training strategies.")
flags.DEFINE_list("methods", ["none", "dpsgd", "pdpsgd", "fdp", "fpdp"], "Methods ('none' first).")
flags.DEFINE_list("input_size", ["256", "192"], "Input height,width.")
flags.DEFINE_string("variant", "5m", "TinyViT variant.")
flags.DEFINE_integer("public_examples", 100, "m, size of S_pub for the subspace.")
flags.DEFINE_integer("projection_dim", 50, "k.")
flags.DEFINE_integer("subspace_chunk_size", 10, "Public examples per vectorized pass.")
flags.DEFINE_string("subspace_dtype", "float32", "Storage dtype of V.")
flags.DEFINE_bool("stock", False, "Also time TF-Privacy's stock dpsgd path (slow).")
flags.DEFINE_list("keras_fit", [], "Methods (dpsgd, pdpsgd) to also time through DPModel.fit's "
                  "train function, for each --clipping path.")
flags.DEFINE_bool("memory", True, "Measure peak memory per method in subprocesses.")
flags.DEFINE_bool("tensor_memory", True, "With --memory, also measure peak tensor bytes per "
                  "method (BFC allocator, one more subprocess per entry).")
flags.DEFINE_string("worker", None, "Internal: 'strategy:entry:batch' to run once for memory.")
flags.DEFINE_enum("peer", None, ["tfp_fast"], "Compare our DPModel with a peer's instead: "
                  "tfp_fast = TF-Privacy's DPModel with its fast-clipping layer registry.")
flags.DEFINE_list("peer_models", list(_peer.MODELS), "--peer: models (mlp, transformer, pose).")
flags.DEFINE_string("peer_worker", None, "Internal: 'entry:model:batch' for peer memory.")
flags.DEFINE_bool("peer_ablation", False, "--peer: also time ours_unchecked, our step with the "
                  "update applied without the finite check (what that check costs).")
FLAGS = flags.FLAGS


def _data(n, h, w, seed):
    rng = np.random.default_rng(seed)
    def soft(bins):
        return tf.nn.softmax(tf.constant(rng.normal(size=(n, 16, bins)), tf.float32))
    image = tf.constant(rng.normal(size=(n, h, w, 3)), tf.float32)
    return {"image": image, "public_image": 0.5 * image, "target_x": soft(2 * w),
            "target_y": soft(2 * h), "target_weight": tf.ones([n, 16])}


def _setup(strategy, b):
    h, w = (int(v) for v in FLAGS.input_size)
    model = build_pose_model(FLAGS.variant, input_size=(h, w), num_joints=16)
    freeze_batchnorm(model)
    apply_strategy(model, strategy)
    loss_fn = lambda b: simcc_kl_loss(model(b["image"], training=True), b)  # noqa: E731
    public_fn = lambda b: simcc_kl_loss(model(b["public_image"], training=True), b)  # noqa: E731
    # Private batch, S_pub, and public views sampled apart from the private batch (Feature DP).
    data = _data(b, h, w, 0), _data(FLAGS.public_examples, h, w, 1), _data(b, h, w, 2)
    return (model, loss_fn, public_fn) + data


def _entries():
    """'none', then 'method/clipping' for every private method and clipping path."""
    out = []
    for method in FLAGS.methods:
        if method == "none":
            out.append("none")
        else:
            out.extend(f"{method}/{c}" for c in FLAGS.clipping)
    out.extend(f"{method}/{c}/fit" for method in FLAGS.keras_fit for c in FLAGS.clipping)
    return out + (["stock"] if FLAGS.stock else [])


def _fit_step(opt, model, batch, public):
    """DPModel's train function on an endless iterator of ``batch``: one call is one fit step."""
    def xy(b):
        return b["image"], {k: b[k] for k in ("target_x", "target_y", "target_weight")}
    dp = privacy.DPModel(model, public_data=None if public is None else xy(public))
    dp.compile(optimizer=opt, loss=lambda y, outputs: simcc_kl_loss(outputs, y))
    iterator = iter(tf.data.Dataset.from_tensors(xy(batch)).repeat())
    train_function = dp.make_train_function()
    return lambda _: train_function(iterator)


def _method_step(entry, model, loss_fn, public_fn, public, views, b, batch):
    """(step function, refresh function or None) for one entry ('none', 'dpsgd/ghost', ...)."""
    method, _, clipping = entry.partition("/")
    clipping, _, path = clipping.partition("/")
    name = "dpsgd" if method == "stock" else method
    opt = privacy.make_optimizer(name, 1.0, 1.0, 1e-4, optimizer="adam",
                                 expected_batch_size=b,
                                 projection_dim=FLAGS.projection_dim,
                                 subspace_dtype=FLAGS.subspace_dtype,
                                 subspace_chunk_size=FLAGS.subspace_chunk_size,
                                 clipping=clipping or "vectorized",
                                 # fit refreshes V inside its step when due: only at the first
                                 refresh_every=1 << 30 if path else 1)
    if path == "fit":
        return _fit_step(opt, model, batch, public if opt.method.projected else None), None
    var_list = model.trainable_variables
    pub, pub_batch = (public_fn, views) if opt.method.feature_dp else (None, None)
    layers = model if clipping == "ghost" else None

    @tf.function
    def step(batch):
        if method == "stock":
            grads = opt.stock_dp_gradients(loss_fn, batch, var_list)
        else:
            grads = opt.dp_gradients(loss_fn, batch, var_list, public_loss_fn=pub,
                                     public_batch=pub_batch, layers=layers)
        opt.apply_gradients(zip(grads, var_list))
    refresh = None
    if opt.method.projected:
        refresh = lambda: opt.refresh_subspace(loss_fn, public, var_list)  # noqa: E731
        refresh()   # V must exist before the first projected step; this also traces the refresh
    return step, refresh


def _worker(spec):
    strategy, entry, b = spec.split(":")
    model, loss_fn, public_fn, batch, public, views = _setup(strategy, int(b))
    model(batch["image"][:1], training=False)
    bfc = os.environ.get("TF_CPU_ALLOCATOR_USE_BFC") == "true"
    if entry != "model":
        step, _ = _method_step(entry, model, loss_fn, public_fn, public, views, int(b), batch)
        if bfc:   # from here: weights, V, the batch, then the steps' slots and temporaries
            tf.config.experimental.reset_memory_stats("CPU:0")
        step(batch)
        step(batch)
    if bfc:
        peak = tf.config.experimental.get_memory_info("CPU:0")["peak"] / 2**20
        print(json.dumps({"peak_mb": peak}))
        return
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the forking parent through exec.
    with open("/proc/self/status") as status:
        kib = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    print(json.dumps({"peak_mb": kib / 1024}))


def _peak_mb(spec, tensors=False):
    """Peak RSS (or, with ``tensors``, peak live-tensor bytes) of one entry, in MiB."""
    args = [a for a in sys.argv[1:] if not a.startswith("--worker")]
    env = dict(os.environ, TF_CPU_ALLOCATOR_USE_BFC="true" if tensors else "false")
    out = subprocess.run([sys.executable, __file__, f"--worker={spec}"] + args,
                         capture_output=True, text=True, env=env)
    if out.returncode != 0:
        print(f"  memory worker {spec} failed (exit {out.returncode}): "
              f"{out.stderr.strip().splitlines()[-1:]}", flush=True)
        return float("nan")
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_mb"]


def main(argv):
    del argv
    tf.get_logger().setLevel("ERROR")   # pfor's per-op fallback notices would drown the table
    if FLAGS.worker:
        return _worker(FLAGS.worker)
    size = tuple(int(v) for v in FLAGS.input_size)
    if FLAGS.peer_worker:
        return _peer.worker(FLAGS.peer_worker, size)
    if FLAGS.peer:
        _peer.run(FLAGS.peer_models, [int(b) for b in FLAGS.batch_sizes], FLAGS.steps, size,
                  FLAGS.memory, sys.argv, ablation=FLAGS.peer_ablation)
        return None
    entries = _entries()
    print(f"TinyViT-{FLAGS.variant} {FLAGS.input_size[0]}x{FLAGS.input_size[1]}, "
          f"m={FLAGS.public_examples}, k={FLAGS.projection_dim}, V in {FLAGS.subspace_dtype}, "
          f"{FLAGS.steps} timed rounds; time per step in s, ratios to 'none' in the same run")
    summary = []
    for strategy in FLAGS.strategies:
        for b in (int(v) for v in FLAGS.batch_sizes):
            summary.extend(_bench(strategy, b, entries))
    print("\n| strategy | batch | method/clipping | step ratio | peak RSS ratio | "
          "peak tensor ratio |")
    print("|---|---|---|---|---|---|")
    for strategy, b, entry, ratio, mem, tensor in summary:
        print(f"| {strategy} | {b} | {entry} | {ratio:.2f} | {mem:.2f} | {tensor:.2f} |")


def _bench(strategy, b, entries):
    # Memory first, one fresh subprocess per entry, while this process holds no model: at batch
    # 64 one process holds ~12 GB, and parent + child must fit together.
    peaks, tensor_peaks = {}, {}
    if FLAGS.memory:
        peaks = {e: _peak_mb(f"{strategy}:{e}:{b}") for e in ["model"] + entries}
        if FLAGS.tensor_memory:
            tensor_peaks = {e: _peak_mb(f"{strategy}:{e}:{b}", tensors=True) for e in entries}
    model, loss_fn, public_fn, batch, public, views = _setup(strategy, b)
    p = sum(int(v.shape.num_elements()) for v in model.trainable_variables)
    steps, refreshes = {}, {}
    for entry in entries:
        steps[entry], refreshes[entry] = _method_step(entry, model, loss_fn, public_fn,
                                                      public, views, b, batch)
        steps[entry](batch)   # trace
    times = {e: [] for e in entries}
    for _ in range(FLAGS.steps):
        for entry in entries:
            start = time.perf_counter()
            steps[entry](batch)
            times[entry].append(time.perf_counter() - start)
    refresh = next((r for r in refreshes.values() if r), None)
    refresh_s = float("nan")
    if refresh:
        start = time.perf_counter()
        refresh()
        refresh_s = time.perf_counter() - start
    base = float(np.median(times["none"]))
    size = tf.as_dtype(FLAGS.subspace_dtype).size
    print(f"\n[{strategy}, batch {b}] trainable p = {p:,}; V = p*k*{size} B = "
          f"{p * FLAGS.projection_dim * size / 2**20:.0f} MiB; "
          f"subspace refresh (m={FLAGS.public_examples}): {refresh_s:.2f} s")
    print(f"{'method/clipping':18s} {'s/step':>8s} {'ratio':>7s} {'peak RSS MiB':>13s} "
          f"{'mem ratio':>9s} {'tensor MiB':>10s} {'ratio':>6s}")
    if peaks:
        print(f"{'model':18s} {'':>8s} {'':>7s} {peaks['model']:13.0f}")
    rows = []
    for entry in entries:
        t = float(np.median(times[entry]))
        peak = peaks.get(entry, float("nan"))
        mem = peak / peaks["none"] if peaks else float("nan")
        tensor = tensor_peaks.get(entry, float("nan"))
        tensor_ratio = tensor / tensor_peaks["none"] if tensor_peaks else float("nan")
        print(f"{entry:18s} {t:8.3f} {t / base:7.2f} {peak:13.0f} {mem:9.2f} {tensor:10.0f} "
              f"{tensor_ratio:6.2f}", flush=True)
        rows.append((strategy, b, entry, t / base, mem, tensor_ratio))
    return rows


if __name__ == "__main__":
    _app.run(main)
