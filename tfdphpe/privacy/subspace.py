"""The public gradient subspace of Projected DP-SGD (Zhou, Wu, Banerjee, ICLR 2021; DESIGN 2.3).

From the per-example gradients G = [g_1 ... g_m] (p x m) of the m public examples in S_pub, the
top-k eigenvectors of M = G G^T / m are the top-k left singular vectors of G. We never form the
p x p matrix: the m x m Gram matrix K = G^T G = U diag(lambda) U^T gives
V = G U_k diag(lambda_k)^-1/2.
V is stored per variable, as tensors of shape [k, *var.shape], so the projection
V V^T g = sum_j <v_j, g> v_j works variable by variable without flattening the model.

Memory (p trainable parameters, m public examples, k directions, b bytes per stored value:
4 for float32, 2 for bfloat16/float16):

* V, kept for the whole run: p * k * b.  5m pose model at 256x192, all weights (p = 5,120,164),
  k = 50: 1.02 GB float32, 0.51 GB bfloat16 (``finetune``, p = 2,686,244: 0.54 / 0.27 GB).
* G, alive only during a refresh: p * m * b.  Same model, m = 100: 2.05 GB float32, 1.02 GB
  bfloat16 (``finetune``: 1.07 / 0.54 GB).
* Activations of the per-example backward pass: those of ``chunk_size`` examples at a time instead
  of m (chunks are computed one after the other).
* Transient float32 copies of one variable's slice of G (the Gram matrix is accumulated in
  float32, one variable at a time), plus O(m^2) for the eigendecomposition.

The lower-memory mode is ``storage_dtype=tf.bfloat16`` (halves G and V) together with a
``chunk_size`` (bounds activations). Reduced precision perturbs V slightly; V is re-orthonormalised
in float32 before it is stored, and a projection is computed in float32.

Only the public batch given to ``compute_basis`` enters V: private data never does, which is why
the projection is post-processing and costs no privacy.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import tensorflow as tf

from tfdphpe.privacy.per_example import LossFn, Tensors, Variables, per_example_gradients

# Directions whose eigenvalue is below this fraction of the largest are numerically zero
# (rank-deficient S_pub, e.g. k > rank(G)): they get a zero row in V, not amplified round-off.
_RELATIVE_EIGENVALUE_FLOOR = 1e-10


def _flat(t: tf.Tensor, rows: int) -> tf.Tensor:
    return tf.reshape(t, [rows, -1])


def _split_batch(batch: Any, chunk_size: Optional[int]) -> list[Any]:
    first = tf.nest.flatten(batch)[0]
    m = first.shape[0]
    if chunk_size is None or m is None or chunk_size >= m:
        return [batch]
    return [tf.nest.map_structure(lambda t: t[start:start + chunk_size], batch)
            for start in range(0, m, chunk_size)]


def public_gradients(loss_fn: LossFn, public_batch: Any, var_list: Variables,
                     storage_dtype: tf.DType = tf.float32,
                     chunk_size: Optional[int] = None,
                     per_example_fn=per_example_gradients) -> Tensors:
    """Per-example gradients of the public examples: [m, *var.shape] per variable, storage_dtype.

    ``per_example_fn(loss_fn, batch, var_list)`` forms them (vectorized by default; the
    optimizer passes the ghost path's layer rules when it clips that way).

    Chunks run one after the other (control dependencies), so in graph mode only one chunk's
    activations are alive at a time; they share one traced (vectorized) function.
    """
    var_list = list(var_list)

    def chunk_gradients(chunk):
        return [tf.cast(g, storage_dtype) for g in per_example_fn(loss_fn, chunk, var_list)]

    chunks = _split_batch(public_batch, chunk_size)
    if len(chunks) == 1:
        return chunk_gradients(public_batch)
    traced = tf.function(chunk_gradients)   # one trace (one vectorization) for all chunks
    pieces: list[list[tf.Tensor]] = []
    previous: list[tf.Tensor] = []
    for chunk in chunks:
        with tf.control_dependencies(previous):
            chunk = tf.nest.map_structure(tf.identity, chunk)
            grads = traced(chunk)
        pieces.append(grads)
        previous = grads
    return [tf.concat(parts, axis=0) for parts in zip(*pieces)]


def gram_matrix(rows: Sequence[tf.Tensor]) -> tf.Tensor:
    """sum_v R_v R_v^T in float32 for per-variable row blocks R_v of shape [n, *var.shape]."""
    n = tf.shape(rows[0])[0]
    total = None
    for r in rows:
        flat = tf.cast(_flat(r, n), tf.float32)
        part = tf.matmul(flat, flat, transpose_b=True)
        total = part if total is None else total + part
    return total


def _inverse_sqrt_psd(matrix: tf.Tensor, floor: float) -> tf.Tensor:
    """Symmetric S^-1/2 of a PSD matrix, with zero on its (numerically) null space."""
    values, vectors = tf.linalg.eigh(tf.cast(matrix, tf.float64))
    keep = values > floor * tf.reduce_max(values)
    return tf.matmul(vectors * _safe_rsqrt(values, keep)[tf.newaxis, :], vectors, transpose_b=True)


def _safe_rsqrt(values: tf.Tensor, keep: tf.Tensor) -> tf.Tensor:
    """values^-1/2 where keep, else 0 (no inf/NaN, also in the unused branch)."""
    return tf.where(keep, tf.math.rsqrt(tf.where(keep, values, tf.ones_like(values))),
                    tf.zeros_like(values))


def basis_from_gradients(grads: Sequence[tf.Tensor], dim: int,
                         storage_dtype: tf.DType = tf.float32):
    """Top-``dim`` left singular vectors of G from per-example gradients (rows) via the Gram matrix.

    Returns:
      ``(basis, eigenvalues, rank)``: basis is a list of [dim, *var.shape] tensors (rows
      orthonormal over all variables together; rows beyond ``rank`` are zero), eigenvalues are the
      top ``dim`` eigenvalues of G^T G (float32), rank the number of non-zero rows.
    """
    m = grads[0].shape[0]
    if m is not None and dim > m:
        raise ValueError(f"projection_dim={dim} exceeds the number of public examples m={m}; "
                         "the subspace of m gradients has at most m directions")
    m_dyn = tf.shape(grads[0])[0]
    values, vectors = tf.linalg.eigh(tf.cast(gram_matrix(grads), tf.float64))
    values = tf.reverse(values, [0])[:dim]          # eigh sorts ascending
    vectors = tf.reverse(vectors, [1])[:, :dim]     # [m, dim]
    keep = values > _RELATIVE_EIGENVALUE_FLOOR * tf.maximum(values[0], 0.0)
    mix = tf.cast(tf.transpose(vectors * _safe_rsqrt(values, keep)[tf.newaxis, :]),
                  tf.float32)   # [dim, m]
    basis = [tf.reshape(tf.matmul(mix, tf.cast(_flat(g, m_dyn), tf.float32)),
                        tf.concat([[dim], tf.shape(g)[1:]], 0)) for g in grads]
    # One re-orthonormalisation (V <- (V V^T)^-1/2 V) absorbs the float32/bfloat16 round-off of
    # the Gram route; it keeps the span and is the identity when V is already orthonormal.
    fix = tf.cast(_inverse_sqrt_psd(gram_matrix(basis), 1e-6), tf.float32)
    basis = [tf.reshape(tf.matmul(fix, _flat(b, dim)), tf.shape(b)) for b in basis]
    basis = [tf.cast(b, storage_dtype) for b in basis]
    rank = tf.reduce_sum(tf.cast(keep, tf.int32))
    return basis, tf.cast(values, tf.float32), rank


def project(basis: Sequence[tf.Tensor], grads: Sequence[tf.Tensor]) -> Tensors:
    """V V^T g for a gradient g given per variable; computed in float32."""
    dim = tf.shape(basis[0])[0]
    rows = [tf.cast(_flat(v, dim), tf.float32) for v in basis]
    coefficients = tf.add_n([tf.linalg.matvec(r, tf.reshape(tf.cast(g, tf.float32), [-1]))
                             for r, g in zip(rows, grads)])                     # V^T g, [dim]
    return [tf.cast(tf.reshape(tf.linalg.matvec(r, coefficients, transpose_a=True), tf.shape(g)),
                    g.dtype) for r, g in zip(rows, grads)]


class PublicSubspace(tf.Module):
    """Holds V (as non-trainable variables) and refreshes it from S_pub.

    Args:
      dim: k, the number of directions (50 in the papers).
      storage_dtype: dtype V and the public gradients are stored in (float32, bfloat16, float16).
      chunk_size: public examples per vectorized pass during a refresh (None: all at once).
    """

    def __init__(self, dim: int = 50, storage_dtype: tf.DType = tf.float32,
                 chunk_size: Optional[int] = None, name: str = "public_subspace"):
        super().__init__(name=name)
        if dim < 1:
            raise ValueError(f"projection dim must be >= 1, got {dim}")
        if chunk_size is not None and chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1 or None, got {chunk_size}")
        self.dim = int(dim)
        self.storage_dtype = tf.as_dtype(storage_dtype)
        self.chunk_size = chunk_size
        self.basis: Optional[list[tf.Variable]] = None
        self.eigenvalues: Optional[tf.Variable] = None
        self.rank: Optional[tf.Variable] = None
        self.refreshes: Optional[tf.Variable] = None

    @property
    def built(self) -> bool:
        return self.basis is not None

    def build(self, var_list: Variables) -> None:
        """Creates the (zero) storage for V; done outside any tf.function graph."""
        if self.built:
            if len(self.basis) != len(var_list) or any(
                    b.shape[1:] != v.shape for b, v in zip(self.basis, var_list)):
                raise ValueError("the subspace was built for a different var_list")
            return
        with tf.init_scope():
            self.basis = [tf.Variable(tf.zeros([self.dim, *v.shape], self.storage_dtype),
                                      trainable=False, name=f"basis_{i}")
                          for i, v in enumerate(var_list)]
            self.eigenvalues = tf.Variable(tf.zeros([self.dim]), trainable=False,
                                           name="eigenvalues")
            self.rank = tf.Variable(0, trainable=False, name="rank")
            self.refreshes = tf.Variable(0, dtype=tf.int64, trainable=False, name="refreshes")

    def refresh(self, loss_fn: LossFn, public_batch: Any, var_list: Variables,
                per_example_fn=per_example_gradients) -> tf.Tensor:
        """Recomputes V from the public batch alone, at the current weights; returns its rank."""
        var_list = list(var_list)
        self.build(var_list)
        grads = public_gradients(loss_fn, public_batch, var_list, self.storage_dtype,
                                 self.chunk_size, per_example_fn)
        basis, values, rank = basis_from_gradients(grads, self.dim, self.storage_dtype)
        updates = [b.assign(n) for b, n in zip(self.basis, basis)]
        updates += [self.eigenvalues.assign(values), self.rank.assign(rank),
                    self.refreshes.assign_add(1)]
        with tf.control_dependencies(updates):
            return tf.identity(rank)

    def project(self, grads: Sequence[tf.Tensor]) -> Tensors:
        if not self.built:
            raise RuntimeError("the public subspace has not been computed: "
                               "call refresh_subspace first")
        return project(self.basis, grads)

    def num_bytes(self) -> int:
        """Bytes held by V."""
        if not self.built:
            return 0
        return sum(int(b.shape.num_elements()) * self.storage_dtype.size for b in self.basis)
