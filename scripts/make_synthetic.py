"""Renders the synthetic pose data set in MPII and COCO formats.

    python scripts/make_synthetic.py --out=data/synthetic --num_train=2000 --num_val=300 --seed=0

Writes images/, mpii/{train,valid}.json + gt_valid.mat (+ the official .mat layout) and
coco/person_keypoints_{train,val}.json; see docs/data.md.
"""

from absl import app, flags

import _app  # scripts/_app.py: absl's app.run, help exits 0

from tfdphpe.data.synthetic import SyntheticConfig, write_synthetic_dataset

FLAGS = flags.FLAGS
flags.DEFINE_string("out", None, "Output directory.", required=True)
flags.DEFINE_integer("num_train", 2000, "Training images (one annotated person each).")
flags.DEFINE_integer("num_val", 300, "Validation images.")
flags.DEFINE_integer("seed", 0, "Seed: the same seed gives the same data set.")
flags.DEFINE_integer("num_identities", 200, "Distinct people (faces, bodies, clothes).")
flags.DEFINE_integer("num_workers", 2, "Rendering processes.")
flags.DEFINE_list("image_size", ["256", "320"], "Image height,width.")


def main(argv):
    del argv
    cfg = SyntheticConfig(image_size=tuple(int(v) for v in FLAGS.image_size),
                          num_identities=FLAGS.num_identities)
    summary = write_synthetic_dataset(FLAGS.out, FLAGS.num_train, FLAGS.num_val, FLAGS.seed, cfg,
                                      num_workers=FLAGS.num_workers)
    n = FLAGS.num_train + FLAGS.num_val
    print(f"wrote {n} images to {FLAGS.out} in {summary['total_seconds']:.1f} s "
          f"({n / max(summary['render_seconds'], 1e-9):.0f} images/s rendering)")


if __name__ == "__main__":
    _app.run(main)
