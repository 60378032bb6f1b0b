"""Distribution: how each global batch reaches the devices, and what differs between one device and many.

The trainer asks a `Distribution` for its inputs, its compiled step and its gradients' shares, and never checks
how many replicas there are: one device, replicas in one process (MirroredStrategy), or several processes
(MultiWorkerMirroredStrategy, where the processes also agree on when to stop).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import tensorflow as tf

from s2s_cli.config import Strategy
from s2s_cli.data.batching import Pairs, collate, dataset
from s2s_cli.errors import ConfigError

IDS = tf.TensorSpec((None, None), tf.int32)
FLAGS = tf.TensorSpec((2,), tf.float32)


class Distribution:
    """One device (or a strategy with one replica): batches go in whole, through a prefetching tf.data pipeline."""

    is_chief = True  # only the chief writes the run dir: checkpoints, weights, history, logs

    def __init__(self, strategy: tf.distribute.Strategy) -> None:
        self.strategy = strategy
        self.replicas = strategy.num_replicas_in_sync

    def scope(self):
        return self.strategy.scope()

    def compile(self, fn: Callable, signature: list[tf.TensorSpec]) -> Callable:
        """fn of batch tensors as one graph, traced once for every batch shape."""
        return tf.function(fn, input_signature=signature)

    def compile_step(self, step: Callable) -> Callable:
        """step(src, tgt_in, tgt_out, stop_flags) as one graph."""
        return self.compile(step, [IDS, IDS, IDS, FLAGS])

    def inputs(self, pairs: Pairs, batches: list[np.ndarray], start: int) -> Iterator[Any]:
        """The batches from `start` on, as the compiled step takes them."""
        yield from dataset(pairs, batches, start=start)

    def share(self, grads: list) -> list:
        """The gradients the optimizer should apply in one replica, given the global batch's gradients."""
        return grads

    def stop_flags(self, agreed: tuple[float, float], here: tuple[bool, bool]) -> tuple[bool, bool]:
        """(out of time, signalled): one process acts on its own clock and signals at once, not a step later."""
        return bool(agreed[0] or here[0]), bool(agreed[1] or here[1])


class Replicated(Distribution):
    """Several replicas: each global batch is split into one part per replica."""

    def compile(self, fn: Callable, signature: list[tf.TensorSpec]) -> Callable:
        return tf.function(fn, reduce_retracing=True)  # per-replica inputs: one trace per input structure

    def inputs(self, pairs: Pairs, batches: list[np.ndarray], start: int) -> Iterator[Any]:
        """Each batch split across the replicas; None for one with fewer sentences than replicas, which every
        process skips alike. A process reads only its own replicas' parts."""
        for index in batches[start:]:
            if len(index) < self.replicas:
                yield None
                continue
            parts = np.array_split(index, self.replicas)
            yield self.strategy.experimental_distribute_values_from_function(
                lambda context, parts=parts: tf.nest.map_structure(
                    tf.constant, collate(pairs, parts[context.replica_id_in_sync_group])
                )
            )

    def share(self, grads: list) -> list:
        # Keras' optimizer sums the gradients over replicas once more: give it equal shares
        return [tf.convert_to_tensor(g) / self.replicas for g in grads]


class MultiWorker(Replicated):
    """Replicas on several machines; every process runs the same steps and stops after the same one."""

    def __init__(self, strategy: tf.distribute.MultiWorkerMirroredStrategy) -> None:
        super().__init__(strategy)
        resolver = strategy.cluster_resolver
        task_type, task_id = resolver.task_type, resolver.task_id
        has_chief = "chief" in resolver.cluster_spec().as_dict()
        self.is_chief = (
            task_type == "chief" or (task_type == "worker" and task_id == 0 and not has_chief) or task_type is None
        )

    def stop_flags(self, agreed: tuple[float, float], here: tuple[bool, bool]) -> tuple[bool, bool]:
        return bool(agreed[0]), bool(agreed[1])  # summed inside the step over all processes


def make_distribution(name: Strategy) -> Distribution:
    """The distribution for --strategy; create it before any other TensorFlow op runs.

    one: TensorFlow's default (no distribution). mirrored: all local GPUs, else all logical CPU devices.
    multi-worker: MultiWorkerMirroredStrategy over the cluster in TF_CONFIG. auto: multi-worker when TF_CONFIG names
    more than one task, mirrored when there are several GPUs, else one.
    """
    if name == Strategy.AUTO:
        many_gpus = len(tf.config.list_physical_devices("GPU")) > 1
        name = Strategy.MULTI_WORKER if cluster_size() > 1 else Strategy.MIRRORED if many_gpus else Strategy.ONE
    if name == Strategy.MULTI_WORKER:
        if not cluster_size():
            raise ConfigError(
                "--strategy multi-worker needs the TF_CONFIG environment variable (cluster and task of this worker); "
                "see the README's 'Scaling out' section."
            )
        return MultiWorker(tf.distribute.MultiWorkerMirroredStrategy())
    if name == Strategy.MIRRORED:
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        strategy = tf.distribute.MirroredStrategy([d.name for d in devices])
    else:
        strategy = tf.distribute.get_strategy()
    return Replicated(strategy) if strategy.num_replicas_in_sync > 1 else Distribution(strategy)


def cluster_size() -> int:
    """Tasks in TF_CONFIG's cluster (0 when TF_CONFIG is not set)."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return 0
    try:
        cluster = json.loads(raw)["cluster"]
        return sum(len(cluster.get(kind, [])) for kind in ("chief", "worker"))
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
        raise ConfigError(
            'TF_CONFIG is not valid: expected JSON like {"cluster": {"worker": ["host1:port", ...]}, '
            '"task": {"type": "worker", "index": 0}}.'
        ) from None
