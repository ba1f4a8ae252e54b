r"""Writes the TinyViT parity fixture (tests/data/tinyvit_parity/) from timm. Not run by CI.

Needs torch + timm, which are NOT dependencies of tfdphpe; use a separate venv:

    python3.11 -m venv /tmp/timmvenv
    /tmp/timmvenv/bin/pip install torch==2.14.1 torchvision==0.29.1 timm safetensors
    /tmp/timmvenv/bin/python scripts/make_tinyvit_parity_fixture.py

It builds a reduced timm TinyViT (every layer type: stem, MBConv, PatchMerging, window attention
with and without padding, local conv, MLP) with random weights, random BatchNorm statistics,
LayerNorm affine parameters and attention biases, and saves: model.safetensors, uint8 inputs at
224x224 (windows fit exactly) and 256x192 (windows padded), and timm's forward_features output.
"""

import argparse
import json
import os

import numpy as np

CONFIG = dict(embed_dims=[16, 24, 32, 40], depths=[1, 1, 2, 1], num_heads=[1, 2, 2, 4],
              window_sizes=[7, 7, 14, 7], num_classes=0)
SIZES = [(224, 224), (256, 192)]


def normalise(u8: np.ndarray) -> np.ndarray:
    """uint8 HWC -> float32 NCHW, the same arithmetic the CI test uses (NHWC there)."""
    return ((u8.astype(np.float32) / 255.0 - 0.5) / 0.25).transpose(2, 0, 1)[None]


def main():
    parser = argparse.ArgumentParser(description="Writes the TinyViT parity fixture from timm "
                                                 "(needs torch, timm and safetensors).")
    parser.add_argument("--helpfull", action="help", help="the same as --help (as in the absl "
                                                             "scripts)")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests",
                                                      "data", "tinyvit_parity"),
                        help="Output folder (default: tests/data/tinyvit_parity).")
    args = parser.parse_args()
    import timm    # only here: --help works without torch and timm
    import torch
    from safetensors.torch import save_file

    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(0)
    rng = np.random.RandomState(0)
    model = timm.models.tiny_vit.TinyVit(**CONFIG)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.randn_like(p) * (0.5 if "attention_biases" in name else 0.2)
                    + (1.0 if name.endswith("norm.weight") or name.endswith("bn.weight") else 0))
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.randn_like(b) * 0.1)
            elif name.endswith("running_var"):
                b.copy_(torch.rand_like(b) + 0.5)
    model.eval()
    state = {k: v.contiguous() for k, v in model.state_dict().items()
             if not k.endswith(("attention_bias_idxs",))}
    save_file(state, os.path.join(args.out, "model.safetensors"))
    arrays = {}
    for h, w in SIZES:
        u8 = rng.randint(0, 256, size=(h, w, 3)).astype(np.uint8)
        with torch.no_grad():
            out = model.forward_features(torch.from_numpy(normalise(u8)))
        arrays[f"input_{h}x{w}"] = u8
        arrays[f"output_{h}x{w}"] = out.numpy()[0].transpose(1, 2, 0)  # NCHW -> HWC
    np.savez_compressed(os.path.join(args.out, "io.npz"), **arrays)
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump({k: v for k, v in CONFIG.items() if k != "num_classes"}
                  | {"timm_version": timm.__version__}, f, indent=1)
    print("wrote", sorted(os.listdir(args.out)))


if __name__ == "__main__":
    main()
