r"""Trains a pose model, optionally with differential privacy.

    python scripts/train.py --flagfile=configs/quickstart.flags
    python scripts/train.py --flagfile=configs/mpii_finetune_dpsgd.flags --target_epsilon=0.2

Every flag is documented in `python scripts/train.py --helpfull` and docs/training.md.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # hide TensorFlow's C++ start-up chatter


import logging

from absl import app, flags

import _app  # scripts/_app.py: absl's app.run, help exits 0

from tfdphpe.training import (DataConfig, ModelConfig, OptimConfig, PrivacyConfig, RunConfig,
                              TrainConfig, train)

F = flags.FLAGS
# TensorFlow's vectorizer warns once per convolution that it loops over examples for filter
# gradients; known and measured (README), so keep it out of the progress output.
logging.getLogger("tensorflow").addFilter(lambda r: "uses a while_loop" not in r.getMessage())
# data
flags.DEFINE_enum("dataset", "synthetic", ["synthetic", "mpii", "coco", "custom"], "Private (or only) data set.")
flags.DEFINE_string("data_dir", "data/synthetic/private", "Root of the private data set.")
flags.DEFINE_enum("public_dataset", "synthetic", ["synthetic", "coco"], "Public pretraining set (COCO format).")
flags.DEFINE_string("public_data_dir", "data/synthetic/public", "Root of the public data set.")
flags.DEFINE_list("input_size", ["256", "192"], "Model input height,width.")
flags.DEFINE_float("split_ratio", 2.0, "SimCC bins per pixel.")
flags.DEFINE_float("simcc_sigma", 6.0, "SimCC Gaussian target std, in bins.")
flags.DEFINE_bool("augment", True, "Training augmentation (scale, rotation, flip, half-body).")
flags.DEFINE_integer("max_train_examples", 0, "Cap on training people (0 = all).")
flags.DEFINE_integer("max_val_examples", 0, "Cap on validation people (0 = all).")
# model
flags.DEFINE_enum("variant", "5m", ["5m", "11m", "21m"], "TinyViT variant.")
flags.DEFINE_enum("strategy", "finetune", ["finetune", "full", "scratch"], "Which weights train (DESIGN 2.6).")
flags.DEFINE_enum("norm", "batch", ["batch", "group"], "Backbone normalisation (group: DP from scratch).")
flags.DEFINE_string("init_checkpoint", "", "Pose model (.keras) to start from.")
flags.DEFINE_string("backbone_weights", "", "TinyViT weights from scripts/convert_tinyvit.py.")
# privacy
flags.DEFINE_enum("method", "dpsgd", ["none", "dpsgd", "pdpsgd", "fdp", "fpdp"], "Privacy method.")
flags.DEFINE_float("l2_norm_clip", 1.0, "Per-example clip norm C.")
flags.DEFINE_float("target_epsilon", None, "Target epsilon: noise calibrated to it, or (with --noise_multiplier) a cap that stops the run.")
flags.DEFINE_float("noise_multiplier", None, "Fixed noise multiplier sigma.")
flags.DEFINE_float("delta", 4e-5, "Target delta (below 1/N).")
flags.DEFINE_enum("sampling", "poisson", ["poisson", "shuffle"], "Batch sampling; the epsilon claimed rests on it.")
flags.DEFINE_enum("accountant", "rdp", ["rdp", "pld"], "Privacy accountant.")
flags.DEFINE_integer("projection_dim", 50, "k: public subspace dimension (pdpsgd, fpdp).")
flags.DEFINE_integer("public_examples", 100, "m: size of S_pub, drawn from the private training set.")
flags.DEFINE_integer("projection_refresh_steps", 1, "R: steps between subspace refreshes.")
flags.DEFINE_enum("clipping", "ghost", ["ghost", "vectorized"],
                  "Per-example clipping path: ghost (norms from layer inputs and output gradients, "
                  "no per-example gradients of the whole model) or vectorized (tf.vectorized_map); "
                  "same update, different speed and memory.")
flags.DEFINE_float("public_view", 4.0, "Blur sigma (crop pixels) of the public view psi(x) (fdp, fpdp).")
# optimisation
flags.DEFINE_enum("optimizer", "adam", ["adam", "sgd"], "Base optimizer.")
flags.DEFINE_float("learning_rate", 1e-3, "Peak learning rate.")
flags.DEFINE_enum("lr_schedule", "cosine", ["cosine", "constant"], "Learning-rate schedule.")
flags.DEFINE_integer("warmup_steps", 0, "Linear warm-up steps.")
flags.DEFINE_float("momentum", 0.9, "SGD momentum.")
# run
flags.DEFINE_string("run_dir", "runs/default", "Output directory of the run.")
flags.DEFINE_float("epochs", 25.0, "Private training epochs.")
flags.DEFINE_float("pretrain_epochs", 0.0, "Non-private pretraining epochs on the public set first.")
flags.DEFINE_integer("batch_size", 64, "Expected batch size B (q = B/N under Poisson sampling).")
flags.DEFINE_integer("pretrain_batch_size", 32, "Batch size of public pretraining.")
flags.DEFINE_bool("pretrain_only", False, "Stop after the public pretraining phase.")
flags.DEFINE_integer("max_steps", 0, "Hard cap on private steps (0 = from --epochs).")
flags.DEFINE_integer("seed", 0, "Seed of sampling, augmentation and initialisation (not of the noise).")
flags.DEFINE_integer("checkpoint_every", 100, "Steps between checkpoints.")
flags.DEFINE_integer("eval_every", 0, "Steps between validations (0 = every epoch).")
flags.DEFINE_bool("flip_test", True, "Flip test in validation.")
flags.DEFINE_bool("jit_compile", None, "XLA; default on when a GPU is present (slower on CPU).")
flags.DEFINE_bool("resume", False, "Continue the run in --run_dir from its last checkpoint.")
flags.DEFINE_integer("log_every", 10, "Steps between loss logs.")
flags.DEFINE_enum("distribution", "none", ["none", "mirrored", "multi_worker"],
                  "Devices: one; all local GPUs (or --cpu_replicas logical CPUs); or several "
                  "hosts from TF_CONFIG (docs/training.md).")
flags.DEFINE_integer("cpu_replicas", 0, "--distribution=mirrored without GPUs: logical CPU replicas.")
flags.DEFINE_bool("mixed_precision", False, "float16 compute (for GPUs); per-example clipping norms, "
                  "clipped sums and noise stay float32; static loss scale 1024.")


def config_from_flags() -> TrainConfig:
    private = F.method != "none"
    target = F.target_epsilon if private else None
    if private and target is None and F.noise_multiplier is None:
        raise app.UsageError("give --target_epsilon and/or --noise_multiplier for a private method")
    return TrainConfig(
        data=DataConfig(F.dataset, F.data_dir, F.public_dataset, F.public_data_dir,
                        tuple(int(v) for v in F.input_size), F.split_ratio, F.simcc_sigma,
                        F.augment, F.max_train_examples, F.max_val_examples),
        model=ModelConfig(F.variant, F.strategy, F.norm, F.init_checkpoint, F.backbone_weights),
        privacy=PrivacyConfig(F.method, F.l2_norm_clip, target, F.noise_multiplier, F.delta,
                              F.sampling, F.accountant, F.projection_dim, F.public_examples,
                              F.projection_refresh_steps, F.public_view, F.clipping),
        optim=OptimConfig(F.optimizer, F.learning_rate, F.lr_schedule, F.warmup_steps, F.momentum),
        run=RunConfig(F.run_dir, F.epochs, F.pretrain_epochs, F.batch_size, F.pretrain_batch_size,
                      F.max_steps, F.seed, F.checkpoint_every, F.eval_every, F.flip_test,
                      F.jit_compile, F.resume, F.log_every, F.pretrain_only, F.distribution,
                      F.cpu_replicas, F.mixed_precision))


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    try:
        config = config_from_flags().validate()
    except ValueError as e:
        raise app.UsageError(str(e))
    os.makedirs(F.run_dir, exist_ok=True)
    F.append_flags_into_file(os.path.join(F.run_dir, "flags.txt"))
    metrics = train(config)
    print({k: v for k, v in metrics.items() if "Mean" in k or "AP" in k or k == "epsilon"})


if __name__ == "__main__":
    _app.run(main)
