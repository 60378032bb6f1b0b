"""Step checkpoints by object structure: every variable saved under its place in the model, restored by name."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from s2s_cli.config import ModelConfig
from s2s_cli.errors import RunDirError
from s2s_cli.models import build_model
from s2s_cli.rundir import RunDir
from s2s_cli.training.checkpoints import Checkpoints, JsonState, list_checkpoints, variable_tree

SHAPES = {
    "rnn-lstm-general": dict(arch="rnn", cell="lstm", attention="general"),
    "rnn-gru-bahdanau-tied": dict(arch="rnn", cell="gru", attention="bahdanau", tie_embeddings=True),
    "rnn-dot": dict(arch="rnn", attention="dot"),
    "transformer": dict(arch="transformer"),
    "transformer-tied": dict(arch="transformer", tie_embeddings=True),
}
SMALL = dict(emb_dim=8, hidden=8, d_model=8, heads=2, ff_dim=16, layers=2, dropout=0.1)


def model_and_optimizer(shape: dict, joint: bool = False):
    model = build_model(ModelConfig(**{**SMALL, **shape}), 20, 20, joint=joint)
    optimizer = keras.optimizers.Adam()
    optimizer.build(model.trainable_variables)
    return model, optimizer


def leaves(tree):
    return [leaf for value in tree.values() for leaf in leaves(value)] if isinstance(tree, dict) else [tree]


@pytest.mark.parametrize("joint", [False, True])
@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_the_tree_holds_every_variable_of_the_model(shape, joint):
    model, _ = model_and_optimizer(shape, joint)
    found = {id(v) for v in leaves(variable_tree(model))}
    assert found == {id(v) for v in model.variables}  # weights and the dropout layers' seed states


@pytest.mark.parametrize("arch", ["rnn", "transformer"])
def test_a_checkpoint_restores_model_optimizer_and_state_by_name(tmp_path, arch):
    run = RunDir(tmp_path)
    saved_state = {"trainer": {"step": 7}}
    model, optimizer = model_and_optimizer({"arch": arch})
    optimizer.iterations.assign(7)
    Checkpoints(run, model, optimizer, JsonState(lambda: saved_state, None), keep=2).save(7)
    # a second model built later in the process: other auto-numbered layer names, other random weights
    other, other_optimizer = model_and_optimizer({"arch": arch})
    assert [v.path for v in other.variables] != [v.path for v in model.variables]
    restored = {}
    Checkpoints(run, other, other_optimizer, JsonState(None, restored.update), keep=2).restore_latest()
    for a, b in zip(model.variables, other.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert int(other_optimizer.iterations.numpy()) == 7 and restored == saved_state


def test_a_checkpoint_of_another_shape_is_refused(tmp_path):
    run = RunDir(tmp_path)
    model, optimizer = model_and_optimizer({"arch": "transformer"})
    Checkpoints(run, model, optimizer, JsonState(dict, None), keep=2).save(1)
    wider, wider_optimizer = model_and_optimizer({"arch": "transformer", "ff_dim": 32})
    with pytest.raises(RunDirError, match="does not fit the model in config.json"):
        Checkpoints(run, wider, wider_optimizer, JsonState(dict, dict), keep=2).restore_latest()


def test_only_the_newest_are_kept(tmp_path):
    run = RunDir(tmp_path)
    model, optimizer = model_and_optimizer({"arch": "rnn"})
    checkpoints = Checkpoints(run, model, optimizer, JsonState(dict, None), keep=2)
    for step in (3, 6, 9):
        checkpoints.save(step)
    assert [p.rsplit("-", 1)[1] for p in list_checkpoints(run)] == ["6", "9"]
    assert tf.train.latest_checkpoint(str(run.checkpoints_dir)).endswith("ckpt-9")
