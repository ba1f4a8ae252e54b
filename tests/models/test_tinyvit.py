import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import TINY
from tfdphpe.models import TinyViT, count_params
from tfdphpe.models.layers import TinyViTBlock, attention_bias_index

# Learnable backbone parameters counted with timm 1.0.31 (DESIGN 6).
REFERENCE_PARAMS = {"5m": 5_071_124, "11m": 10_547_076, "21m": 20_620_416}


@pytest.mark.parametrize("variant", sorted(REFERENCE_PARAMS))
def test_parameter_count_matches_reference(variant):
    model = TinyViT(variant, input_shape=(256, 192, 3))
    assert count_params(model.trainable_weights) == REFERENCE_PARAMS[variant]
    assert model.output_shape == (None, 8, 6, {"5m": 320, "11m": 448, "21m": 576}[variant])


def test_return_stages_shapes():
    model = TinyViT(TINY, input_shape=(64, 48, 3), return_stages=True)
    shapes = [tuple(o.shape) for o in model(tf.zeros([2, 64, 48, 3]))]
    assert shapes == [(2, 16, 12, 8), (2, 8, 6, 16), (2, 4, 3, 16), (2, 2, 2, 24)]


def test_attention_bias_index_is_symmetric_offset_table():
    idx, n = attention_bias_index(3)
    assert idx.shape == (9, 9) and n == 9
    assert idx[0, 0] == idx[4, 4] == 0          # zero offset
    assert idx[0, 1] == idx[1, 0] == idx[4, 3]  # |dx| = 1, dy = 0


def test_window_padding_matches_explicit_window_loop():
    """Padded window attention equals attending each window separately on the padded map."""
    tf.random.set_seed(0)
    block = TinyViTBlock(dim=8, num_heads=2, window_size=4)
    x = tf.random.normal([1, 6, 5, 8])
    block(x)
    block.attn.bias.attention_biases.assign(tf.random.normal([2, 16]))
    got = block._window_attention(x).numpy()
    padded = np.zeros([1, 8, 8, 8], np.float32)
    padded[:, :6, :5] = x.numpy()
    want = np.zeros_like(padded)
    for i in range(0, 8, 4):
        for j in range(0, 8, 4):
            win = padded[:, i:i + 4, j:j + 4].reshape(1, 16, 8)
            want[:, i:i + 4, j:j + 4] = block.attn(win).numpy().reshape(1, 4, 4, 8)
    np.testing.assert_allclose(got, want[:, :6, :5], atol=1e-5)


def test_groupnorm_backbone_has_no_batchnorm():
    model = TinyViT(TINY, input_shape=(64, 48, 3), norm="group")
    assert not any("moving" in w.name for w in model.weights)
    assert model(tf.zeros([1, 64, 48, 3])).shape == (1, 2, 2, 24)


def test_bad_arguments():
    with pytest.raises(ValueError, match="variant"):
        TinyViT("7m")
    with pytest.raises(ValueError, match="norm"):
        TinyViT(TINY, input_shape=(64, 48, 3), norm="layer")
