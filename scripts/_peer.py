"""``bench_privacy.py --peer=tfp_fast``: our DPModel beside TF-Privacy's DPModel with its fast
gradient clipping registry, each as a ratio to the plain Keras step of the same model.

Entries, all through Keras's own train function (``make_train_function`` on an endless iterator
of one batch, so data loading costs nothing):

* ``plain``: the model compiled with a Keras optimizer and the loss, no privacy;
* ``ours``: ``tfdphpe.privacy.DPModel`` with a ghost-clipping DP optimizer (sigma 1, C 1);
* ``tfp_fast``: ``tensorflow_privacy...dp_keras_model.DPModel`` with its fast-clipping layer
  registry: the default one (Dense, Embedding) plus every registry function TF-Privacy 0.9
  ships for Keras layers (MultiHeadAttention, EinsumDense, LayerNormalization), the strongest
  configuration a user can build from the package (sigma 1, C 1, use_xla off as ours: XLA was
  3.4x slower on this CPU). When a trainable layer is not in its registry, TF-Privacy falls back
  to its microbatched per-example path by itself, which is what a user gets on the pose model.

Models: an MLP (Dense x4), a transformer encoder (Embedding + 2 x [MultiHeadAttention,
LayerNorm, Dense MLP, LayerNorm]), and the TinyViT-5M pose model (finetune strategy, BatchNorm
frozen; its two SimCC outputs concatenated so one standard loss serves both DPModels). Time per
step: median of timed rounds that interleave the entries in a fresh random order (an entry run
right after a heavier one pays 3-4 %, which a fixed order would bias); each round times as many
consecutive steps of an entry as make one plain sample last 50 ms (millisecond steps timed one
at a time move by 10-20 % with the scheduler). Peak live-tensor memory: each entry in a fresh
subprocess with TensorFlow's BFC allocator on the CPU, two steps.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import tensorflow as tf

from tfdphpe import privacy
from tfdphpe.models import apply_strategy, build_pose_model, freeze_batchnorm, simcc_kl_loss

K = tf.keras.layers
ENTRIES = ("plain", "ours", "tfp_fast")
# --peer_ablation: ours with the update applied unchecked (no skip of a non-finite update), to
# show what that check costs; never a way to train (the check guards the public quantities).
ABLATION = ("ours_unchecked",)
MODELS = ("mlp", "transformer", "pose")


def _mlp():
    x = tf.keras.Input((128,))
    h = x
    for _ in range(3):
        h = K.Dense(256, activation="relu")(h)
    return tf.keras.Model(x, K.Dense(10)(h)), (128,), tf.float32


def _transformer(seq=64, vocab=1000, dim=64):
    tokens = tf.keras.Input((seq,), dtype="int32")
    x = K.Embedding(vocab, dim)(tokens)
    for _ in range(2):
        x = K.LayerNormalization()(x + K.MultiHeadAttention(4, dim // 4)(x, x))
        x = K.LayerNormalization()(x + K.Dense(dim)(K.Dense(4 * dim, activation="gelu")(x)))
    return tf.keras.Model(tokens, K.Dense(10)(K.GlobalAveragePooling1D()(x))), (seq,), tf.int32


class _SimCCLoss(tf.keras.losses.Loss):
    """The pose model's per-example SimCC KL on the concatenated [x bins, y bins] logits."""

    def __init__(self, x_bins, **kwargs):
        super().__init__(**kwargs)
        self.x_bins = x_bins

    def call(self, y_true, y_pred):
        split = lambda t: {"x": t[..., :self.x_bins], "y": t[..., self.x_bins:]}  # noqa: E731
        target = split(y_true)
        batch = {"target_x": target["x"], "target_y": target["y"],
                 "target_weight": tf.ones(tf.shape(y_true)[:2])}
        return simcc_kl_loss(split(y_pred), batch)


def _pose(input_size):
    h, w = input_size
    model = build_pose_model("5m", input_size=(h, w), num_joints=16)
    freeze_batchnorm(model)
    apply_strategy(model, "finetune")
    outputs = model(model.inputs[0])
    joined = tf.keras.Model(model.inputs, tf.concat([outputs["x"], outputs["y"]], axis=-1))
    return joined, (h, w, 3), tf.float32


def build(name: str, input_size):
    """(model, loss, (x, y) batch maker)."""
    tf.keras.utils.set_random_seed(0)
    model, shape, dtype = {"mlp": _mlp, "transformer": _transformer,
                           "pose": lambda: _pose(input_size)}[name]()
    out_shape = model.output_shape[1:]
    if name == "pose":
        loss = _SimCCLoss(2 * input_size[1])
    else:
        loss = tf.keras.losses.MeanSquaredError()
    rng = np.random.default_rng(1)

    def batch(n):
        x = (rng.integers(0, 1000, size=(n, *shape)) if dtype == tf.int32
             else rng.normal(size=(n, *shape)))
        y = rng.normal(size=(n, *out_shape))
        if name == "pose":
            y = tf.nn.softmax(y, axis=-1).numpy()
        return tf.constant(x, dtype), tf.constant(y, tf.float32)

    return model, loss, batch


