r"""Exports a pose model: SavedModel for TF Serving and, optionally, TFLite files.

    python scripts/export.py --checkpoint=runs/mpii_dpsgd_eps1 --name=pose --version=1 \
        --tflite=float32,float16,int8 \
        --calibration_images='data/coco/val2017/*.jpg' \
        --calibration_annotations=data/coco/annotations/person_keypoints_val2017.json
    python scripts/export.py --variant=5m --input_size=256,192 --name=demo   # untrained model

Writes savedmodels/NAME/VERSION/ (saved_model.pb, variables/, assets/privacy.json) and
savedmodels/NAME/VERSION/tflite/pose_<format>.tflite. int8 calibration reads PUBLIC images only
(DESIGN 4): never point --calibration_images at the private training set.
"""

import glob
import json
import os

import _app  # scripts/_app.py: absl's app.run, help exits 0, quiet start

_app.quiet_start()    # before TensorFlow is imported: its start-up chatter stays out

from absl import app, flags  # noqa: E402


from tfdphpe import export

flags.DEFINE_string("checkpoint", None, "A .keras model file or a run directory with model.keras "
                    "(+ privacy.json, config.json). Without it a fresh, untrained model is used.")
flags.DEFINE_string("variant", "5m", "TinyViT variant of a fresh model.")
flags.DEFINE_list("input_size", ["256", "192"], "Input height,width of a fresh model.")
flags.DEFINE_integer("num_joints", 16, "Joints of a fresh model.")
flags.DEFINE_enum("preset", None, sorted(export.PRESETS), "Variant and input size of a fresh "
                  "model from a deployment preset (overrides --variant/--input_size).")
flags.DEFINE_string("joint_set", None,
                    "mpii or coco (default: from config.json or the joint count).")
flags.DEFINE_string("name", None, "Model name: savedmodels/NAME/VERSION.")
flags.DEFINE_integer("version", None, "Version number (default: one above the highest present).")
flags.DEFINE_string("output_dir", "savedmodels", "Base directory of exports.")
flags.DEFINE_string("privacy", None, "privacy.json to attach (default: the checkpoint's).")
flags.DEFINE_bool("flip_test", False, "Average each crop with its mirror image (2x compute).")
flags.DEFINE_list("tflite", [], f"TFLite formats to write: {','.join(export.TFLITE_FORMATS)}.")
flags.DEFINE_string("calibration_images", None, "Glob of PUBLIC images for int8 calibration.")
flags.DEFINE_string("calibration_annotations", None, "COCO-format json with person boxes for them.")
flags.DEFINE_integer("calibration_limit", 200, "Calibration crops.")
flags.DEFINE_bool("overwrite", False, "Replace an existing version directory.")
flags.mark_flag_as_required("name")
FLAGS = flags.FLAGS


def _source():
    if FLAGS.checkpoint:
        source = export.load_checkpoint(FLAGS.checkpoint)
        if FLAGS.joint_set:
            source.joint_set = export.resolve_joint_set(FLAGS.joint_set,
                                                         source.joint_set.num_joints)
        return source
    variant, size = FLAGS.variant, [int(v) for v in FLAGS.input_size]
    if FLAGS.preset:
        preset = export.PRESETS[FLAGS.preset]
        variant, size = preset.variant, preset.input_size
    return export.fresh_model(variant, size, FLAGS.num_joints, joint_set=FLAGS.joint_set)


def main(argv):
    del argv
    source = _source()
    privacy = FLAGS.privacy or source.privacy
    extra = {"source": source.origin, "config": source.config}
    out = export.version_dir(FLAGS.output_dir, FLAGS.name, FLAGS.version)
    export.export_saved_model(source.model, out, source.joint_set, privacy, FLAGS.flip_test,
                              overwrite=FLAGS.overwrite, extra_metadata=extra)
    print(f"SavedModel: {out}")
    for fmt in FLAGS.tflite:
        crops, where = None, None
        if fmt == "int8":
            files = sorted(glob.glob(FLAGS.calibration_images or ""))
            if not files:
                raise app.UsageError("int8 needs --calibration_images (a glob of PUBLIC images)")
            boxes = (export.coco_person_boxes(FLAGS.calibration_annotations)
                     if FLAGS.calibration_annotations else None)
            size = tuple(source.model.input_shape[1:3])
            crops = export.public_calibration_crops(files, size, boxes, FLAGS.calibration_limit)
            where = f"{FLAGS.calibration_images} ({len(files)} files)"
        data = export.convert_to_tflite(source.model, fmt, joint_set=source.joint_set,
                                        calibration_crops=crops, calibration_source=where,
                                        privacy=privacy, flip_test=FLAGS.flip_test,
                                        extra_metadata=extra)
        path = os.path.join(out, "tflite", f"pose_{fmt}.tflite")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        print(f"TFLite {fmt}: {path} ({len(data) / 1e6:.1f} MB)")
    statement = export.read_metadata(out)["privacy"]
    print("Privacy:", json.dumps(statement.get("statement", statement)))


if __name__ == "__main__":
    _app.run(main)
