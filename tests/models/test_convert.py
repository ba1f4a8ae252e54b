"""TinyViT checkpoint conversion: numerical parity with timm on a saved fixture (no torch)."""

import json
import os

import numpy as np
import pytest

from tfdphpe.models import TinyViT, TinyViTConfig, load_tinyvit_checkpoint
from tfdphpe.models.convert import normalise_keys, official_to_timm_key, read_state_dict

FIXTURE = os.path.join(os.path.dirname(__file__), "..", "data", "tinyvit_parity")


def _fixture_config():
    with open(os.path.join(FIXTURE, "config.json")) as f:
        cfg = json.load(f)
    return TinyViTConfig(tuple(cfg["embed_dims"]), tuple(cfg["depths"]),
                         tuple(cfg["num_heads"]), tuple(cfg["window_sizes"]))


@pytest.mark.parametrize("size", [(224, 224), (256, 192)])
def test_parity_with_timm(size):
    h, w = size
    io = np.load(os.path.join(FIXTURE, "io.npz"))
    backbone = TinyViT(_fixture_config(), input_shape=(h, w, 3))
    report = load_tinyvit_checkpoint(backbone, os.path.join(FIXTURE, "model.safetensors"))
    assert report.loaded == len(backbone.weights)
    image = (io[f"input_{h}x{w}"].astype(np.float32) / 255.0 - 0.5) / 0.25
    out = backbone(image[None], training=False).numpy()[0]
    ref = io[f"output_{h}x{w}"]
    assert out.shape == ref.shape
    err = np.max(np.abs(out - ref))
    assert err <= 1e-4 * np.max(np.abs(ref)), (err, np.max(np.abs(ref)))


def test_official_key_names_map_to_timm():
    assert official_to_timm_key("patch_embed.seq.0.c.weight") == "patch_embed.conv1.conv.weight"
    assert official_to_timm_key("patch_embed.seq.2.bn.running_var") == \
        "patch_embed.conv2.bn.running_var"
    assert official_to_timm_key("layers.0.blocks.1.conv3.c.weight") == \
        "stages.0.blocks.1.conv3.conv.weight"
    assert official_to_timm_key("layers.2.downsample.conv2.c.weight") == \
        "stages.3.downsample.conv2.conv.weight"
    assert official_to_timm_key("layers.3.blocks.0.attn.attention_biases") == \
        "stages.3.blocks.0.attn.attention_biases"
    assert official_to_timm_key("layers.1.blocks.0.local_conv.c.weight") == \
        "stages.1.blocks.0.local_conv.conv.weight"
    assert official_to_timm_key("norm_head.weight") == "head.norm.weight"
    assert official_to_timm_key("head.bias") == "head.fc.bias"


def _to_official(key: str) -> str:
    """Inverse of the official->timm map, to write an official-layout file in the test."""
    import re
    key = key.replace("patch_embed.conv1.", "patch_embed.seq.0.")
    key = key.replace("patch_embed.conv2.", "patch_embed.seq.2.")
    key = re.sub(r"^stages\.(\d+)\.downsample\.",
                 lambda m: f"layers.{int(m.group(1)) - 1}.downsample.", key)
    key = re.sub(r"^stages\.(\d+)\.blocks\.", r"layers.\1.blocks.", key)
    return re.sub(r"\.conv\.weight$", ".c.weight", key)


def test_official_layout_loads_identically(tmp_path):
    from safetensors.numpy import save_file
    state = read_state_dict(os.path.join(FIXTURE, "model.safetensors"))
    official = {_to_official(k): v for k, v in state.items()}
    assert any(k.startswith("layers.") for k in official)
    assert normalise_keys(official).keys() == state.keys()
    path = str(tmp_path / "official.safetensors")
    save_file(official, path)
    a = TinyViT(_fixture_config(), input_shape=(64, 64, 3))
    b = TinyViT(_fixture_config(), input_shape=(64, 64, 3))
    load_tinyvit_checkpoint(a, os.path.join(FIXTURE, "model.safetensors"))
    load_tinyvit_checkpoint(b, path)
    for wa, wb in zip(a.weights, b.weights):
        np.testing.assert_array_equal(wa.numpy(), wb.numpy())


def test_wrong_variant_is_a_clear_error():
    backbone = TinyViT(TinyViTConfig((16, 24, 32, 48), (1, 1, 2, 1), (1, 2, 2, 4), (7, 7, 14, 7)),
                       input_shape=(64, 64, 3))
    with pytest.raises(ValueError, match="shape"):
        load_tinyvit_checkpoint(backbone, os.path.join(FIXTURE, "model.safetensors"))


def test_missing_file_and_pth_without_torch(tmp_path, monkeypatch):
    backbone = TinyViT(_fixture_config(), input_shape=(64, 64, 3))
    with pytest.raises(FileNotFoundError):
        load_tinyvit_checkpoint(backbone, str(tmp_path / "nope.safetensors"))
    pth = tmp_path / "x.pth"
    pth.write_bytes(b"not a pickle")
    import builtins
    real_import = builtins.__import__

    def no_torch(name, *args, **kwargs):
        if name == "torch":
            raise ImportError("no torch")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_torch)
    with pytest.raises(ImportError, match="tfdphpe\\[torch\\]"):
        read_state_dict(str(pth))
