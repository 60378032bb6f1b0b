"""`s2s average`: the mean of step checkpoints becomes the model; the best step's weights are kept beside it."""

import json
import shutil

import numpy as np
import pytest
import tensorflow as tf
from helpers import tiny_config
from typer.testing import CliRunner

from s2s_cli.cli import app
from s2s_cli.errors import RunDirError
from s2s_cli.models import build_model
from s2s_cli.rundir import RunDir
from s2s_cli.training.averaging import average, checkpoint_steps
from s2s_cli.training.checkpoints import variable_tree
from s2s_cli.training.runner import train


@pytest.fixture(scope="module")
def checkpointed(prepared_run, tmp_path_factory) -> RunDir:
    """A tiny run validated every 2 steps, keeping its last 3 checkpoints (steps 4, 6, 8)."""
    run = RunDir(tmp_path_factory.mktemp("averaging") / "run")
    shutil.copytree(prepared_run.path, run.path)
    train(run, tiny_config(run, max_steps=8, epochs=50, valid_every=2, keep=3))
    return run


def weights_at(run: RunDir, step: int) -> list[np.ndarray]:
    config = run.load_config()
    model = build_model(config.model, *_vocab_sizes(run), config.train.precision)
    tf.train.Checkpoint(model=variable_tree(model)).read(checkpoint_steps(run)[step]).expect_partial()
    return [w.numpy() for w in model.weights]


def _vocab_sizes(run: RunDir) -> tuple[int, int]:
    return tuple(
        len(json.loads((run.tokenizer_dir() / f"{side}.json").read_text())["tokens"]) for side in ("src", "tgt")
    )


def test_two_checkpoints_average_to_their_mean(checkpointed, tmp_path):
    run = RunDir(tmp_path / "run")
    shutil.copytree(checkpointed.path, run.path)
    best_bytes = run.weights_path.read_bytes()
    result = average(run, steps=[4, 8])
    assert result.steps == [4, 8] and result.best_step == run.history()[-1].best_step
    config = run.load_config()
    model = build_model(config.model, *_vocab_sizes(run), config.train.precision)
    model.load_weights(run.weights_path)
    for averaged, a, b in zip(model.weights, weights_at(run, 4), weights_at(run, 8)):
        np.testing.assert_allclose(averaged.numpy(), (a + b) / 2, rtol=1e-6, atol=1e-7)
    assert run.file("model.unaveraged.weights.h5").read_bytes() == best_bytes
    run.verify_manifest()
    assert run.average()["steps"] == [4, 8]
    average(run, last=3)  # again: the best step's weights stay the unaveraged ones
    assert run.file("model.unaveraged.weights.h5").read_bytes() == best_bytes and run.average()["steps"] == [4, 6, 8]


def test_average_through_the_cli_reports_validation_bleu(checkpointed, tmp_path):
    run = RunDir(tmp_path / "run")
    shutil.copytree(checkpointed.path, run.path)
    result = CliRunner().invoke(app, ["average", "-r", str(run.path), "--last", "2", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["steps"] == [6, 8] and 0 <= summary["bleu"] <= 100
    translated = CliRunner().invoke(app, ["translate", "-r", str(run.path), "--beam", "1", "hello"])
    assert translated.exit_code == 0, translated.output


def test_a_missing_step_names_the_ones_kept(checkpointed):
    with pytest.raises(RunDirError, match="no checkpoint of step 2: it keeps steps 4, 6, 8"):
        average(checkpointed, steps=[2, 4])
