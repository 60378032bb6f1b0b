"""Updates: N accumulated batches make the update their union would make; the fused one-batch update is unchanged;
weight decay."""

import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import TINY_MODEL, TINY_TRANSFORMER, tiny_config

from s2s_cli.config import TrainConfig
from s2s_cli.data.batching import collate
from s2s_cli.rundir import RunDir
from s2s_cli.training.runner import build_trainer, train
from s2s_cli.training.schedules import Adam, build_optimizer, learning_rate


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


@pytest.mark.parametrize("dense", [False, True], ids=["sparse", "dense"])
def test_dense_embedding_grads_give_every_row_adams_step(run, dense):
    """Adam's first step is lr * g / (|g| + eps), at most lr, for every weight. Keras' Adam on an embedding's sparse
    gradient (one row per occurrence) squares each occurrence's row, so a token that occurs k times in the batch
    moves up to sqrt(k) times further; summed per token first, every row takes Adam's step."""
    trainer = build_trainer(
        run, tiny_config(run, {**TINY_TRANSFORMER, "dropout": 0.0}, clip_norm=0.0, dense_embedding_grads=dense)
    )
    before = [w.numpy() for w in trainer.model.trainable_weights]
    trainer.updates([collate(trainer.data.train, trainer.batches(0)[0])], (0, 0))
    moved = {w.path: np.abs(w.numpy() - b).max() for w, b in zip(trainer.model.trainable_weights, before)}
    step = max(m for path, m in moved.items() if "embedding" not in path)  # the first step's lr, dense weights
    embedding = max(m for path, m in moved.items() if "embedding" in path)
    assert step > 0 and embedding > 0
    if dense:
        assert embedding <= step * (1 + 1e-4)
    else:
        assert embedding > 2 * step  # characters recur in every sentence: the sparse update overshoots


def test_weight_decay_shrinks_matrices_and_embeddings_by_lr_times_the_decay_and_leaves_biases_and_norms(run):
    config = {**TINY_TRANSFORMER, "dropout": 0.0}
    plain, decayed = (build_trainer(run, tiny_config(run, config, weight_decay=wd)) for wd in (0.0, 0.5))
    batch = collate(plain.data.train, plain.batches(0)[0])
    before = [w.numpy() for w in plain.model.trainable_weights]
    for trainer in (plain, decayed):
        assert np.array_equal(trainer.model.trainable_weights[0].numpy(), before[0])  # the same start
        trainer.updates([batch], (0, 0))
    lr = float(learning_rate(decayed.config.train)(0))
    shrunk = set()
    for a, b, start in zip(plain.model.trainable_weights, decayed.model.trainable_weights, before):
        if any(name in a.path for name in ("bias", "gamma", "beta")):
            np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
        else:  # the same Adam step, taken from the weight shrunk by lr * 0.5
            np.testing.assert_allclose(a.numpy() - b.numpy(), start * lr * 0.5, atol=1e-7, err_msg=a.path)
            shrunk.add(a.path.split("/")[-1])
    assert {"embeddings", "kernel"} <= shrunk


def test_training_with_weight_decay_resumes_exactly(run, tmp_path):
    runs = [RunDir(tmp_path / name) for name in ("whole", "resumed", "plain")]
    for other in runs:
        shutil.copytree(run.path, other.path)
    whole = train(runs[0], tiny_config(runs[0], max_steps=4, epochs=5, weight_decay=0.1))
    train(runs[1], tiny_config(runs[1], max_steps=2, epochs=5, weight_decay=0.1))
    resumed = train(runs[1], tiny_config(runs[1], max_steps=4, epochs=5, weight_decay=0.1), resume=True)
    plain = train(runs[2], tiny_config(runs[2], max_steps=4, epochs=5))
    assert whole.weights_sha256 == resumed.weights_sha256 != plain.weights_sha256
    assert runs[0].load_config().train.weight_decay == 0.1


@pytest.mark.parametrize("weight_decay", [None, 0.1], ids=["adam", "adamw"])
def test_the_fused_adam_takes_keras_adams_steps_on_the_same_variables(weight_decay):
    assert isinstance(build_optimizer(TrainConfig(warmup=10)), Adam)
    rng = np.random.default_rng(0)
    start = [rng.normal(size=(6, 5)).astype("float32"), rng.normal(size=(7, 3)).astype("float32")]
    # three steps: the bias corrections and the scheduled rate change each step
    grads = [
        [
            tf.constant(rng.normal(size=(6, 5)) * (step + 1), tf.float32),
            tf.IndexedSlices(tf.constant(rng.normal(size=(2, 3)), tf.float32), tf.constant([1, 4]), (7, 3)),
        ]
        for step in range(3)
    ]
    schedule = keras.optimizers.schedules.ExponentialDecay(1e-2, decay_steps=1, decay_rate=0.5)
    results = []
    for cls in (Adam, keras.optimizers.Adam):
        optimizer = cls(learning_rate=schedule, weight_decay=weight_decay)
        variables = [keras.Variable(value, name=f"w{i}") for i, value in enumerate(start)]
        for step_grads in grads:
            optimizer.apply(step_grads, variables)
        results.append((variables, optimizer.variables))
    (ours, our_state), (theirs, their_state) = results
    assert [v.name for v in our_state] == [v.name for v in their_state]  # checkpoints load into either
    for a, b in zip([*ours, *our_state], [*theirs, *their_state]):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6, err_msg=a.path)  # steps are ~1e-2
    assert not np.allclose(ours[0].numpy(), start[0])  # and they did move
