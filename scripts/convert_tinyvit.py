r"""Converts a TinyViT checkpoint (timm .safetensors or official .pth) to Keras weights.

    python scripts/convert_tinyvit.py --checkpoint=model.safetensors --variant=5m \
        --output=weights/tinyvit_5m.weights.h5

The output loads with ``TinyViT(variant).load_weights(path)`` and is what
``scripts/train.py --backbone_weights=...`` takes.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # hide TensorFlow's C++ start-up chatter

from absl import app, flags

import _app  # scripts/_app.py: absl's app.run, help exits 0

from tfdphpe.models import VARIANTS, TinyViT, load_tinyvit_checkpoint

flags.DEFINE_string("checkpoint", None, "timm model.safetensors or official .pth file.",
                    required=True)
flags.DEFINE_enum("variant", "5m", sorted(VARIANTS), "TinyViT variant of the checkpoint.")
flags.DEFINE_string("output", None, "Keras weights file to write (*.weights.h5 or *.h5).",
                    required=True)
FLAGS = flags.FLAGS


def main(argv):
    del argv
    backbone = TinyViT(FLAGS.variant, input_shape=(None, None, 3))
    report = load_tinyvit_checkpoint(backbone, FLAGS.checkpoint)
    backbone.save_weights(FLAGS.output)
    print(report)
    print(f"wrote {FLAGS.output}")


if __name__ == "__main__":
    _app.run(main)
