"""DP optimizers: TF-Privacy's Keras DP optimizers with vectorized per-example gradients.

One class per base optimizer (``DPSGDOptimizer``, ``DPAdamOptimizer``), each a subclass of
TF-Privacy's ``GenericDPSGDOptimizer`` / ``GenericDPAdamOptimizer`` with a Gaussian sum query.
The privacy method is a constructor argument (``Method``); the mechanisms it combines are small
pieces in ``mechanisms.py`` (clipped per-example terms), ``noise.py`` (the query) and
``subspace.py`` (the public subspace).

Step (B = expected batch size, C = clip norm, sigma = noise multiplier, S the private batch):

    none    plain gradient of sum_{i in S} l_i, divided by B (no clipping, no noise)
    dpsgd   (sum_{i in S} clip(g_i) + N(0, sigma^2 C^2 I)) / B
    pdpsgd  V V^T (sum_{i in S} clip(g_i) + N) / B
    fdp     (sum_{j in S'} pub_j + sum_{i in S} clip(diff_i) + N) / B
    fpdp    (sum_{j in S'} pub_j + V V^T (sum_{i in S} clip(diff_i) + N)) / B

with diff_i = grad[l(x_i) - l(psi(x_i))] and pub_j = grad l(psi(x_j)). S' is the public batch: by
default (``public_term="independent"``) a batch of public views sampled independently of S, so
the update does not reveal which examples S holds and amplification by subsampling still holds;
with ``public_term="same_batch"`` (the papers' reading) S' = S, the unclipped public sum can reveal
S, and the accountant must drop amplification (``sampling_revealed``; see docs/privacy.md).

Distribution (DESIGN 3b): call ``dp_gradients`` inside ``strategy.run``. Each replica clips its
own examples; the clipped sums (and public sums) are all-reduced; every replica then adds the same
noise (a stateless draw keyed by the secret noise key and the step), so the global sum is noised
exactly once; the result is already global, and ``apply_gradients`` then skips Keras's own
gradient all-reduce.
"""

from __future__ import annotations

import functools
from typing import Any, Optional, Sequence

import dp_accounting
import tensorflow as tf
from tensorflow_privacy.privacy.optimizers import dp_optimizer_keras

from tfdphpe.privacy import ghost, mechanisms, noise, per_example
from tfdphpe.privacy.method import Method
from tfdphpe.privacy.per_example import LossFn
from tfdphpe.privacy.subspace import PublicSubspace


PUBLIC_TERMS = ("independent", "same_batch")
CLIPPING = ("vectorized", "ghost")


class _Untracked:
    """Holds a variable out of sight of checkpoint tracking (see ``noise_key``)."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value


def _all_reduce_sum(tensors: list):
    """Sums over replicas when called in a replica context of a multi-replica strategy."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return tensors
    return context.all_reduce(tf.distribute.ReduceOp.SUM, tensors)


