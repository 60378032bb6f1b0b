"""Optimizer updates: from one global batch in one graph, or (--accum-steps N) from the summed gradients of N.

An update from N batches equals one update on their union: the gradients of each batch's summed token losses are
added, then divided by the union's target tokens, clipped and applied once. An embedding's gradient stays sparse
(one row per token, as for one batch): the rows of the N batches are concatenated, so that clipping and Adam's
second moment treat them as one batch's rows.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from s2s_cli.config import TrainConfig
from s2s_cli.models import EncoderDecoder, output_losses
from s2s_cli.tokens import PAD
from s2s_cli.training.distribute import IDS, Distribution

SUM = tf.distribute.ReduceOp.SUM


class Updates:
    """The compiled update functions of one model and optimizer on a Distribution."""

    def __init__(
        self,
        model: EncoderDecoder,
        optimizer: keras.optimizers.Optimizer,
        config: TrainConfig,
        distribution: Distribution,
    ) -> None:
        self.model, self.optimizer, self.config, self.distribution = model, optimizer, config, distribution
        self._one = distribution.compile_step(self._global(self._replica_update))
        self._grads = distribution.compile(self._global(self._replica_grads), [IDS, IDS, IDS])
        self._apply = tf.function(self._global(self._replica_apply), reduce_retracing=True)

    def one_batch(self, src, tgt_in, tgt_out, stop_flags=(0.0, 0.0)):
        """One update on a global batch -> (mean loss, target tokens, summed stop flags), all global."""
        return self._one(src, tgt_in, tgt_out, tf.constant(stop_flags, tf.float32))

    def __call__(self, batches: list, stop_flags: tuple[float, float]) -> tuple[float, int, np.ndarray]:
        """One update from `batches` -> (mean token loss, target tokens, stop flags summed over processes)."""
        if len(batches) == 1:
            (src, tgt_in), tgt_out = batches[0]
            loss, tokens, agreed = self.one_batch(src, tgt_in, tgt_out, stop_flags)
            return float(loss), int(tokens), agreed.numpy()
        total, loss_sum, tokens = None, 0.0, 0.0
        for (src, tgt_in), tgt_out in batches:
            grads, batch_loss, batch_tokens = self._grads(src, tgt_in, tgt_out)
            total = grads if total is None else [_add(a, b) for a, b in zip(total, grads)]
            loss_sum, tokens = loss_sum + float(batch_loss), tokens + float(batch_tokens)
        agreed = self._apply(total, tf.constant(tokens, tf.float32), tf.constant(stop_flags, tf.float32))
        return loss_sum / max(tokens, 1.0), int(tokens), agreed.numpy()

    def _global(self, replica_fn):
        strategy = self.distribution.strategy

        def run(*args):
            results = strategy.run(replica_fn, args=args)
            # Every replica returns the same all-reduced values: take this process's first.
            return tf.nest.map_structure(lambda x: strategy.experimental_local_results(x)[0], results)

        return run

    def _loss_sum(self, src, tgt_in, tgt_out):
        return loss_sum(self.model, src, tgt_in, tgt_out, self.config.label_smoothing, training=True)

    def _finish(self, context, grads, stop_flags):
        """Clip the global gradient, apply it, and agree on the stop flags."""
        variables = self.model.trainable_variables
        if self.config.dense_embedding_grads:
            grads = [tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g for g in grads]
        if self.config.clip_norm:
            grads, _ = tf.clip_by_global_norm(grads, self.config.clip_norm)
        self.optimizer.apply(self.distribution.share(grads), variables)
        # identity: an input has no device under MultiWorkerMirroredStrategy, and all_reduce needs one
        return context.all_reduce(SUM, tf.identity(stop_flags))

    def _replica_update(self, src, tgt_in, tgt_out, stop_flags):
        context = tf.distribute.get_replica_context()
        with tf.GradientTape() as tape:
            loss_sum, tokens = self._loss_sum(src, tgt_in, tgt_out)
            total_tokens = context.all_reduce(SUM, tokens)
            scaled = loss_sum / tf.maximum(total_tokens, 1.0)  # this replica's share of the global mean
        grads = context.all_reduce(SUM, tape.gradient(scaled, self.model.trainable_variables))
        agreed = self._finish(context, grads, stop_flags)
        return context.all_reduce(SUM, loss_sum) / tf.maximum(total_tokens, 1.0), total_tokens, agreed

    def _replica_grads(self, src, tgt_in, tgt_out):
        """The gradient of the global batch's summed token losses, that sum, and its target tokens."""
        context = tf.distribute.get_replica_context()
        with tf.GradientTape() as tape:
            loss_sum, tokens = self._loss_sum(src, tgt_in, tgt_out)
        grads = tape.gradient(loss_sum, self.model.trainable_variables)
        return context.all_reduce(SUM, grads), context.all_reduce(SUM, loss_sum), context.all_reduce(SUM, tokens)

    def _replica_apply(self, grads, tokens, stop_flags):
        context = tf.distribute.get_replica_context()
        return self._finish(context, [_scale(g, 1.0 / tf.maximum(tokens, 1.0)) for g in grads], stop_flags)


def loss_sum(model: EncoderDecoder, src, tgt_in, tgt_out, label_smoothing: float = 0.0, training: bool = False):
    """(summed token loss, target tokens) of a batch. Only the positions with a label (not padding) go through
    the output layer, the largest matmul of a step, and the softmax."""
    hidden = model.features((src, tgt_in), training=training)
    labelled = tf.not_equal(tgt_out, PAD)
    unbiased = model.project_unbiased(tf.boolean_mask(hidden, labelled))
    losses = output_losses(unbiased, model.output_bias, tf.boolean_mask(tgt_out, labelled), label_smoothing)
    return tf.reduce_sum(losses), tf.cast(tf.shape(losses)[0], tf.float32)


def _add(a, b):
    """The sum of two gradients; sparse ones (embeddings) keep every row, as one batch's gradient does."""
    if isinstance(a, tf.IndexedSlices):
        return tf.IndexedSlices(tf.concat([a.values, b.values], 0), tf.concat([a.indices, b.indices], 0), a.dense_shape)
    return a + b


def _scale(gradient, factor):
    if isinstance(gradient, tf.IndexedSlices):
        return tf.IndexedSlices(gradient.values * factor, gradient.indices, gradient.dense_shape)
    return gradient * factor
