"""Renders the synthetic pose data set in MPII and COCO formats.

    python scripts/make_synthetic.py --out=data/synthetic --num_train=2000 --num_val=300 --seed=0
    python scripts/make_synthetic.py --out=data/synthetic_video --num_videos=40 \
        --num_val_videos=10 --frames_per_video=24 --people_per_frame=2 --num_identities=50

Writes images/, mpii/{train,valid}.json + gt_valid.mat (+ the official .mat layout) and
coco/person_keypoints_{train,val}.json; see docs/data.md (video mode: "Video-like mode").
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
flags.DEFINE_integer("first_identity", 0, "Global id of the first person: give data sets that "
                     "must share nobody (public, private) disjoint ranges.")
flags.DEFINE_integer("num_workers", 2, "Rendering processes.")
flags.DEFINE_list("image_size", ["256", "320"], "Image height,width.")
# Difficulties (defaults: SyntheticConfig's); configs/demo/*_data.flags make them rarer.
for _name, _what in (("second_figure_prob", "an unannotated second figure"),
                     ("occluder_prob", "1-2 occluders over the figure"),
                     ("truncation_prob", "the figure cut by the image border"),
                     ("back_view_prob", "the figure seen from behind"),
                     ("tilt_prob", "a strongly tilted or lying figure")):
    flags.DEFINE_float(_name, getattr(SyntheticConfig, _name), f"Share of images with {_what}.")
flags.DEFINE_integer("num_videos", 0, "Video-like mode when > 0: training videos (then "
                     "--num_train/--num_val are not used).")
flags.DEFINE_integer("num_val_videos", 0, "Validation videos (video mode).")
flags.DEFINE_integer("frames_per_video", 24, "Frames per video (video mode).")
flags.DEFINE_integer("people_per_frame", 1, "Annotated people in every frame (video mode, 1-3).")
flags.DEFINE_integer("key_pose_every", 12, "Frames between key poses (video mode).")


def main(argv):
    del argv
    video = FLAGS.num_videos > 0
    cfg = SyntheticConfig(image_size=tuple(int(v) for v in FLAGS.image_size),
                          num_identities=FLAGS.num_identities,
                          first_identity=FLAGS.first_identity,
                          frames_per_video=FLAGS.frames_per_video if video else 0,
                          people_per_frame=FLAGS.people_per_frame if video else 1,
                          key_pose_every=FLAGS.key_pose_every,
                          second_figure_prob=FLAGS.second_figure_prob,
                          occluder_prob=FLAGS.occluder_prob, truncation_prob=FLAGS.truncation_prob,
                          back_view_prob=FLAGS.back_view_prob, tilt_prob=FLAGS.tilt_prob)
    counts = (FLAGS.num_videos, FLAGS.num_val_videos) if video else (FLAGS.num_train,
                                                                     FLAGS.num_val)
    summary = write_synthetic_dataset(FLAGS.out, *counts, FLAGS.seed, cfg,
                                      num_workers=FLAGS.num_workers)
    n = sum(counts) * (cfg.frames_per_video if video else 1)
    print(f"wrote {n} images to {FLAGS.out} in {summary['total_seconds']:.1f} s "
          f"({n / max(summary['render_seconds'], 1e-9):.0f} images/s rendering)")


if __name__ == "__main__":
    _app.run(main)