def make_dp_optimizer_class(generic_cls):
    """Subclass of a TF-Privacy generic DP optimizer class with the fast per-example path."""

    class DPOptimizer(generic_cls):  # pylint: disable=missing-class-docstring
        def __init__(self, l2_norm_clip: float, noise_multiplier: float,
                     expected_batch_size: Optional[int] = None,
                     method: Method | str = Method.DPSGD, projection_dim: int = 50,
                     refresh_every: int = 1, seed: Optional[int] = None,
                     subspace_dtype: tf.DType = tf.float32,
                     subspace_chunk_size: Optional[int] = None,
                     public_term: str = "independent", clipping: str = "vectorized",
                     loss_scale: float = 1.0, **kwargs):
            method = Method(method)
            if not loss_scale > 0:
                raise ValueError(f"loss_scale must be > 0, got {loss_scale}")
            if public_term not in PUBLIC_TERMS:
                raise ValueError(f"public_term must be one of {PUBLIC_TERMS}, got {public_term!r}")
            if clipping not in CLIPPING:
                raise ValueError(f"clipping must be one of {CLIPPING}, got {clipping!r}")
            _validate(method, l2_norm_clip, noise_multiplier, expected_batch_size, refresh_every)
            if kwargs.pop("gradient_accumulation_steps", 1) != 1:
                raise ValueError("gradient_accumulation_steps is not supported: it changes the "
                                 "accounting; use a larger expected_batch_size instead")
            kwargs.pop("num_microbatches", None)
            if not method.private:   # the query is unused, but must exist for the parent class
                l2_norm_clip, noise_multiplier = l2_norm_clip or 1.0, 0.0
            query = noise.KeyedGaussianSumQuery(float(l2_norm_clip),
                                                float(l2_norm_clip) * float(noise_multiplier))
            # num_microbatches=None: one example per microbatch (the stock path, too).
            super().__init__(dp_sum_query=query, num_microbatches=None, **kwargs)
            self._method = method
            self._l2_norm_clip = float(l2_norm_clip)
            self._noise_multiplier = float(noise_multiplier)
            self._expected_batch_size = (None if expected_batch_size is None
                                         else int(expected_batch_size))
            self._noise_key = noise.noise_key_from_seed(seed)
            self._noise_key_variable = None
            self._noise_key_secret = seed is None
            self._seed = seed
            self._refresh_every = int(refresh_every)
            self._public_term = public_term
            self._clipping = clipping
            self._loss_scale = float(loss_scale)
            self._subspace = (PublicSubspace(projection_dim, subspace_dtype, subspace_chunk_size)
                              if method.projected else None)
            self._refresh_functions: dict = {}
            self._gradients_are_global = False
            self._noise_draws = None

        # ----------------------------------------------------------------- description
        method = property(lambda self: self._method)
        l2_norm_clip = property(lambda self: self._l2_norm_clip)
        noise_multiplier = property(lambda self: self._noise_multiplier)
        expected_batch_size = property(lambda self: self._expected_batch_size)
        refresh_every = property(lambda self: self._refresh_every)
        subspace = property(lambda self: self._subspace)
        noise_key_secret = property(lambda self: self._noise_key_secret,
                                    doc="False when the noise was seeded (reproducible) by a seed.")
        public_term = property(lambda self: self._public_term)
        clipping = property(lambda self: self._clipping,
                            doc="How per-example clipping is computed: 'vectorized' or 'ghost'.")
        loss_scale = property(lambda self: self._loss_scale,
                              doc="Static loss scale S for float16 compute (1: none).")

        @property
        def sampling_revealed(self) -> bool:
            """True if the update can reveal the sampled batch (fdp/fpdp, same-batch public)."""
            return self._method.feature_dp and self._public_term == "same_batch"

        def dp_event(self) -> dp_accounting.DpEvent:
            """The DpEvent of one step before sampling, reported by the noise query itself."""
            if not self._method.private:
                return dp_accounting.NonPrivateDpEvent()
            return self._dp_sum_query.dp_event()

        def step_dp_event(self, sampling_probability: float) -> dp_accounting.DpEvent:
            """The DpEvent of one step under Poisson sampling with probability q."""
            if not self._method.private:
                return dp_accounting.NonPrivateDpEvent()
            return dp_accounting.PoissonSampledDpEvent(sampling_probability, self.dp_event())

        @property
        def noise_draws(self) -> tf.Variable:
            """How many noise vectors this optimizer has drawn: the counter its noise is keyed by.

            Not the step counter: a second dp_gradients call in one step (for logging, a retry)
            must get fresh noise, or two releases would share one noise vector.
            """
            if self._noise_draws is None:
                with self._distribution_strategy_scope():
                    self._noise_draws = self.add_weight(
                        "noise_draws", shape=[], dtype=tf.int64, trainable=False,
                        aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
            return self._noise_draws

        @property
        def noise_key(self) -> tf.Variable:
            """The secret key of the noise generator, as an int64 [2] variable.

            Created in the distribution strategy's scope, so every replica holds the same key:
            MultiWorkerMirroredStrategy gives every worker the chief's initial value, so the
            processes of a multi-worker run, each of which drew its own random key, all noise with
            the chief's. Never saved: the optimizer does not track it (tf.train.Checkpoint saves
            only tracked variables), because with the key and the updates anyone could subtract
            the noise; a resumed run draws a fresh key, and the draw counter keeps going.
            """
            if self._noise_key_variable is None:
                with tf.init_scope(), self._distribution_strategy_scope():
                    self._noise_key_variable = _Untracked(tf.Variable(
                        tf.constant(self._noise_key, tf.int64), trainable=False,
                        name="noise_key", aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA))
            return self._noise_key_variable.value

        @property
        def non_finite_records(self) -> tf.Variable:
            """How many sampled records had a non-finite norm and were left out of the sum.

            A diagnostic computed on private data: log it as such (not covered by the
            guarantee), never publish it with the model. Each such record contributed 0
            (``mechanisms.clip_scales``), so the sensitivity is still C.
            """
            return self._counter("_non_finite_records", "non_finite_records")

        @property
        def skipped_updates(self) -> tf.Variable:
            """Steps whose update was not finite and was not applied (``apply_if_finite``)."""
            return self._counter("_skipped_updates", "skipped_updates")

        def _counter(self, attribute: str, name: str) -> tf.Variable:
            if getattr(self, attribute, None) is None:
                with self._distribution_strategy_scope():
                    setattr(self, attribute, self.add_weight(
                        name, shape=[], dtype=tf.int64, trainable=False,
                        aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA))
            return getattr(self, attribute)

        def apply_if_finite(self, grads: Sequence[tf.Tensor],
                            var_list: Sequence[tf.Variable]) -> tf.Tensor:
            """``apply_gradients`` unless the update is not finite; returns whether it applied.

            With the private records' non-finite values left out (``clip_scales``), only public
            quantities (the public term, the subspace) can make the update non-finite, so the
            decision reveals nothing private. A skipped step is counted in ``skipped_updates``
            (record it in the ledger). Under a strategy with several replicas a condition
            around ``apply_gradients`` cannot run in the replica context: there the update is
            zeroed instead (an optimizer with momentum then still moves by its momentum); the
            trainer applies in the cross-replica context and skips exactly.
            """
            grads, var_list = list(grads), list(var_list)
            finite = update_is_finite(grads)
            skipped = self.skipped_updates
            context = tf.distribute.get_replica_context()
            if context is not None and context.num_replicas_in_sync > 1:
                grads = [tf.where(finite, g, tf.zeros([], g.dtype)) for g in grads]
                self.apply_gradients(zip(grads, var_list))
                skipped.assign_add(tf.cast(tf.logical_not(finite), tf.int64))
                return finite

            def apply():
                self.apply_gradients(zip(grads, var_list))
                return tf.constant(True)

            def skip():
                skipped.assign_add(1)
                return tf.constant(False)

            return tf.cond(finite, apply, skip)

        def create_variables(self, var_list: Sequence[tf.Variable]) -> None:
            """Creates counters and slots now (e.g. in a strategy scope, before strategy.run)."""
            _ = (self.iterations, self.noise_draws, self.noise_key, self.non_finite_records,
                 self.skipped_updates)
            self._create_all_weights(list(var_list))

        # ----------------------------------------------------------------- gradients
        def dp_gradients(self, loss_fn: LossFn, batch: Any, var_list: Sequence[tf.Variable],
                         public_loss_fn: Optional[LossFn] = None,
                         batch_mask: Optional[tf.Tensor] = None,
                         public_batch: Any = None,
                         public_batch_mask: Optional[tf.Tensor] = None,
                         layers: Optional[tf.keras.layers.Layer] = None,
                         examples_per_unit: Optional[int] = None) -> list[tf.Tensor]:
            """The update direction of one step for ``var_list`` (see the module docstring).

            Args:
              loss_fn: batch -> per-example losses [B] (on the private input).
              batch: nest of tensors with leading dimension B (the local batch on a replica).
              var_list: the trainable variables.
              public_loss_fn: fdp/fpdp only: batch -> per-example losses on the public view psi(x).
              batch_mask: optional [B] 0/1 tensor; examples with 0 are padding and contribute
                nothing (static shapes for Poisson batches). An all-zero mask gives noise only.
                Padding must have a finite loss for "none" and for the public term (a masked NaN
                still poisons an ordinary backward pass); the clipped private term ignores it.
              public_batch: fdp/fpdp with ``public_term="independent"``: a batch of public views
                (what public_loss_fn reads), sampled independently of ``batch``.
              public_batch_mask: optional 0/1 mask of ``public_batch``.
              layers: clipping="ghost" only: the Keras model whose layers own ``var_list`` and
                which ``loss_fn`` runs (its calls are recorded, see ``ghost``).
              examples_per_unit: unit-level DP: the batch holds units of k consecutive example
                slots (``tfdphpe.privacy.sampling``); a unit's record is the mean of its real
                examples' gradients, clipped to C as one record, and expected_batch_size counts
                units. The public term of Feature DP is then over units of public views too.
            """
            var_list = list(var_list)
            self._was_dp_gradients_called = True
            self._gradients_are_global = True
            loss_fn, public_loss_fn, unscale = self._scaled(loss_fn, public_loss_fn)
            k = examples_per_unit
            if not self._method.private:
                return unscale(self._plain_gradients(loss_fn, batch, var_list, batch_mask, k))
            public_source = self._check_public_inputs(public_loss_fn, public_batch)
            if self._method.projected and not self._subspace.built:
                raise RuntimeError("call refresh_subspace(loss_fn, public_batch, var_list) "
                                   "before the first projected step")
            # With a loss scale S every record is S times the true one: clipping it to S * C and
            # dividing the sum by S gives exactly the clipped sum of the true records.
            clip = self._dp_sum_query.derive_sample_params(self._global_state) * self._loss_scale
            if self._clipping == "ghost":
                if layers is None:
                    raise ValueError("clipping='ghost' needs layers=<the Keras model> in "
                                     "dp_gradients: the per-example norms come from its layers")
                private_sum, norms = ghost.ghost_clipped_sum(
                    clip, loss_fn, batch, var_list, layers, public_loss_fn, batch_mask,
                    return_norms=True, examples_per_unit=k)
            else:
                private_sum, norms = mechanisms.clipped_sum(
                    clip, loss_fn, batch, var_list, public_loss_fn, batch_mask, return_norms=True,
                    examples_per_unit=k)
            dropped = _dropped_records(norms, per_example.record_mask(batch_mask, k))
            public_sum = None
            if public_source is not None:
                if public_source == "same_batch":
                    public_batch, public_batch_mask = batch, batch_mask
                public_sum = per_example.batch_gradient(public_loss_fn, public_batch, var_list,
                                                        public_batch_mask, k)
                private_sum, public_sum, dropped = _all_reduce_sum(
                    [private_sum, public_sum, dropped])
                public_sum = unscale(public_sum)
            else:
                private_sum, dropped = _all_reduce_sum([private_sum, dropped])
            self.non_finite_records.assign_add(tf.cast(dropped, tf.int64))
            noised = self.add_noise(unscale(private_sum))
            if self._method.projected:
                noised = self._subspace.project(noised)
            if public_sum is not None:
                noised = [n + p for n, p in zip(noised, public_sum)]
            scale = 1.0 / float(self._expected_batch_size)
            return [g * tf.cast(scale, g.dtype) for g in noised]

        def _scaled(self, loss_fn, public_loss_fn):
            """(loss_fn * S, public_loss_fn * S, division by S) for the static loss scale S.

            Mixed precision: scaling the (float32) loss keeps float16 backward passes clear of
            underflow; the scale is divided out in float32 before the noise, so the noise and
            the update are those of the true clipped sum.
            """
            scale = self._loss_scale
            if scale == 1.0:
                return loss_fn, public_loss_fn, lambda grads: grads

            def scaled(fn):
                return None if fn is None else (lambda b: fn(b) * tf.cast(scale, tf.float32))

            def unscale(grads):
                return [g / tf.cast(scale, g.dtype) for g in grads]

            return scaled(loss_fn), scaled(public_loss_fn), unscale

        def _check_public_inputs(self, public_loss_fn, public_batch) -> Optional[str]:
            if not self._method.feature_dp:
                if public_loss_fn is not None or public_batch is not None:
                    raise ValueError(f"public_loss_fn/public_batch are only used by fdp/fpdp, "
                                     f"not {self._method.value!r}")
                return None
            if public_loss_fn is None:
                raise ValueError(f"method {self._method.value!r} needs public_loss_fn "
                                 "(the loss on psi(x))")
            if self._public_term == "independent" and public_batch is None:
                raise ValueError(
                    "public_term='independent' needs public_batch: public views sampled "
                    "independently of the private batch (a sum over the private batch itself can "
                    "reveal which examples were sampled); or build the optimizer with "
                    "public_term='same_batch' and account without amplification")
            if self._public_term == "same_batch" and public_batch is not None:
                raise ValueError("public_term='same_batch' takes the public term from `batch`; "
                                 "public_batch must be None")
            return self._public_term

        def add_noise(self, clipped_sum: list[tf.Tensor]) -> list[tf.Tensor]:
            """The query's Gaussian noise N(0, sigma^2 C^2) on a (global) clipped sum.

            Keyed by (secret key, draw counter): the same on every replica, fresh at every call.
            """
            draws = self.noise_draws
            seed = noise.step_noise_seed(self.noise_key.read_value(), draws.read_value())
            with tf.control_dependencies([seed]):
                advanced = draws.assign_add(1, read_value=False)
            noised, _, _ = self._dp_sum_query.get_noised_result(clipped_sum, self._global_state,
                                                                noise_seed=seed)
            with tf.control_dependencies([advanced]):
                return [tf.identity(n) for n in noised]

        def _plain_gradients(self, loss_fn, batch, var_list, batch_mask, k=None):
            grads = per_example.batch_gradient(loss_fn, batch, var_list, batch_mask, k)
            if self._expected_batch_size is not None:
                return [g / float(self._expected_batch_size) for g in _all_reduce_sum(grads)]
            first = tf.nest.flatten(batch)[0]
            mask = per_example.record_mask(batch_mask, k)
            count = (tf.cast(tf.shape(first)[0] // (k or 1), tf.float32) if mask is None
                     else tf.reduce_sum(tf.cast(mask, tf.float32)))
            grads, count = _all_reduce_sum([grads, count])
            return [g / tf.cast(tf.maximum(count, 1.0), g.dtype) for g in grads]

        def stock_dp_gradients(self, loss_fn: LossFn, batch: Any, var_list: Sequence[tf.Variable]):
            """TF-Privacy's own path (jacobian + while loop, divides by the actual batch size).

            dpsgd only; kept as the oracle for tests and the benchmark baseline.
            """
            if self._method is not Method.DPSGD:
                raise ValueError("the stock TF-Privacy path implements dpsgd only")
            self._gradients_are_global = False
            var_list = list(var_list)
            pairs = generic_cls._compute_gradients(self, lambda: loss_fn(batch), var_list,
                                                   tape=tf.GradientTape())
            return [g for g, _ in pairs]

        def _compute_gradients(self, loss, var_list, grad_loss=None, tape=None):
            # Reached through minimize()/Model.fit: only the stock dpsgd path can work from a loss
            # tensor; anything else would silently drop the projection or the public view.
            if self._method is not Method.DPSGD:
                raise NotImplementedError(f"method {self._method.value!r} needs dp_gradients(); "
                                          "minimize()/Model.fit only support the stock dpsgd path")
            self._gradients_are_global = False
            return super()._compute_gradients(loss, var_list, grad_loss=grad_loss, tape=tape)

        def apply_gradients(self, grads_and_vars, name=None,
                            experimental_aggregate_gradients=None, **kwargs):
            aggregate = experimental_aggregate_gradients
            if aggregate is None:
                # dp_gradients already returns the global (all-reduced, noised) gradient.
                aggregate = not self._gradients_are_global
            return super().apply_gradients(grads_and_vars, name=name,
                                           experimental_aggregate_gradients=aggregate, **kwargs)

        # ----------------------------------------------------------------- subspace
        def refresh_subspace(self, loss_fn: LossFn, public_batch: Any,
                             var_list: Sequence[tf.Variable],
                             layers: Optional[tf.keras.layers.Layer] = None):
            """Recomputes V from S_pub (public examples only) at the current weights.

            Call it in the cross-replica context (outside ``strategy.run``). Eagerly it runs a
            tf.function cached per (loss_fn, var_list): pass the same loss_fn object each time.
            With clipping="ghost" and ``layers`` (the model), the public per-example gradients
            come from the ghost path's layer rules instead of tf.vectorized_map.
            """
            if not self._method.projected:
                raise ValueError(f"method {self._method.value!r} has no public subspace")
            var_list = list(var_list)
            self._subspace.build(var_list)
            per_example_fn = per_example.per_example_gradients
            if self._clipping == "ghost" and layers is not None:
                per_example_fn = functools.partial(ghost.per_example_gradients, layers=layers)
            # V is a span: the loss scale (against float16 underflow) does not change it.
            scaled_loss_fn = self._scaled(loss_fn, None)[0]
            if not tf.executing_eagerly():
                return self._subspace.refresh(scaled_loss_fn, public_batch, var_list,
                                              per_example_fn)
            key = (id(loss_fn), tuple(id(v) for v in var_list), id(layers))
            if key not in self._refresh_functions:
                fn = tf.function(lambda b: self._subspace.refresh(scaled_loss_fn, b, var_list,
                                                                  per_example_fn))
                self._refresh_functions[key] = (loss_fn, var_list, fn)   # keeps loss_fn alive
            return self._refresh_functions[key][2](public_batch)

        def subspace_due(self) -> bool:
            """Eager helper: True when V was never computed or the step is a multiple of R."""
            if not self._method.projected:
                return False
            never = (not self._subspace.built) or int(self._subspace.refreshes.numpy()) == 0
            return never or int(self.iterations.numpy()) % self._refresh_every == 0

        def get_config(self):
            config = super().get_config()
            config.update({
                "method": self._method.value, "l2_norm_clip": self._l2_norm_clip,
                "noise_multiplier": self._noise_multiplier,
                "expected_batch_size": self._expected_batch_size,
                "refresh_every": self._refresh_every,
                "projection_dim": None if self._subspace is None else self._subspace.dim,
                "noise_key_secret": self._noise_key_secret, "public_term": self._public_term,
                "clipping": self._clipping, "loss_scale": self._loss_scale,
            })
            return config

    DPOptimizer.__doc__ = (f"DP optimizer over {generic_cls.__mro__[1].__name__} with vectorized "
                           "per-example gradients; see tfdphpe.privacy.optimizers.")
    return DPOptimizer


def update_is_finite(grads: Sequence[tf.Tensor]) -> tf.Tensor:
    """True when every value of the update is finite (a scalar bool tensor)."""
    return tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads])


