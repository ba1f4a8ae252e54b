r"""Privacy budget of a DP run: epsilon for a noise multiplier, or the noise multiplier for epsilon.

    python scripts/privacy_budget.py --num_examples=22246 --batch_size=64 --delta=4e-5 \
        --epochs=25 --target_epsilon=0.8
    python scripts/privacy_budget.py --num_examples=22246 --batch_size=64 --delta=4e-5 \
        --steps=8700 --noise_multiplier=1.1 --json

    python scripts/privacy_budget.py --num_examples=22246 --batch_size=64 --delta=4e-5 \
        --epochs=25 --noise_multiplier=1.42 --group_size=50        # a person in 50 crops

N and B count privacy units (--unit names them: examples, or people, videos, images for a run
with --privacy_unit). Poisson sampling (q = batch_size / num_examples) by default;
--sampling=shuffle prints both TF-Privacy figures and claims the once-per-epoch one.
--group_size=k also prints what the guarantee gives k units together (group privacy: what an
example-level guarantee says about a person in k crops). Invalid input exits with code 2.
"""

import json
import math
import sys

from absl import app, flags

import _app  # scripts/_app.py: absl's app.run, help exits 0, quiet start

_app.quiet_start()    # before TensorFlow is imported: its start-up chatter stays out

from tfdphpe.privacy import accounting

flags.DEFINE_integer("num_examples", None, "N, private training units (examples by default).")
flags.DEFINE_integer("batch_size", None, "Expected batch size B in units (q = B / N).")
flags.DEFINE_string("unit", "example", "What one unit is (example, image, video, identity): "
                    "named in the statement.")
flags.DEFINE_integer("group_size", None, "Also print the group-privacy epsilon and delta of k "
                     "units together (e.g. a person's crops under an example-level run).")
flags.DEFINE_float("delta", None, "Target delta, in (0, 1); below 1/N.")
flags.DEFINE_float("epochs", None, "Epochs of training (or give --steps).")
flags.DEFINE_integer("steps", None, "Steps of training (or give --epochs).")
flags.DEFINE_float("noise_multiplier", None, "sigma: prints the epsilon it gives.")
flags.DEFINE_float("target_epsilon", None, "epsilon: prints the sigma that reaches it.")
flags.DEFINE_enum("sampling", "poisson", accounting.SAMPLINGS, "How batches are drawn.")
flags.DEFINE_enum("accountant", "rdp", accounting.ACCOUNTANTS, "Privacy accountant.")
flags.DEFINE_bool("sampling_revealed", False, "Feature DP with a same-batch public term: account "
                  "without amplification by subsampling (RDP only).")
flags.DEFINE_bool("json", False, "Print one JSON object instead of the statement.")
FLAGS = flags.FLAGS


def _fail(message: str) -> None:
    print(f"privacy_budget: error: {message}", file=sys.stderr)
    sys.exit(2)


def _check_flags() -> None:
    for name in ("num_examples", "batch_size", "delta"):
        if getattr(FLAGS, name) is None:
            _fail(f"--{name} is required")
    if (FLAGS.epochs is None) == (FLAGS.steps is None):
        _fail("give exactly one of --epochs and --steps")
    if (FLAGS.noise_multiplier is None) == (FLAGS.target_epsilon is None):
        _fail("give exactly one of --noise_multiplier and --target_epsilon")
    if FLAGS.target_epsilon is not None and not FLAGS.target_epsilon > 0:
        _fail(f"--target_epsilon must be > 0, got {FLAGS.target_epsilon}")
    if FLAGS.group_size is not None and FLAGS.group_size < 1:
        _fail(f"--group_size must be >= 1, got {FLAGS.group_size}")
    if FLAGS.num_examples > 0 and 1.0 / FLAGS.num_examples <= FLAGS.delta < 1:
        print(f"privacy_budget: warning: delta {FLAGS.delta:g} >= 1/N allows releasing whole "
              "examples", file=sys.stderr)


def _parse_flags(argv):
    try:
        return FLAGS(argv)
    except flags.Error as err:   # absl would exit with 1; invalid input is exit code 2 here
        _fail(str(err))


def main(argv):
    if len(argv) > 1:
        _fail(f"unexpected arguments {argv[1:]}")
    _check_flags()
    common = dict(num_examples=FLAGS.num_examples, batch_size=FLAGS.batch_size, delta=FLAGS.delta,
                  epochs=FLAGS.epochs, steps=FLAGS.steps, sampling=FLAGS.sampling,
                  accountant=FLAGS.accountant, sampling_revealed=FLAGS.sampling_revealed)
    try:
        sigma = FLAGS.noise_multiplier
        if sigma is None:
            sigma = accounting.calibrate_noise_multiplier(target_epsilon=FLAGS.target_epsilon,
                                                          **common)
        report = accounting.privacy_report(noise_multiplier=sigma, unit=FLAGS.unit, **common)
    except ValueError as err:
        _fail(str(err))
    group = None
    if FLAGS.group_size is not None:
        group = accounting.group_privacy(report.epsilon, report.delta, FLAGS.group_size)
    if FLAGS.json:
        out = report.as_dict()
        out["target_epsilon"] = FLAGS.target_epsilon
        if group is not None:
            out.update(group_size=FLAGS.group_size, group_epsilon=group[0], group_delta=group[1])
        # JSON has no infinity: a zero noise multiplier gives epsilon null.
        finite = {k: None if isinstance(v, float) and math.isinf(v) else v for k, v in out.items()}
        print(json.dumps(finite, sort_keys=True))
        return
    if FLAGS.target_epsilon is not None:
        print(f"noise_multiplier = {sigma:.6g} reaches epsilon <= {FLAGS.target_epsilon:g}")
    print(f"epsilon = {report.epsilon:.6g} at delta = {report.delta:g} per {FLAGS.unit}")
    if group is not None:
        print(f"group of {FLAGS.group_size} {accounting.plural(FLAGS.unit)}: epsilon = "
              f"{group[0]:.6g} at delta = {group[1]:.3g} (group privacy)")
    print(report.statement())


if __name__ == "__main__":
    _app.run(main, flags_parser=_parse_flags)
