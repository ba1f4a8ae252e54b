"""Keras-native DP training: ``DPModel`` routes ``model.fit`` through ``dp_gradients``.

Record the steps with ``tfdphpe.privacy.PrivacyLedgerCallback`` (``ledger_callback.py``).

    dp = DPModel(model)                                     # public_data=S_pub for pdpsgd
    dp.compile(optimizer=make_optimizer("dpsgd", C, sigma, lr, expected_batch_size=B,
                                        clipping="ghost"), loss=per_example_loss)
    data = build_dataset(records, pipeline, BatchConfig("poisson", batch_size=B, num_steps=T))
    dp.fit(data.dataset, callbacks=[PrivacyLedgerCallback(num_examples=N, delta=1e-5,
                                                          sampling=data.sampling,
                                                          directory=ckpt_dir)])

The sampler draws its coins from a fresh secret key (``BatchConfig.sampling_key``, never a
seed); pass its ``SamplingInfo`` to the callback so the statement rests on how the batches were
really drawn.

Without ``DPModel`` a compiled DP optimizer falls back to TF-Privacy's stock minimize() path (a
jacobian and a while loop: 7-16x a plain step) and refuses every method but dpsgd. Here every
step is the optimizer's fast path, ``dp_gradients(loss_fn, (x, y), var_list, layers=model)`` +
``apply_gradients``, as in the trainer's own loop.

The per-example loss: the loss given to ``compile`` is called unreduced. A
``tf.keras.losses.Loss`` is called through its ``call`` (its reduction is ignored: the Loss
contract is that ``call`` returns unreduced values); any other callable ``loss(y_true, y_pred)``
must return values with the batch as leading axis. Extra axes are averaged, so example i's loss
is what Keras's default reduction would average over the batch.

Padding: a 0/1 mask marks the examples of a fixed-size (padded) Poisson batch that were sampled,
either as Keras's ``sample_weight`` (``(x, y, mask)`` elements) or under ``mask_key`` in a dict
``x``. Weights other than 0 and 1 are refused: they would not be a mask.

Each dataset element must be one whole step: the Poisson sampler (tfdphpe.privacy.sampling) splits a
step that overflows ``max_batch_size`` into chunks; a dict element with ``num_chunks`` > 1 fails
the step (raise ``max_batch_size``). Rank-0 entries of dict elements (step numbers) are left out
of the per-example batch.
"""

from __future__ import annotations

from typing import Any, Callable

import tensorflow as tf

from tfdphpe.keras_utils import updates_batch_statistics


# --------------------------------------------------------------------------- checks
def check_dp_optimizer(optimizer, allow_non_private: bool = False) -> None:
    """Raises ValueError unless ``optimizer`` is a tfdphpe DP optimizer DPModel can drive."""
    if not hasattr(optimizer, "dp_gradients") or not hasattr(optimizer, "method"):
        raise ValueError(f"DPModel needs a tfdphpe DP optimizer (tfdphpe.privacy.make_optimizer), "
                         f"got {type(optimizer).__name__}: its updates would not be private")
    method = optimizer.method
    if not method.private and not allow_non_private:
        raise ValueError("the optimizer's method is 'none' (no clipping, no noise): pass "
                         "allow_non_private=True to DPModel to train without privacy")
    if method.feature_dp:
        raise ValueError(f"method {method.value!r} (Feature DP) needs the public view psi(x) and "
                         "an independently sampled batch of public views, which model.fit's "
                         "(x, y, sample_weight) elements do not carry; use tfdphpe.training")


def live_batchnorm_layers(model: tf.keras.layers.Layer) -> list[str]:
    """Names of BatchNorm-like layers (BatchNormalization, SyncBatchNormalization, any layer with
    moving statistics) that would learn statistics from (private) training batches."""
    return [layer.name for layer in model._flatten_layers(include_self=False)  # pylint: disable=protected-access
            if updates_batch_statistics(layer)]