def _dropped_records(norms: tf.Tensor, batch_mask: Optional[tf.Tensor]) -> tf.Tensor:
    """Sampled records whose norm is not finite (left out of the clipped sum)."""
    bad = tf.logical_not(tf.math.is_finite(norms))
    if batch_mask is not None:
        bad = tf.logical_and(bad, tf.cast(batch_mask, tf.bool))
    return tf.reduce_sum(tf.cast(bad, tf.float32))


def _validate(method: Method, l2_norm_clip, noise_multiplier, expected_batch_size,
              refresh_every) -> None:
    if method.private:
        if not l2_norm_clip or l2_norm_clip <= 0:
            raise ValueError(f"l2_norm_clip must be > 0, got {l2_norm_clip}")
        if noise_multiplier is None or noise_multiplier < 0:
            raise ValueError(f"noise_multiplier must be >= 0, got {noise_multiplier}")
        if expected_batch_size is None or expected_batch_size <= 0:
            raise ValueError("expected_batch_size (> 0) is required for DP methods: the noised sum "
                             "is divided by it, also for variable and empty Poisson batches")
    elif expected_batch_size is not None and expected_batch_size <= 0:
        raise ValueError(f"expected_batch_size must be > 0, got {expected_batch_size}")
    if refresh_every < 1:
        raise ValueError(f"refresh_every must be >= 1, got {refresh_every}")


