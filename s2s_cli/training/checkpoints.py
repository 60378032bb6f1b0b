"""Step checkpoints: tf.train.Checkpoint of the model, the optimizer, the dropout seeds and the trainer's position.

TensorFlow's object graph does not see layers that a Keras 3 model keeps in lists (its encoder and decoder blocks),
so the checkpoint gets the model as a tree of the layers' attributes: every variable is saved and restored under
its place in the model (`decoder_blocks/0/ff_in/_kernel`), not by its position in a list of variables.
`tf.train.CheckpointManager` numbers the checkpoints by step, keeps the newest `--keep`, and updates its index
file only once a checkpoint is written whole.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from s2s_cli.errors import RunDirError
from s2s_cli.rundir import RunDir

PREFIX = "ckpt"
OLD_FORMAT_STATE = "state.json"  # what a checkpoint folder of s2s before tf.train.Checkpoint holds


class JsonState(tf.train.experimental.PythonState):
    """Python values saved inside the checkpoint as JSON: `get()` gives them, `put(values)` restores them."""

    def __init__(self, get: Callable[[], dict[str, Any]], put: Callable[[dict[str, Any]], None]) -> None:
        self._get, self._put = get, put

    def serialize(self) -> str:
        return json.dumps(self._get())

    def deserialize(self, string_value) -> None:
        self._put(json.loads(string_value))


def variable_tree(obj: Any) -> dict[str, Any]:
    """A layer's variables and sublayers by attribute name, nested; a seed generator contributes its state.

    A layer reachable from two places (a joint embedding) appears under both; the checkpoint stores its variables
    once."""
    tree: dict[str, Any] = {}
    for name, value in sorted(vars(obj).items()):
        if isinstance(value, keras.Variable):
            tree[name] = value
        elif name.startswith("_"):
            continue  # Keras' own bookkeeping (lists of sublayers and variables, trackers)
        elif isinstance(value, keras.random.SeedGenerator):
            tree[name] = {"state": value.state}
        elif isinstance(value, keras.layers.Layer):
            tree[name] = variable_tree(value)
        elif isinstance(value, (list, tuple)) and value and all(isinstance(v, keras.layers.Layer) for v in value):
            tree[name] = {str(i): variable_tree(layer) for i, layer in enumerate(value)}
    return tree


def _leaves(tree: Any) -> list[Any]:
    if isinstance(tree, dict):
        return [leaf for value in tree.values() for leaf in _leaves(value)]
    return [tree]


class Checkpoints:
    """The run dir's step checkpoints for one model, optimizer and trainer state."""

    def __init__(self, run: RunDir, model: keras.Model, optimizer, state: JsonState, keep: int) -> None:
        tree = variable_tree(model)
        missing = {id(v) for v in model.variables} - {id(v) for v in _leaves(tree)}
        if missing:  # a Keras layer keeps variables where variable_tree does not look
            names = [v.path for v in model.variables if id(v) in missing]
            raise RuntimeError(f"checkpoints would miss model variables {names}")
        self.run, self.keep = run, keep
        self.checkpoint = tf.train.Checkpoint(model=tree, optimizer=optimizer, trainer=state)
        self._manager: tf.train.CheckpointManager | None = None

    def save(self, step: int) -> str:
        # The manager reads the checkpoints already there when it is made, so it is made at the first save: after
        # a fresh training has set the earlier one's aside.
        if self._manager is None:
            directory = str(self.run.checkpoints_dir)
            self._manager = tf.train.CheckpointManager(
                self.checkpoint, directory, max_to_keep=self.keep, checkpoint_name=PREFIX
            )
        return self._manager.save(checkpoint_number=step)

    def restore_latest(self) -> None:
        """Restore the newest checkpoint into the model, optimizer and state (all of them, or a RunDirError)."""
        path = latest_checkpoint(self.run)
        try:
            self.checkpoint.restore(path).assert_consumed()
        except (AssertionError, ValueError, tf.errors.OpError) as err:
            raise RunDirError(
                f"checkpoint {path} does not fit the model in config.json ({str(err).splitlines()[0]}); "
                "it comes from another run: `s2s train --force` starts over."
            ) from None


def latest_checkpoint(run: RunDir) -> str:
    """The newest checkpoint's path prefix, or a RunDirError that says what to do."""
    latest = tf.train.latest_checkpoint(str(run.checkpoints_dir)) if run.checkpoints_dir.is_dir() else None
    if latest:
        return latest
    if run.checkpoints_dir.is_dir() and any(run.checkpoints_dir.glob(f"{PREFIX}-*/{OLD_FORMAT_STATE}")):
        raise RunDirError(
            f"the checkpoints in {run.checkpoints_dir} were written by an older s2s and cannot be resumed: "
            "`s2s train --force` starts over (the trained model.weights.h5 still translates)."
        )
    if run.has_weights():
        raise RunDirError(
            f"{run.path} has a trained model but no checkpoint to resume from: `s2s train --force` starts over "
            "and replaces it (the model translates as it is)."
        )
    raise RunDirError(f"{run.path} has no checkpoint to resume from: run `s2s train` without --resume.")


def list_checkpoints(run: RunDir) -> list[str]:
    """Path prefixes of the complete checkpoints, oldest first."""
    if not run.checkpoints_dir.is_dir():
        return []
    state = tf.train.get_checkpoint_state(str(run.checkpoints_dir))
    return list(state.all_model_checkpoint_paths) if state else []


def has_checkpoints(run: RunDir) -> bool:
    """Any checkpoint, of this s2s or an older one."""
    return bool(list_checkpoints(run)) or (
        run.checkpoints_dir.is_dir() and any(run.checkpoints_dir.glob(f"{PREFIX}-*/{OLD_FORMAT_STATE}"))
    )


def weights_digest(model: keras.Model) -> str:
    """SHA-256 of every weight's bytes, in order: equal digests mean identical models (replicas, reloads)."""
    digest = hashlib.sha256()
    for weight in model.weights:
        digest.update(np.ascontiguousarray(weight.numpy()).tobytes())
    return digest.hexdigest()