def per_example_loss(loss) -> Callable[[Any, Any], tf.Tensor]:
    """(y_true, y_pred) -> [B] float32 losses from a compile() loss (see the module docstring)."""
    if loss is None:
        raise ValueError("DPModel.compile needs a loss: the per-example losses are clipped")
    if isinstance(loss, (dict, list, tuple)):
        raise ValueError("DPModel takes one loss over all outputs (a callable that returns "
                         "per-example values), not one loss per output")
    if isinstance(loss, str):
        loss = tf.keras.losses.get(loss)
    fn = loss.call if isinstance(loss, tf.keras.losses.Loss) else loss
    if not callable(fn):
        raise ValueError(f"loss must be a Keras loss or a callable, got {loss!r}")

    def losses(y_true, y_pred):
        values = tf.cast(fn(y_true, y_pred), tf.float32)
        rank = values.shape.rank
        if rank == 0:
            raise ValueError("the loss returned a scalar: DPModel needs per-example losses "
                             "(an unreduced Keras loss or a callable returning [B] values)")
        if rank is not None and rank > 1:
            values = tf.reduce_mean(values, axis=list(range(1, rank)))
        return values

    return losses


def _check_whole_step(data) -> None:
    for item in data:
        if isinstance(item, dict) and "num_chunks" in item:
            tf.debugging.assert_equal(
                tf.cast(item["num_chunks"], tf.int64), tf.constant(1, tf.int64),
                message="a Poisson step arrived in several chunks; one dataset element must be "
                        "one whole step (raise the sampler's max_batch_size)")


def _batch_entries(item):
    """A dict element without its rank-0 entries (step counters); anything else unchanged."""
    if isinstance(item, dict):
        return {k: v for k, v in item.items() if tf.convert_to_tensor(v).shape.rank != 0}
    return item


def _checked_mask(mask) -> tf.Tensor:
    mask = tf.cast(tf.reshape(mask, [-1]), tf.float32)
    tf.debugging.assert_equal(mask * (1.0 - mask), tf.zeros_like(mask),
                              message="sample_weight / the mask must be 0/1 (padding only)")
    return mask