def train_function(entry: str, name: str, input_size, b: int):
    """One fit step of ``entry`` on ``name`` with batch ``b``: a callable, and the model."""
    model, loss, batch = build(name, input_size)
    if entry == "plain":
        fit_model = model
        fit_model.compile(optimizer=tf.keras.optimizers.legacy.Adam(1e-4), loss=loss)
    elif entry in ("ours", "ours_unchecked"):
        fit_model = privacy.DPModel(model)
        fit_model.compile(optimizer=privacy.make_optimizer(
            "dpsgd", 1.0, 1.0, 1e-4, optimizer="adam", expected_batch_size=b,
            clipping="ghost"), loss=loss)
        if entry == "ours_unchecked":
            opt = fit_model.optimizer
            opt.apply_if_finite = lambda grads, var_list: opt.apply_gradients(
                zip(grads, var_list))
    else:
        from tensorflow_privacy.privacy.keras_models import dp_keras_model
        fit_model = dp_keras_model.DPModel(
            l2_norm_clip=1.0, noise_multiplier=1.0, use_xla=False,
            layer_registry=tfp_registry(), inputs=model.inputs, outputs=model.outputs)
        fit_model.compile(optimizer=tf.keras.optimizers.legacy.Adam(1e-4), loss=loss)
    iterator = iter(tf.data.Dataset.from_tensors(batch(b)).repeat())
    step = fit_model.make_train_function()
    return (lambda: step(iterator)), fit_model


def tfp_registry():
    """TF-Privacy's default registry plus every Keras-layer registry function it ships."""
    from tensorflow_privacy.privacy.fast_gradient_clipping import layer_registry
    from tensorflow_privacy.privacy.fast_gradient_clipping.registry_functions import (
        einsum_dense, layer_normalization, multi_head_attention)
    registry = layer_registry.make_default_layer_registry()
    registry.insert(K.MultiHeadAttention,
                    multi_head_attention.multi_head_attention_layer_computation)
    registry.insert(K.EinsumDense, einsum_dense.einsum_layer_computation)
    registry.insert(K.LayerNormalization, layer_normalization.layer_normalization_computation)
    return registry


def fast_path_used(fit_model) -> bool:
    """Whether TF-Privacy's DPModel takes its registry path (not its microbatched fallback)."""
    return bool(getattr(fit_model, "_enable_fast_peg_computation", False))


def worker(spec: str, input_size) -> None:
    """Peak live-tensor MiB of two steps of one entry (run in a fresh process, BFC on)."""
    entry, name, b = spec.split(":")
    step, _ = train_function(entry, name, input_size, int(b))
    tf.config.experimental.reset_memory_stats("CPU:0")
    step()
    step()
    print(json.dumps({"peak_mb": tf.config.experimental.get_memory_info("CPU:0")["peak"] / 2**20}))


def _peak(spec: str, argv) -> float:
    env = dict(os.environ, TF_CPU_ALLOCATOR_USE_BFC="true")
    args = [a for a in argv[1:] if not a.startswith("--peer_worker")]
    out = subprocess.run([sys.executable, argv[0], f"--peer_worker={spec}"] + args,
                         capture_output=True, text=True, env=env)
    if out.returncode != 0:
        print(f"  memory worker {spec} failed: {out.stderr.strip().splitlines()[-1:]}",
              flush=True)
        return float("nan")
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_mb"]


def _repeats(plain_step, sample_seconds: float = 0.05) -> int:
    """Steps per timed sample, so that one sample of the plain step lasts at least
    ``sample_seconds``: a millisecond step timed alone moves by 10-20 % with the scheduler."""
    plain_step()
    start = time.perf_counter()
    for _ in range(3):
        plain_step()
    per_step = (time.perf_counter() - start) / 3
    return max(1, int(np.ceil(sample_seconds / max(per_step, 1e-6))))


def run(models, batch_sizes, rounds: int, input_size, memory: bool, argv,
        ablation: bool = False) -> list[tuple]:
    """Times (and measures) every entry; prints one table per model and batch; returns rows."""
    entries = ENTRIES + (ABLATION if ablation else ())
    rows = []
    for name in models:
        for b in batch_sizes:
            peaks = {e: _peak(f"{e}:{name}:{b}", argv) for e in entries} if memory else {}
            steps, fast = {}, None
            for entry in entries:
                steps[entry], fit_model = train_function(entry, name, input_size, b)
                steps[entry]()           # trace
                if entry == "tfp_fast":
                    fast = fast_path_used(fit_model)
            repeats = _repeats(steps["plain"])
            times = {e: [] for e in entries}
            order = np.random.default_rng(0)
            for _ in range(rounds):
                for entry in order.permutation(entries):
                    start = time.perf_counter()
                    for _ in range(repeats):
                        steps[entry]()
                    times[entry].append((time.perf_counter() - start) / repeats)
            base = float(np.median(times["plain"]))
            path = "registry" if fast else "fallback (microbatched per-example)"
            print(f"\n[{name}, batch {b}] TF-Privacy path: {path}; {rounds} rounds of "
                  f"{repeats} step(s) per entry", flush=True)
            for entry in entries:
                t = float(np.median(times[entry]))
                mem = peaks.get(entry, float("nan")) / peaks["plain"] if peaks else float("nan")
                print(f"  {entry:9s} {t:8.4f} s/step  time {t / base:5.2f}x  "
                      f"tensors {mem:5.2f}x", flush=True)
                rows.append((name, b, entry, t / base, mem, path))
    print("\n| model | batch | entry | time / plain | peak tensors / plain | TF-Privacy path |")
    print("|---|---|---|---|---|---|")
    for name, b, entry, t, mem, path in rows:
        print(f"| {name} | {b} | {entry} | {t:.2f} | {mem:.2f} | {path} |")
    return rows
