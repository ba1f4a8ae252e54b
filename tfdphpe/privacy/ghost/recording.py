"""Recording the calls of a model's layers: inputs, outputs, and what the rules need to know.

Within ``record_calls(layers)`` every call of those layers by this thread is logged (its
arguments, its output, the ``training`` flag, and, for layers whose rule asks, the graph ops the
call created). A layer whose rule needs the gradient *before* a fused activation
(``Dense(..., activation="gelu")``) is recorded with the activation applied outside its own
``call``: the recorded output is the pre-activation z, and the activation is applied to it at
once, so the model computes exactly what it did.

MirroredStrategy traces each replica's step in its own thread, all calling the same layer
objects: a layer's ``call`` is wrapped once (reference-counted across threads), and each call is
logged to the recording of the thread that makes it.

Tests: tests/privacy/test_ghost.py.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from typing import Any, Callable, Optional, Sequence

import tensorflow as tf

_RECORDING = threading.local()
_PATCH_LOCK = threading.Lock()
_PATCHED: dict[int, list] = {}     # id(layer) -> [layer, open recordings, original activation]


class Call:
    """One recorded call of a layer.

    ``inputs``: the first argument; ``args``/``kwargs``: all of them (a fallback rule calls the
    layer again); ``outputs``: what the call returned (the pre-activation z for a layer recorded
    with its activation outside); ``ops``: names and types of the graph ops the call created
    (only for layers whose rule asks, and only when tracing); ``public``: made while computing
    the loss on the public view psi(x) (Feature DP); ``graph``: the graph it was traced in.
    """

    __slots__ = ("inputs", "args", "kwargs", "outputs", "training", "ops", "public", "graph")

    def __init__(self, inputs, outputs, training=None, ops=None, public=False, args=(),
                 kwargs=None, graph=None):
        self.inputs, self.outputs, self.training, self.ops = inputs, outputs, training, ops
        self.public, self.args, self.kwargs, self.graph = public, args, kwargs or {}, graph


def graph_ops() -> Optional[list]:
    """The ops of the graph being traced, in creation order (None when executing eagerly)."""
    if tf.executing_eagerly():
        return None
    return tf.compat.v1.get_default_graph().get_operations()


def _wrapper(layer, original, track_ops: bool):
    @functools.wraps(original)
    def wrapper(*args, **kwargs):
        log = getattr(_RECORDING, "calls", None)
        log = None if log is None else log.get(id(layer))
        before = graph_ops() if (track_ops and log is not None) else None
        outputs = original(*args, **kwargs)
        activation = _PATCHED[id(layer)][2]
        if log is not None:
            ops = None
            if before is not None:
                ops = {op.name: op.type for op in graph_ops()[len(before):]}
            graph = None if tf.executing_eagerly() else tf.compat.v1.get_default_graph()
            log.append(Call(args[0] if args else kwargs.get("inputs"), outputs,
                            kwargs.get("training"), ops, getattr(_RECORDING, "public", False),
                            args, kwargs, graph))
        return outputs if activation is None else activation(outputs)

    return wrapper


@contextlib.contextmanager
def record_calls(layers: Sequence[tf.keras.layers.Layer],
                 preactivation: Callable[[Any], bool] = lambda layer: False,
                 track_ops: Callable[[Any], bool] = lambda layer: False):
    """Within the block, every call of ``layers`` by this thread is recorded.

    Args:
      layers: the layers to record.
      preactivation: layer -> True to record its output before its fused activation.
      track_ops: layer -> True to note the graph ops each of its calls creates.

    Yields {id(layer): [Call, ...]}. Safe when several threads record the same layers at once
    (MirroredStrategy's replica threads): each sees only its own calls.
    """
    calls: dict[int, list[Call]] = {id(layer): [] for layer in layers}
    with _PATCH_LOCK:
        for layer in layers:
            entry = _PATCHED.get(id(layer))
            if entry is None:
                activation = None
                if preactivation(layer) and _fused_activation(layer) is not None:
                    activation = layer.activation
                    layer.activation = tf.keras.activations.linear
                # past Keras' attribute tracking
                object.__setattr__(layer, "call", _wrapper(layer, layer.call, track_ops(layer)))
                entry = _PATCHED[id(layer)] = [layer, 0, activation]
            entry[1] += 1
    outer = getattr(_RECORDING, "calls", None)
    _RECORDING.calls = calls if outer is None else {**outer, **calls}
    try:
        yield calls
    finally:
        _RECORDING.calls = outer
        with _PATCH_LOCK:
            for layer in layers:
                entry = _PATCHED[id(layer)]
                entry[1] -= 1
                if entry[1] == 0:
                    object.__delattr__(layer, "call")
                    if entry[2] is not None:
                        layer.activation = entry[2]
                    del _PATCHED[id(layer)]


@contextlib.contextmanager
def public_view_calls():
    """Calls recorded within the block are marked as made on the public view psi(x)."""
    outer = getattr(_RECORDING, "public", False)
    _RECORDING.public = True
    try:
        yield
    finally:
        _RECORDING.public = outer


@contextlib.contextmanager
def not_recording():
    """Calls within the block are not recorded (a rule calling a layer again)."""
    outer = getattr(_RECORDING, "calls", None)
    _RECORDING.calls = None
    try:
        yield
    finally:
        _RECORDING.calls = outer


def _fused_activation(layer):
    """The layer's activation if it is not the identity, else None."""
    act = getattr(layer, "activation", None)
    if act is None or act is tf.keras.activations.linear:
        return None
    return act