# --------------------------------------------------------------------------- the model
@tf.keras.utils.register_keras_serializable(package="tfdphpe")
class DPModel(tf.keras.Model):
    """Wraps a Keras model so that ``fit`` takes DP steps with its tfdphpe DP optimizer.

    Args:
      model: the Keras model; its layers own the trainable variables (for clipping="ghost" they
        must be layers ghost supports, see ``tfdphpe.privacy.ghost``).
      public_data: pdpsgd only: S_pub as an ``(x, y)`` batch of public examples (the same structure
        as the training elements, no mask). The subspace is recomputed from it inside the step
        whenever it is due (first step, then every ``refresh_every`` steps). Not saved by
        ``get_config``: pass it again when loading.
      mask_key: the key of the 0/1 padding mask in a dict ``x`` (when no sample_weight is given).
      allow_non_private: accept a method "none" optimizer (plain training, no guarantee).
      training: the ``training`` argument of the model's call in the step (Dropout and the
        like). BatchNorm layers must be frozen (tfdphpe.models.freeze_batchnorm) or
        non-trainable either way: their batch statistics mix examples and would be learnt from
        private data; the step refuses them.

    The step's logged ``loss`` is the masked mean per-example loss and the compiled metrics are
    computed on the private batch: neither is differentially private if logged or acted on
    (only the weights are). With clipping="ghost" they come from the step's own forward pass;
    with "vectorized" (per-example forward passes) from one more forward pass. Record the steps
    with ``PrivacyLedgerCallback``. ``steps_per_execution`` must be 1 (the callback checks).
    """

    def __init__(self, model: tf.keras.Model, public_data: Any = None, mask_key: str = "mask",
                 allow_non_private: bool = False, training: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.inner = model
        self.mask_key = mask_key
        self.allow_non_private = bool(allow_non_private)
        self.training_call = bool(training)
        self.public_data = (None if public_data is None else
                            tf.nest.map_structure(tf.convert_to_tensor, tuple(public_data)))
        self._per_example_loss = None
        self._has_metrics = False
        self._loss_tracker = tf.keras.metrics.Mean(name="loss")

    def call(self, inputs, training=None):
        return self.inner(inputs, training=training)

    def compile(self, optimizer="rmsprop", loss=None, metrics=None, **kwargs):
        """Keras compile; ``optimizer`` must be a tfdphpe DP optimizer, ``loss`` per-example."""
        check_dp_optimizer(optimizer, self.allow_non_private)
        if optimizer.method.projected and self.public_data is None:
            raise ValueError(f"method {optimizer.method.value!r} projects onto a public subspace: "
                             "pass DPModel(model, public_data=(x_pub, y_pub)), S_pub (public "
                             "examples only)")
        if not optimizer.method.projected and self.public_data is not None:
            raise ValueError(f"public_data is only used by pdpsgd, not {optimizer.method.value!r}")
        if kwargs.get("steps_per_execution", 1) != 1:
            raise ValueError("steps_per_execution must be 1: each step is recorded in the "
                             "privacy ledger before it runs")
        self._per_example_loss = per_example_loss(loss)
        self._has_metrics = bool(metrics or kwargs.get("weighted_metrics"))
        # Keras's own loss container stays empty: it would reduce the losses before clipping.
        super().compile(optimizer=optimizer, loss=None, metrics=metrics, **kwargs)
        self.loss = loss

    @property
    def metrics(self):
        return [self._loss_tracker] + super().metrics

    def _split(self, data):
        """(x, y, mask or None) of one element, without rank-0 entries."""
        _check_whole_step(data if isinstance(data, tuple) else (data,))
        x, y, mask = tf.keras.utils.unpack_x_y_sample_weight(data)
        if mask is None and isinstance(x, dict) and self.mask_key in x:
            mask = x[self.mask_key]
            x = {k: v for k, v in x.items() if k != self.mask_key}
        return (_batch_entries(x), _batch_entries(y),
                None if mask is None else _checked_mask(mask))

    def _check_private_step(self):
        live = live_batchnorm_layers(self.inner)
        if live and self.optimizer.method.private:
            raise ValueError(f"BatchNorm layers {live[:5]} would normalise with (and learn) batch "
                             "statistics of private data, mixing examples: freeze them "
                             "(tfdphpe.models.freeze_batchnorm) or set trainable=False")

    def train_step(self, data):
        x, y, mask = self._split(data)
        opt = self.optimizer
        self._check_private_step()
        var_list = self.trainable_variables
        layers = self if opt.clipping == "ghost" else None
        # Per-example forward passes (vectorized_map) cannot hand their outputs out of the loop.
        reuse = not (opt.method.private and opt.clipping == "vectorized")
        seen = []

        def forward(batch):
            outputs = self(batch[0], training=self.training_call)
            return outputs, self._per_example_loss(batch[1], outputs)

        def loss_fn(batch):
            outputs, losses = forward(batch)
            if reuse and not seen:
                seen.append((outputs, losses))
            return losses

        if opt.method.projected:
            self._refresh_subspace_if_due(lambda batch: forward(batch)[1], var_list, layers)
        grads = opt.dp_gradients(loss_fn, (x, y), var_list, batch_mask=mask, layers=layers)
        opt.apply_if_finite(grads, var_list)
        outputs, losses = seen[0] if seen else forward((x, y))
        return self._logs(y, outputs, losses, mask)

    def test_step(self, data):
        x, y, mask = self._split(data)
        outputs = self(x, training=False)
        return self._logs(y, outputs, self._per_example_loss(y, outputs), mask)

    def _logs(self, y, outputs, losses, mask):
        self._loss_tracker.update_state(losses, sample_weight=mask)
        if self._has_metrics:   # (Keras's container fails on dict outputs even with no metrics)
            self.compiled_metrics.update_state(y, outputs, sample_weight=mask)
        return {m.name: m.result() for m in self.metrics}

    def _refresh_subspace_if_due(self, loss_fn, var_list, layers) -> None:
        """V from S_pub at the current weights on the first step and every R steps (in-graph)."""
        context = tf.distribute.get_replica_context()
        if context is not None and context.num_replicas_in_sync > 1:
            raise ValueError("pdpsgd under a multi-replica strategy is not supported by DPModel "
                             "(the subspace refresh runs in the replica context); use "
                             "tfdphpe.training")
        opt = self.optimizer
        opt.subspace.build(var_list)
        due = tf.logical_or(tf.equal(opt.subspace.refreshes, 0),
                            tf.equal(opt.iterations % opt.refresh_every, 0))

        def refresh():
            opt.refresh_subspace(loss_fn, self.public_data, var_list, layers=layers)
            return tf.constant(True)

        tf.cond(due, refresh, lambda: tf.constant(False))

    def get_config(self):
        # public_data (tensors) is not configuration; pass it again to from_config.
        return {**super().get_config(), "model": tf.keras.layers.serialize(self.inner),
                "mask_key": self.mask_key, "allow_non_private": self.allow_non_private,
                "training": self.training_call}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        model = tf.keras.layers.deserialize(config.pop("model"), custom_objects=custom_objects)
        return cls(model, **config)
