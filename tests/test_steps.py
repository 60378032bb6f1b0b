"""Updates: N accumulated batches make the update their union would make; the fused one-batch update is unchanged;
the fused Adam kernel updates as Keras' Adam does."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import TINY_MODEL, TINY_TRANSFORMER, tiny_config

from s2s_cli.data.batching import collate
from s2s_cli.training.runner import build_trainer
from s2s_cli.training.schedules import FusedAdam


@pytest.mark.parametrize("model", [TINY_MODEL, TINY_TRANSFORMER], ids=["rnn", "transformer"])
def test_an_accumulated_update_equals_one_on_the_union_of_the_batches(run, model):
    still = {**model, "dropout": 0.0}  # no dropout: the two updates see the same network
    accumulating = build_trainer(run, tiny_config(run, still, accum_steps=3))
    whole = build_trainer(run, tiny_config(run, still))
    assert np.array_equal(accumulating.model.weights[0].numpy(), whole.model.weights[0].numpy())  # same start
    parts = accumulating.batches(0)[:3]
    loss_parts, tokens_parts, _ = accumulating.updates([collate(accumulating.data.train, p) for p in parts], (0, 0))
    loss_union, tokens_union, _ = whole.updates([collate(whole.data.train, np.concatenate(parts))], (0, 0))
    assert tokens_parts == tokens_union and loss_parts == pytest.approx(loss_union, rel=1e-5)
    # Adam's first update is about lr * sign(gradient) whatever the gradient's size, so compare what it saw: its
    # moments, (1 - beta_1) g and (1 - beta_2) g^2 of the gradient applied.
    moments = [(a, b) for a, b in zip(accumulating.optimizer.variables, whole.optimizer.variables) if len(a.shape)]
    for kind in ("momentum", "velocity"):
        pairs = [(a, b) for a, b in moments if a.path.endswith(kind)]
        scale = max(np.abs(b.numpy()).max() for _, b in pairs)  # padding differs between the batches: float noise
        assert pairs and scale > 0
        for a, b in pairs:
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-3, atol=1e-5 * scale, err_msg=a.path)


def test_accumulation_counts_updates_not_batches(run):
    trainer = build_trainer(run, tiny_config(run, accum_steps=2, epochs=1))
    batches = len(trainer.batches(0))
    trainer.fit()
    assert trainer.state.step == (batches + 1) // 2 == trainer.updates_per_epoch()


def test_the_fused_adam_update_equals_keras_adam_on_dense_and_sparse_gradients():
    rng = np.random.default_rng(0)
    start = [rng.normal(size=(30, 4)).astype("float32"), rng.normal(size=(4,)).astype("float32")]
    rows = tf.constant([1, 3, 3, 7])  # an embedding's gradient: one row per occurrence, repeats included
    grads = [(rng.normal(size=(4, 4)), rng.normal(size=(4,))) for _ in range(6)]

    def train(optimizer):
        variables = [keras.Variable(x) for x in start]
        optimizer.build(variables)

        @tf.function(autograph=False)
        def step(sparse, dense):
            optimizer.apply([tf.IndexedSlices(sparse, rows, tf.constant([30, 4])), dense], variables)

        for sparse, dense in grads:
            step(tf.constant(sparse, tf.float32), tf.constant(dense, tf.float32))
        return [v.numpy() for v in variables] + [v.numpy() for v in optimizer.variables[1:]]

    schedule = keras.optimizers.schedules.CosineDecay(1e-2, 10)
    ours, keras_own = train(FusedAdam(learning_rate=schedule)), train(keras.optimizers.Adam(learning_rate=schedule))
    assert len(ours) == len(keras_own) == 6  # the variables, and both moments of each
    for a, b in zip(ours, keras_own):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    assert not np.allclose(ours[0], start[0])
