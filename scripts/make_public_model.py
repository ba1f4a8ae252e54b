r"""Makes the public model shipped in tfdphpe/models/pretrained/ (the exact command behind it).

    python scripts/make_public_model.py            # about 2 h on a 2-core CPU

1. Renders the public synthetic set (configs/demo/public_data.flags: seed 1000, people from
   1,000,000) and the demo's private set (configs/demo/private_data.flags), if missing.
2. Trains non-privately on the PUBLIC set only: stage 1 (configs/public_model/stage1.flags,
   COCO-17 labels, BatchNorm learning) then stage 2 (stage2.flags, MPII-16 labels). A finished
   stage is not repeated.
3. Scores the result on the private validation people (never trained on): all of them, and
   the first --subset people as the shipped-model test does, from the float16 weights.
4. Writes <name>.safetensors (float16), <name>.json (the card) and the training curve
   (<name>_curve.csv / .png) into tfdphpe/models/pretrained/.
"""

import json
import os
import subprocess
import sys

from absl import flags

import _app  # scripts/_app.py: absl's app.run, help exits 0, quiet start

_app.quiet_start()    # before TensorFlow is imported: its start-up chatter stays out

F = flags.FLAGS
flags.DEFINE_string("name", "tinyvit5m_public_synthetic_128x96", "Shipped model name.")
flags.DEFINE_string("out_dir", None, "Where to write (default: tfdphpe/models/pretrained).")
flags.DEFINE_integer("subset", 32, "Validation people the shipped-model test scores.")
STAGES = ("configs/public_model/stage1.flags", "configs/public_model/stage2.flags")
DATA = ("configs/demo/public_data.flags", "configs/demo/private_data.flags")


def _flags(path: str) -> dict:
    with open(path) as f:
        pairs = [line.strip()[2:].partition("=") for line in f if line.startswith("--")]
    return {k: v for k, _, v in pairs}


def _run(script: str, flagfile: str) -> None:
    print(f"\n=== python scripts/{script} --flagfile={flagfile}", flush=True)
    subprocess.run([sys.executable, os.path.join(os.path.dirname(__file__), script),
                    f"--flagfile={flagfile}"], check=True)


def main(argv):
    del argv
    from tfdphpe.data.joints import MPII
    from tfdphpe.models import pretrained
    from tfdphpe.training.curves import stage_curves, write_curves
    from tfdphpe.training.evaluate import evaluate_checkpoint, load_run_model

    public, private = (_flags(p)["out"] for p in DATA)
    for flagfile, out in zip(DATA, (public, private)):
        if not os.path.exists(os.path.join(out, "info.json")):
            _run("make_synthetic.py", flagfile)
    stage_dirs = (os.path.join(_flags(STAGES[0])["run_dir"], "pretrain"),
                  _flags(STAGES[1])["run_dir"])
    for flagfile, run_dir in zip(STAGES, stage_dirs):
        if not os.path.exists(os.path.join(run_dir, "model.keras")):
            _run("train.py", flagfile)
    final = os.path.join(stage_dirs[1], "model.keras")
    float32 = evaluate_checkpoint(final, "synthetic", private)
    out_dir = F.out_dir or pretrained.PRETRAINED_DIR
    stem = os.path.join(out_dir, F.name)
    public_info, private_info = (_info(d) for d in (public, private))
    card = {
        "description": "TinyViT-5M + SimCC (MPII-16 joints) at 128x96, trained non-privately "
                       "from scratch on public synthetic people only (seed "
                       f"{public_info['seed']}, people from "
                       f"{public_info['config'].get('first_identity', 0)})",
        "command": "python scripts/make_public_model.py",
        "flagfiles": {p: _flags(p) for p in DATA + STAGES},
        "data": {"info": public_info},
        "stages": [_stage(d) for d in stage_dirs],
        "scored_on": {"data": private, "info": private_info, "flip_test": True,
                      "note": "private validation people: never trained on; scoring them is "
                              "outside any DP guarantee"},
    }
    model, _ = load_run_model(final)
    pretrained.save_public_model(model, stem, card, variant="5m", split_ratio=2.0,
                                 joints=MPII.names)
    shipped = pretrained.export_keras(stem + ".keras", stem)     # float16 weights, as loaded
    scores = {"pckh": evaluate_checkpoint(shipped, "synthetic", private), "pckh_float32": float32,
              "subset": {"people": F.subset, "pckh": evaluate_checkpoint(
                  shipped, "synthetic", private, max_examples=F.subset)}}
    os.remove(shipped)
    rows = stage_curves([("stage 1: COCO-17, public", stage_dirs[0]),
                         ("stage 2: MPII-16, public", stage_dirs[1])])
    write_curves(rows, stem + "_curve.csv", stem + "_curve.png",
                 title="public model: loss; PCKh@0.5 on public validation people")
    scores["curve"] = [os.path.basename(stem) + s for s in ("_curve.csv", "_curve.png")]
    pretrained.update_public_model_card(stem, scores)
    print(json.dumps({k: scores[k] for k in ("pckh", "subset")}, indent=1))


def _info(data_dir: str) -> dict:
    with open(os.path.join(data_dir, "info.json")) as f:
        return json.load(f)


def _stage(run_dir: str) -> dict:
    with open(os.path.join(run_dir, "checkpoints", "state.json")) as f:
        state = json.load(f)
    return {"run_dir": run_dir, "steps": state["step"],
            "seconds_last_session": round(state.get("elapsed_s", 0.0))}


if __name__ == "__main__":
    _app.run(main)
