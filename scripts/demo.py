r"""The demo: what DP fine-tuning keeps of a public model (synthetic data, 2-core CPU sized).

    make demo                      # generates the private synthetic set, then runs this
    python scripts/demo.py         # the same, once data/synthetic/demo_private exists

1. Set-up: checks that the private set shares no seed and no person with the public model's
   data, and writes the shipped public model (tfdphpe/models/pretrained/) as a .keras file.
2. Scores the public model on the private validation people (before any private training).
3. Fine-tunes it with DP (configs/demo/finetune.flags: FP-DP at epsilon 1) and, for comparison,
   non-privately with the same recipe and length (--nonprivate=false skips it).
4. Prints the three side by side and the privacy statement; draws public / DP / non-private
   predictions of a few validation people into <run_dir>/overlays.png.
"""

import json
import os
import subprocess
import sys
import time

from absl import flags

import _app  # scripts/_app.py: absl's app.run, help exits 0, quiet start

_app.quiet_start()    # before TensorFlow is imported: its start-up chatter stays out

F = flags.FLAGS
flags.DEFINE_string("flagfile_dp", "configs/demo/finetune.flags",
                    "Fine-tuning recipe (train.py flags).")
flags.DEFINE_string("data_dir", "data/synthetic/demo_private", "Private synthetic set "
                    "(configs/demo/private_data.flags).")
flags.DEFINE_string("run_dir", "runs/demo", "Where the demo's runs and pictures go.")
flags.DEFINE_bool("nonprivate", True, "Also fine-tune without DP for comparison.")
flags.DEFINE_bool("setup_only", False, "Only the set-up (step 1).")
flags.DEFINE_integer("overlay_people", 6, "Validation people in overlays.png.")


def setup() -> str:
    from tfdphpe.data.synthetic import check_disjoint
    from tfdphpe.models.pretrained import export_keras, public_model_card

    card = public_model_card()
    with open(os.path.join(F.data_dir, "info.json")) as f:
        private = json.load(f)
    check_disjoint(card["data"]["info"], private)
    print(f"public model: {card['description']}\nprivate set {F.data_dir}: other seed, other "
          "people than the public model's data (checked)")
    if private["config"] != card["scored_on"]["info"]["config"]:
        print(f"note: {F.data_dir} was rendered with other settings than the set the public "
              "model's card was scored on (configs/demo/private_data.flags); figures will differ")
    path = os.path.join(F.run_dir, "public_model.keras")
    return path if os.path.exists(path) else export_keras(path)


def fine_tune(name: str, *extra: str) -> dict:
    run_dir = os.path.join(F.run_dir, name)
    cmd = [sys.executable, os.path.join(os.path.dirname(__file__), "train.py"),
           f"--flagfile={F.flagfile_dp}", f"--data_dir={F.data_dir}", f"--run_dir={run_dir}",
           *extra]
    print(f"\n=== {name}: {' '.join(cmd[1:])}", flush=True)
    subprocess.run(cmd, check=True)
    with open(os.path.join(run_dir, "metrics.json")) as f:
        return json.load(f)


def main(argv):
    del argv
    _app.data_logs_at_warning()
    t0 = time.time()
    public = setup()
    if F.setup_only:
        return
    from tfdphpe.training.compare import comparison_table, overlay_figure
    from tfdphpe.training.evaluate import evaluate_checkpoint

    print("\n=== the public model on the private validation people (no private training yet)")
    rows = [("public model", evaluate_checkpoint(public, "synthetic", F.data_dir),
             "public data only")]
    print(comparison_table(rows))
    dp = fine_tune("dp", f"--init_checkpoint={public}")
    with open(os.path.join(F.run_dir, "dp", "privacy.json")) as f:
        method = json.load(f)["method"]
    rows.append(("DP fine-tune", dp, f"{method}, epsilon {dp['epsilon']:.2f}"))
    models = [("public", public), ("DP", os.path.join(F.run_dir, "dp"))]
    if F.nonprivate:
        rows.append(("non-private fine-tune", fine_tune(
            "nonprivate", f"--init_checkpoint={public}", "--method=none"), "none"))
        models.append(("non-private", os.path.join(F.run_dir, "nonprivate")))
    print("\n=== PCKh (%) on the private synthetic validation people (flip test)")
    print(comparison_table(rows))
    with open(os.path.join(F.run_dir, "dp", "privacy.txt")) as f:
        print("\nPrivacy statement of the DP model:\n" + f.read())
    picture = overlay_figure(models, "synthetic", F.data_dir,
                             os.path.join(F.run_dir, "overlays.png"), F.overlay_people)
    print(f"overlays: {picture}\ndemo took {time.time() - t0:.0f} s (synthetic data; "
          "docs/demo.md says what the figures mean)")


if __name__ == "__main__":
    _app.run(main)
