"""Which devices a run uses: one device, all local GPUs (or logical CPUs), or several hosts.

``make_distribution(kind, cpu_replicas)`` builds the ``tf.distribute`` strategy and says what this
process is within it (chief or not, which replicas are local). The privacy argument of a
distributed step (DESIGN 3b, docs/training.md "Several GPUs and hosts"):

* each replica samples its own shard of the privacy units with the global q
  (``BatchConfig.num_shards``; the union of the shards' batches is the Poisson sample of the whole
  set, and a unit never spans two replicas), with the chief's secret sampling key;
* each replica clips its own examples; the clipped sums are all-reduced;
* every replica adds the same noise to the global sum (a stateless draw keyed by a key that every
  worker takes from the chief), so the sum is noised once with std sigma * C, and the update is
  divided by the global expected batch size B;
* the ledger counts global steps with the global q = B / N.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tensorflow as tf

KINDS = ("none", "mirrored", "multi_worker")


@dataclasses.dataclass
class Distribution:
    """A strategy and this process's place in it."""

    kind: str
    strategy: tf.distribute.Strategy
    worker_index: int = 0
    num_workers: int = 1

    @property
    def num_replicas(self) -> int:
        return int(self.strategy.num_replicas_in_sync)

    @property
    def is_chief(self) -> bool:
        """The process that writes the run's files (worker 0)."""
        return self.worker_index == 0

    def local_replica_ids(self) -> list[int]:
        """Global ids (``replica_id_in_sync_group``) of the replicas this process runs."""
        ids = self.strategy.experimental_distribute_values_from_function(
            lambda ctx: tf.constant(ctx.replica_id_in_sync_group))
        return [int(t) for t in self.strategy.experimental_local_results(ids)]

    def per_replica(self, values: dict):
        """The per-replica value of {global replica id: value} (the value itself on one device)."""
        if self.kind == "none":
            return values[0]
        return self.strategy.experimental_distribute_values_from_function(
            lambda ctx: values[ctx.replica_id_in_sync_group])

    def from_chief(self, values: tuple[int, ...]) -> tuple[int, ...]:
        """The chief's ``values`` on every worker (each worker passes its own; e.g. a secret key).

        A variable created in a multi-worker strategy's scope takes the chief's initial value on
        every worker, as the optimizer's noise key does.
        """
        if self.kind != "multi_worker":
            return tuple(values)
        with self.strategy.scope():
            shared = tf.Variable(tf.constant(values, tf.int64), trainable=False,
                                 aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        local = self.strategy.experimental_local_results(shared)[0]
        return tuple(int(v) for v in local.numpy())

    def output_dir(self, directory: str) -> str:
        """Where this process writes what every worker must write (checkpoints).

        The chief writes ``directory``; another worker writes its own copy beside it (which the
        trainer deletes when the run ends), so workers never overwrite each other's files.
        """
        if self.is_chief:
            return directory
        return os.path.join(directory, f".worker-{self.worker_index}")

    def describe(self) -> str:
        if self.kind == "none":
            return "one device"
        devices = ", ".join(d for d in self.strategy.extended.worker_devices)
        where = (f"worker {self.worker_index} of {self.num_workers}, " if self.num_workers > 1
                 else "")
        return (f"{self.kind}: {self.num_replicas} replicas in sync ({where}local devices "
                f"{devices})")


def _configure_cpu_replicas(count: int) -> None:
    cpus = tf.config.list_physical_devices("CPU")
    if len(tf.config.get_logical_device_configuration(cpus[0]) or []) == count:
        return      # already split (an earlier run in this process)
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(count)])
    except RuntimeError as err:
        raise RuntimeError(
            "--cpu_replicas: logical CPU devices must be configured before TensorFlow starts its "
            "runtime; create the run's Trainer (or call make_distribution) before any other "
            f"TensorFlow work in this process ({err})") from None


def make_distribution(kind: str = "none", cpu_replicas: int = 0) -> Distribution:
    """The strategy for ``kind``.

    Args:
      kind: "none" (the default strategy: one device), "mirrored" (every local GPU, or with no
        GPU ``cpu_replicas`` logical CPU devices), or "multi_worker" (MultiWorkerMirroredStrategy:
        the hosts and this process's role come from the TF_CONFIG environment variable; every
        local GPU of each host, or its CPU).
      cpu_replicas: "mirrored" without GPUs: the number of logical CPU devices (>= 2) to
        split the CPU into; 0 means one CPU replica. Ignored when GPUs are present.
    """
    if kind not in KINDS:
        raise ValueError(f"--distribution must be one of {KINDS}, got {kind!r}")
    if cpu_replicas < 0:
        raise ValueError(f"--cpu_replicas must be >= 0, got {cpu_replicas}")
    if kind == "none":
        return Distribution("none", tf.distribute.get_strategy())
    gpus = tf.config.list_physical_devices("GPU")
    if kind == "mirrored":
        if gpus:
            return Distribution(kind, tf.distribute.MirroredStrategy())
        if cpu_replicas > 1:
            _configure_cpu_replicas(cpu_replicas)
            devices = [d.name for d in tf.config.list_logical_devices("CPU")]
            return Distribution(kind, tf.distribute.MirroredStrategy(devices))
        return Distribution(kind, tf.distribute.MirroredStrategy(["/cpu:0"]))
    config = _tf_config()
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    task = config.get("task", {})
    workers = config.get("cluster", {}).get("worker", [])
    chiefs = config.get("cluster", {}).get("chief", [])
    index = int(task.get("index", 0))
    if task.get("type") == "worker" and chiefs:
        index += len(chiefs)
    return Distribution(kind, strategy, worker_index=index,
                        num_workers=max(1, len(workers) + len(chiefs)))


def _tf_config() -> dict:
    raw = os.environ.get("TF_CONFIG", "")
    if not raw:
        raise ValueError("--distribution=multi_worker needs the TF_CONFIG environment variable "
                         "(cluster and task of this process; see docs/training.md)")
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as err:
        raise ValueError(f"TF_CONFIG is not valid JSON: {err}") from None
    task = config.get("task", {})
    if task.get("type") not in ("worker", "chief") or "cluster" not in config:
        raise ValueError("TF_CONFIG needs a 'cluster' and a task of type 'worker' or 'chief', "
                         f"got {raw!r}")
    return config