DPSGDOptimizer = make_dp_optimizer_class(dp_optimizer_keras.GenericDPSGDOptimizer)
DPSGDOptimizer.__name__ = DPSGDOptimizer.__qualname__ = "DPSGDOptimizer"
DPAdamOptimizer = make_dp_optimizer_class(dp_optimizer_keras.GenericDPAdamOptimizer)
DPAdamOptimizer.__name__ = DPAdamOptimizer.__qualname__ = "DPAdamOptimizer"

_BASE_OPTIMIZERS = {"sgd": DPSGDOptimizer, "adam": DPAdamOptimizer}


def make_optimizer(method: Method | str, l2_norm_clip: float, noise_multiplier: float,
                   learning_rate: float, optimizer: str = "sgd",
                   expected_batch_size: Optional[int] = None, projection_dim: int = 50,
                   refresh_every: int = 1, seed: Optional[int] = None,
                   subspace_dtype: tf.DType | str = tf.float32,
                   subspace_chunk_size: Optional[int] = None, public_term: str = "independent",
                   clipping: str = "vectorized", loss_scale: float = 1.0, **optimizer_kwargs):
    """The one entry point: a DP (or, for method "none", plain) Keras optimizer.

    Args:
      method: "none", "dpsgd", "pdpsgd", "fdp" or "fpdp" (or a ``Method``).
      l2_norm_clip: C, the per-example clip norm.
      noise_multiplier: sigma; the noise on the clipped sum has std sigma * C.
      learning_rate: passed to the Keras optimizer.
      optimizer: "sgd" or "adam" (Keras 2 legacy optimizers, as TF-Privacy needs).
      expected_batch_size: B = q * N; the noised sum is divided by it (required for DP methods).
      projection_dim: k, directions of the public subspace (pdpsgd, fpdp).
      refresh_every: R, steps between subspace refreshes (read by ``subspace_due``).
      seed: None (default) draws a secret noise key; an int makes the noise reproducible, which
        also makes it predictable to anyone who knows the seed: use it for experiments only.
      subspace_dtype: storage dtype of V and of the public gradients ("float32", "bfloat16", ...).
      subspace_chunk_size: public examples per vectorized pass during a refresh.
      public_term: fdp/fpdp: "independent" (default; dp_gradients takes a separately sampled
        public_batch, amplification holds) or "same_batch" (the public term from the private batch;
        the ledger then accounts without amplification, see docs/privacy.md).
      clipping: "vectorized" (per-example gradients by tf.vectorized_map; any model) or "ghost"
        (per-example norms from each layer's inputs and output gradients, no per-example
        gradients of the whole model; needs ``layers=`` in dp_gradients, see ``ghost``). Same
        update, different cost.
      loss_scale: static loss scale S for float16 compute (mixed precision): the losses are
        multiplied by S before the backward pass and the sums divided by S (in float32) before
        the noise; the clip and the update are unchanged. 1 (default) for float32 models.
      **optimizer_kwargs: further Keras optimizer arguments (momentum, beta_1, ...).
    """
    try:
        cls = _BASE_OPTIMIZERS[optimizer.lower()]
    except KeyError:
        raise ValueError(f"optimizer must be one of {sorted(_BASE_OPTIMIZERS)}, "
                         f"got {optimizer!r}") from None
    return cls(l2_norm_clip=l2_norm_clip, noise_multiplier=noise_multiplier,
               expected_batch_size=expected_batch_size, method=Method(method),
               projection_dim=projection_dim, refresh_every=refresh_every, seed=seed,
               subspace_dtype=tf.as_dtype(subspace_dtype), subspace_chunk_size=subspace_chunk_size,
               public_term=public_term, clipping=clipping, loss_scale=loss_scale,
               learning_rate=learning_rate, **optimizer_kwargs)
