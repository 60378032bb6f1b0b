"""--strategy: two worker processes on localhost train one model with MultiWorkerMirroredStrategy (TF_CONFIG)."""

import json
import os
import shutil
import socket
import subprocess
import sys

import pytest
from helpers import TINY_MODEL, TINY_TRAIN, tiny_config
from typer.testing import CliRunner

from s2s_cli.cli import app
from s2s_cli.rundir import RunDir
from s2s_cli.training.checkpoints import list_checkpoints, weights_digest
from s2s_cli.training.runner import build_trainer, train

STEPS = 6


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_two_workers_train_the_same_model(run):
    workers = [f"localhost:{port}" for port in free_ports(2)]
    options = [f"--{k.replace('_', '-')}={v}" for k, v in TINY_MODEL.items()]
    command = [sys.executable, "-m", "s2s_cli", "train", "--run-dir", str(run.path), "--strategy", "multi-worker"]
    command += ["--max-steps", str(STEPS), "--batch-tokens", "512", "--warmup", "10", "--json", *options]
    procs = []
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        env = {**os.environ, "TF_CONFIG": json.dumps(tf_config), "TF_CPP_MIN_LOG_LEVEL": "2"}
        procs.append(subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=240)
            assert proc.returncode == 0, err[-3000:]
            outputs.append(json.loads(out))
    finally:
        for proc in procs:
            proc.kill()
    chief, worker = outputs
    assert chief["replicas"] == worker["replicas"] == 2
    assert chief["steps"] == worker["steps"] == STEPS
    assert chief["weights_sha256"] == worker["weights_sha256"]  # the replicas stayed identical
    assert chief["train_loss"] == worker["train_loss"]

    # Only the chief wrote the run dir: one history line per validation, and its checkpoint is the trained model.
    history = run.history_path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["step"] for line in history][-1] == STEPS
    assert len(history) == len({json.loads(line)["step"] for line in history})
    assert list_checkpoints(run)[-1].endswith(f"ckpt-{STEPS}")
    trainer = build_trainer(run, run.load_config().with_overrides({}, {"strategy": "one"}))
    trainer.resume()
    assert trainer.state.step == STEPS and weights_digest(trainer.model) == chief["weights_sha256"]
    with run.training_lock():  # released by the chief
        pass


def test_mirrored_on_one_device_trains_like_one(prepared_run, tmp_path):
    digests = []
    for strategy in ("one", "mirrored"):
        run = RunDir(tmp_path / strategy)
        shutil.copytree(prepared_run.path, run.path)
        result = train(run, tiny_config(run, max_steps=3, strategy=strategy))
        assert result.replicas == 1
        digests.append(result.weights_sha256)
    assert digests[0] == digests[1]


MIRRORED_TWO_CPUS = """
import json, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from s2s_cli.rundir import RunDir
from s2s_cli.training.runner import train
run = RunDir(sys.argv[1])
config = run.load_config().with_overrides(json.loads(sys.argv[2]), json.loads(sys.argv[3]))
result = train(run, config)
print(json.dumps({"replicas": result.replicas, "train_loss": result.train_loss, "valid_loss": result.valid_loss,
                  "steps": result.steps}))
"""


@pytest.mark.parametrize("accum", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_mirrored_over_two_logical_cpus_splits_each_batch(prepared_run, tmp_path, accum):
    """Two replicas in one process (TF must be configured before it starts, hence a subprocess); with and without
    gradient accumulation. No dropout: the replicas would draw other masks than one device."""
    model = {**TINY_MODEL, "dropout": 0.0}
    train_options = {**TINY_TRAIN, "max_steps": 4, "strategy": "mirrored", "accum_steps": accum}
    runs = [RunDir(tmp_path / name) for name in ("two", "one")]
    for run in runs:
        shutil.copytree(prepared_run.path, run.path)
    proc = subprocess.run(
        [sys.executable, "-c", MIRRORED_TWO_CPUS, str(runs[0].path), json.dumps(model), json.dumps(train_options)],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    two = json.loads(proc.stdout.splitlines()[-1])
    one = train(runs[1], tiny_config(runs[1], model, max_steps=4, accum_steps=accum))
    assert two["replicas"] == 2 and two["steps"] == one.steps == 4
    # The same global batches and summed gradients, up to the order of float sums (which Adam's first, almost
    # sign-sized steps amplify)
    assert two["train_loss"] == pytest.approx(one.train_loss, abs=0.01)
    assert two["valid_loss"] == pytest.approx(one.valid_loss, abs=0.01)
    assert list_checkpoints(runs[0])[-1].endswith("ckpt-4")


def test_multi_worker_without_tf_config_is_a_clear_error(run, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    result = CliRunner().invoke(app, ["train", "--run-dir", str(run.path), "--strategy", "multi-worker"])
    assert result.exit_code == 1 and "TF_CONFIG" in result.output
    assert not run.has_weights()


def test_bad_tf_config_is_a_clear_error(run, monkeypatch):
    monkeypatch.setenv("TF_CONFIG", "{not json")
    result = CliRunner().invoke(app, ["train", "--run-dir", str(run.path), "--strategy", "auto"])
    assert result.exit_code == 1 and "TF_CONFIG is not valid" in result.output


def test_unknown_strategy_is_a_usage_error_listing_the_choices(run):
    result = CliRunner().invoke(app, ["train", "--run-dir", str(run.path), "--strategy", "tpu"])
    text = " ".join(result.output.replace("│", " ").split())
    assert result.exit_code == 2 and "'tpu' is not one of 'auto', 'one', 'mirrored', 'multi-worker'" in text
