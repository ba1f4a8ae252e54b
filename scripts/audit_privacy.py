"""Empirical privacy audit in one run: claimed epsilon vs a lower bound measured from canaries.

    # white-box (Dirac gradient canaries) on a small model, every method and clipping path:
    python scripts/audit_privacy.py --kind=white_box --epsilons=1,4,8
    # black-box (mislabelled synthetic people) on the pose model at 128x96:
    python scripts/audit_privacy.py --kind=black_box --methods=dpsgd --clipping=ghost \
        --epsilons=8 --num_real=500 --num_canaries=500 --batch_size=32 --steps=300

    # canaries that are whole units of 10 examples, protected as units or as examples:
    python scripts/audit_privacy.py --methods=dpsgd --clipping=vectorized --epsilons=1 \
        --canary_size=10 --unit_level=true --num_real=64 --num_canaries=256 --batch_size=128 \
        --steps=40

See docs/privacy.md ("Empirical audit", and section 4a for units) for what the bound means.
"""

import dataclasses
import json
import time

from absl import flags

import _app  # scripts/_app.py: absl's app.run, help exits 0, quiet start

_app.quiet_start()    # before TensorFlow is imported: its start-up chatter stays out

FLAGS = flags.FLAGS
flags.DEFINE_enum("kind", "white_box", ["white_box", "black_box"],
                  "white_box: Dirac gradient canaries on a small conv model; black_box: "
                  "mislabelled synthetic people on the pose model, scored by their loss drop.")
flags.DEFINE_list("methods", ["dpsgd", "pdpsgd", "fdp", "fpdp"], "DP methods to audit.")
flags.DEFINE_list("clipping", ["vectorized", "ghost"], "Clipping paths to audit.")
flags.DEFINE_list("epsilons", ["1", "4", "8"], "Claimed epsilons (sigma calibrated to each).")
flags.DEFINE_float("delta", 1e-5, "Claimed delta (needs 2 * num_canaries * delta < 1).")
flags.DEFINE_integer("num_canaries", 1000, "m: canaries, each in the training set by a coin.")
flags.DEFINE_integer("num_real", 1000, "n: real training examples besides the canaries.")
flags.DEFINE_integer("num_public", 50, "S_pub size for pdpsgd/fpdp (public examples).")
flags.DEFINE_integer("batch_size", 200, "Expected batch B; q = B / (num_real + num_canaries).")
flags.DEFINE_integer("steps", 100, "Training steps (Poisson-sampled).")
flags.DEFINE_float("l2_norm_clip", 1.0, "Per-example clip norm C.")
flags.DEFINE_float("learning_rate", 0.1, "Plain SGD learning rate.")
flags.DEFINE_integer("projection_dim", 10, "pdpsgd/fpdp: k, directions of V.")
flags.DEFINE_integer("refresh_every", 10, "pdpsgd/fpdp: steps between refreshes of V.")
flags.DEFINE_float("canary_scale", 100.0, "White-box: canary gradient norm in units of C.")
flags.DEFINE_float("beta", 0.05, "Significance: the bound holds with confidence 1 - beta.")
flags.DEFINE_integer("seed", 0, "Seed of coins, sampling, noise and model initialisation.")
flags.DEFINE_integer("canary_size", 1, "Examples per canary: a canary is a whole unit (a person "
                     "in several frames) whose examples carry its signal together.")
flags.DEFINE_bool("unit_level", False, "Protect units (canaries as units of --canary_size): "
                  "units are sampled and clipped as one record; false: example-level DP.")
flags.DEFINE_string("variant", "5m", "Black-box: TinyViT variant.")
flags.DEFINE_list("input_size", ["128", "96"], "Black-box: model input height,width.")
flags.DEFINE_string("strategy", "finetune", "Black-box: which weights train (finetune/full).")
flags.DEFINE_string("data_dir", "data/synthetic/audit",
                    "Black-box: synthetic data set (rendered here if missing).")
flags.DEFINE_float("blur", 4.0, "Black-box fdp/fpdp: psi(x) blur sigma in crop pixels.")
flags.DEFINE_string("json", None, "Also write the rows as JSON lines to this file.")


def main(argv):
    del argv
    from tfdphpe.privacy.audit import AuditConfig
    from tfdphpe.training import audit as tasks
    results = []
    for eps in (float(e) for e in FLAGS.epsilons):
        for method in FLAGS.methods:
            for clipping in FLAGS.clipping:
                config = AuditConfig(
                    method=method, clipping=clipping, target_epsilon=eps, delta=FLAGS.delta,
                    num_canaries=FLAGS.num_canaries, batch_size=FLAGS.batch_size,
                    steps=FLAGS.steps, l2_norm_clip=FLAGS.l2_norm_clip,
                    learning_rate=FLAGS.learning_rate, projection_dim=FLAGS.projection_dim,
                    refresh_every=FLAGS.refresh_every, canary_scale=FLAGS.canary_scale,
                    beta=FLAGS.beta, seed=FLAGS.seed, canary_size=FLAGS.canary_size,
                    unit_level=FLAGS.unit_level)
                t0 = time.time()
                if FLAGS.kind == "white_box":
                    task = tasks.toy_task(FLAGS.num_real, FLAGS.num_public, FLAGS.seed)
                else:
                    task = tasks.pose_task(
                        FLAGS.variant, [int(s) for s in FLAGS.input_size], FLAGS.strategy,
                        FLAGS.num_real, FLAGS.num_canaries, FLAGS.num_public, FLAGS.data_dir,
                        FLAGS.blur, FLAGS.seed)
                result = tasks.run_audit(FLAGS.kind, config, task)
                results.append(result)
                print(f"-> bound {result.epsilon_lower_bound:.3f} vs claimed "
                      f"{result.claimed_epsilon:.3f} ({result.audited.correct}/"
                      f"{result.audited.guesses} correct; {time.time() - t0:.1f} s with setup)",
                      flush=True)
                if FLAGS.json:
                    with open(FLAGS.json, "a") as f:
                        row = result.row() | {"config": dataclasses.asdict(config)}
                        f.write(json.dumps(row) + "\n")
    print(tasks.table(results))


if __name__ == "__main__":
    _app.run(main)
