"""The training loop through `train()`: history, best weights, resume, signals, stopping rules, run-dir safety."""

import json
import os
import shutil
import signal
from types import SimpleNamespace

import numpy as np
import pytest
import tensorflow as tf
from helpers import TINY_MODEL, TINY_TRANSFORMER, tiny_config

from s2s_cli.errors import RunDirError, TrainingError, TrainingInterrupted
from s2s_cli.rundir import RunDir
from s2s_cli.training import checkpoints
from s2s_cli.training.runner import build_trainer, plan_config, train
from s2s_cli.training.trainer import SilentProgress


def weights_of(run: RunDir) -> list[np.ndarray]:
    import h5py

    with h5py.File(run.weights_path) as f:
        arrays = []
        f.visititems(lambda name, obj: arrays.append(obj[()]) if hasattr(obj, "shape") else None)
    return arrays


def checkpoint_variables(prefix: str) -> dict[str, np.ndarray]:
    """Every variable a checkpoint holds (model, optimizer, dropout seeds), by its name in the checkpoint."""
    reader = tf.train.load_checkpoint(prefix)
    names = [n for n in reader.get_variable_to_shape_map() if n.startswith(("model/", "optimizer/"))]
    return {name: reader.get_tensor(name) for name in names}


def test_trained_run_has_history_best_weights_and_manifest(trained_run):
    history = trained_run.history()
    assert [r.epoch for r in history] == [1, 2]
    assert history[-1].valid_loss < history[0].valid_loss
    assert history[-1].best_step in [r.step for r in history]
    assert all(r.loss_seconds > 0 and r.translate_seconds > 0 for r in history)
    assert trained_run.has_weights()
    trained_run.verify_manifest()
    assert len(checkpoints.list_checkpoints(trained_run)) == 2
    assert any(trained_run.logs_dir.iterdir())


@pytest.mark.parametrize("model", [TINY_MODEL, TINY_TRANSFORMER], ids=["rnn", "transformer"])
def test_training_lowers_the_validation_loss_of_the_untrained_model(run, model):
    trainer = build_trainer(run, tiny_config(run, model, epochs=3))
    untrained = trainer.validator.loss()
    trainer.fit()
    assert trainer.validator.loss() < untrained - 0.3


def test_interrupted_and_resumed_training_ends_with_the_same_weights(run, tmp_path):
    other = RunDir(tmp_path / "uninterrupted")
    shutil.copytree(run.path, other.path)
    full = train(other, tiny_config(other, max_steps=6, epochs=5))
    train(run, tiny_config(run, max_steps=3, epochs=5))
    resumed = train(run, tiny_config(run, max_steps=6, epochs=5), resume=True)
    assert full.steps == resumed.steps == 6 and full.weights_sha256 == resumed.weights_sha256
    a, b = (checkpoint_variables(checkpoints.list_checkpoints(r)[-1]) for r in (run, other))
    assert a.keys() == b.keys() and any("seed_generator" in name for name in a)  # dropout masks resume too
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_resume_refuses_a_different_model(trained_run):
    with pytest.raises(TrainingError, match="hidden changed"):
        plan_config(trained_run, {"hidden": 32}, {}, resume=True, force=False)
    config = plan_config(trained_run, {}, {"epochs": 9}, resume=True, force=False)
    assert config.train.epochs == 9 and config.model.hidden == 16


def test_fresh_training_over_a_trained_run_needs_force(trained_run):
    with pytest.raises(TrainingError, match="--resume` continues it"):
        plan_config(trained_run, {}, {}, resume=False, force=False)
    fresh = plan_config(trained_run, {}, {}, resume=False, force=True).model  # the preset, not the saved model
    assert fresh.hidden == 128 and fresh.size == "small"


def test_resume_without_checkpoint_is_an_error(run):
    with pytest.raises(RunDirError, match="no checkpoint to resume from"):
        train(run, tiny_config(run), resume=True)


def test_checkpoints_of_an_older_s2s_are_named_on_resume(run):
    old = run.checkpoints_dir / "ckpt-000000004"
    old.mkdir(parents=True)
    (old / "state.json").write_text("{}")
    (old / "variables.npz").write_bytes(b"")
    with pytest.raises(RunDirError, match="written by an older s2s.*--force"):
        train(run, tiny_config(run), resume=True)
    with pytest.raises(TrainingError, match="already has a trained model"):
        plan_config(run, {}, {}, resume=False, force=False)


def test_a_training_in_progress_locks_the_run_dir(run):
    with run.training_lock():
        with pytest.raises(TrainingError, match="already being trained by another `s2s train`"):
            train(run, tiny_config(run))
        assert not run.has_weights()
    assert train(run, tiny_config(run, max_steps=1)).steps == 1  # released


def test_nan_loss_stops_with_a_clear_error(run, monkeypatch):
    from s2s_cli.training import steps

    original = steps.output_losses
    monkeypatch.setattr(steps, "output_losses", lambda *a: original(*a) * float("nan"))
    with pytest.raises(TrainingError, match="loss became nan at step 1"):
        train(run, tiny_config(run))


class KillAt(SilentProgress):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_step(self, step, *args):
        if step == self.step:
            os.kill(os.getpid(), signal.SIGTERM)


def test_sigterm_saves_a_checkpoint_and_says_how_to_resume(run):
    with pytest.raises(TrainingInterrupted, match="--resume") as caught:
        train(run, tiny_config(run), progress=KillAt(2))
    assert caught.value.exit_code == 143
    saved = checkpoints.list_checkpoints(run)
    assert [os.path.basename(p) for p in saved] == ["ckpt-2"]
    trainer = build_trainer(run, run.load_config())
    trainer.resume()
    assert (trainer.state.step, trainer.state.batch) == (2, 2)
    assert train(run, tiny_config(run, max_steps=4), resume=True).steps == 4


def test_failed_weight_save_leaves_previous_weights_loadable(trained_run, tmp_path, monkeypatch):
    run = RunDir(tmp_path / "copy")
    shutil.copytree(trained_run.path, run.path)
    before = weights_of(run)
    trainer = build_trainer(run, run.load_config())

    def half_write(path, *args, **kwargs):
        with open(path, "wb") as f:
            f.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(trainer.model, "save_weights", half_write)
    with pytest.raises(OSError):
        trainer.recorder.save_best_weights(trainer.model)
    assert all(np.array_equal(a, b) for a, b in zip(before, weights_of(run)))
    assert not [p for p in run.path.iterdir() if ".tmp" in p.name]
    run.verify_manifest()


def test_valid_every_validates_on_step_multiples_and_at_the_end(run):
    result = train(run, tiny_config(run, valid_every=3, max_steps=7, epochs=50))
    assert [r.step for r in run.history()] == [3, 6, 7] and result.stopped == "max_steps"


def test_weights_from_another_vocabulary_are_refused(trained_run, tmp_path):
    from s2s_cli.inference.translator import Translator

    run = RunDir(tmp_path / "copy")
    shutil.copytree(trained_run.path, run.path)
    vocab_path = run.tokenizer_dir() / "tgt.json"
    vocab = json.loads(vocab_path.read_text())
    vocab["tokens"] = vocab["tokens"][:-5]  # as if prepared on another corpus
    vocab_path.write_text(json.dumps(vocab, ensure_ascii=False))
    run.write_manifest()  # even with a consistent manifest, the weights must not load
    with pytest.raises(RunDirError, match="does not fit the model described by config.json"):
        Translator.from_run_dir(run)


def test_resume_drops_a_history_line_cut_short_by_a_crash(run):
    train(run, tiny_config(run, max_steps=2, epochs=5))
    with run.history_path.open("a") as f:
        f.write('{"step": 9, "epoch": 1, "bl')
    train(run, tiny_config(run, max_steps=3, epochs=5), resume=True)
    assert [json.loads(line)["step"] for line in run.history_path.read_text().splitlines()] == [2, 3]


def test_training_refuses_a_changed_tokenizer(run):
    vocab = run.tokenizer_dir() / "src.json"
    vocab.write_text(vocab.read_text().replace('"a"', '"b"', 1))
    with pytest.raises(RunDirError, match="src.json differs"):
        train(run, tiny_config(run))


def test_empty_validation_split_is_a_clear_error(tmp_path):
    from helpers import write_sample

    from s2s_cli.config import DataConfig
    from s2s_cli.data.prepare import prepare

    prepare(write_sample(tmp_path / "c.tsv", 40), None, tmp_path / "run", DataConfig(tokenizer="char", valid_size=0))
    run = RunDir(tmp_path / "run")
    with pytest.raises(TrainingError, match="valid.src is empty.*--valid-size > 0"):
        train(run, tiny_config(run))


def test_auto_precision_and_warmup_are_resolved_in_the_saved_config(run, monkeypatch):
    monkeypatch.setattr("s2s_cli.training.precision.detect_precision", lambda: "bf16")
    trainer = build_trainer(run, tiny_config(run, warmup=None))
    steps_per_epoch = trainer.updates_per_epoch()
    assert 1 < steps_per_epoch < 100  # so that three epochs of warm-up are fewer than 400 steps
    train(run, tiny_config(run, precision="auto", warmup=None, max_steps=3))
    saved = run.load_config().train
    assert saved.precision == "bf16"
    assert saved.warmup == 3 * steps_per_epoch  # three epochs, not a share of the 3 steps planned
    train(run, tiny_config(run, warmup=None, max_steps=1, batch_tokens=16))  # one pair a batch
    assert run.load_config().train.warmup == 400


def test_default_warmup_is_400_steps_or_three_epochs_of_a_small_corpus():
    from s2s_cli.training.schedules import default_warmup

    assert default_warmup(9) == 27  # the sample corpus: 9 batches an epoch
    assert default_warmup(200) == 400
    assert default_warmup(0) == 1


def test_a_run_stopped_and_extended_follows_the_straight_schedule(run, tmp_path):
    other = RunDir(tmp_path / "straight")
    shutil.copytree(run.path, other.path)
    straight = train(other, tiny_config(other, warmup=None, max_steps=40, epochs=50))
    train(run, tiny_config(run, warmup=None, max_steps=20, epochs=50))
    extended = train(run, run.load_config().with_overrides({}, {"max_steps": 40}), resume=True)
    assert run.load_config().train.warmup == other.load_config().train.warmup
    assert extended.weights_sha256 == straight.weights_sha256


@pytest.mark.slow  # CI runs it with the slow tests
def test_kill_9_loses_at_most_the_steps_since_the_last_periodic_checkpoint(run, tmp_path):
    import subprocess
    import sys
    import time

    from helpers import TINY_MODEL

    other = RunDir(tmp_path / "straight")
    shutil.copytree(run.path, other.path)
    straight = train(other, tiny_config(other, max_steps=30, epochs=50))
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in TINY_MODEL.items()]
    flags += ["--batch-tokens=512", "--lr=3e-3", "--warmup=10", "--patience=0", "--precision=float32"]
    command = [sys.executable, "-m", "s2s_cli", "train", "-r", str(run.path), "--epochs=50", *flags]
    killed = subprocess.Popen([*command, "--max-steps=100000", "--save-every=5"], stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while not any(int(p.rsplit("-", 1)[1]) >= 10 for p in checkpoints.list_checkpoints(run)):
            assert time.monotonic() < deadline and killed.poll() is None
            time.sleep(0.05)
    finally:
        killed.send_signal(signal.SIGKILL)
        killed.wait()
    assert killed.returncode == -signal.SIGKILL
    resumed = subprocess.run([*command, "--resume", "--max-steps=30", "--json"], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert json.loads(resumed.stdout)["weights_sha256"] == straight.weights_sha256


def test_validation_decodes_the_whole_validation_split_by_default(run, monkeypatch):
    from s2s_cli.inference.translator import Translator

    decoded = []
    original = Translator.translate
    monkeypatch.setattr(
        Translator, "translate", lambda self, texts, **kw: decoded.append(len(texts)) or original(self, texts, **kw)
    )
    train(run, tiny_config(run, max_steps=1, valid_max_sentences=0))
    assert decoded == [20]  # every validation sentence
    decoded.clear()
    train(run, tiny_config(run, max_steps=1, valid_max_sentences=7))
    assert decoded == [7]


class FakeSplit:
    """A training split of a given size, for sizing the model without writing millions of pairs."""

    pairs = 0

    def __init__(self, *args) -> None:
        pass

    def __len__(self) -> int:
        return self.pairs


@pytest.mark.parametrize(
    "pairs, size, d_model", [(3_000, "small", 128), (29_000, "medium", 256), (2_000_000, "base", 512)]
)
def test_a_fresh_training_sizes_the_model_from_the_corpus_and_explicit_options_win(
    run, monkeypatch, pairs, size, d_model
):
    from s2s_cli.training import runner

    monkeypatch.setattr(runner, "ShardPairs", type("Split", (FakeSplit,), {"pairs": pairs}))
    auto = plan_config(run, {}, {}, resume=False, force=False).model
    assert (auto.size, auto.d_model) == (size, d_model)
    given = plan_config(run, {"layers": 1, "heads": 2}, {}, resume=False, force=False).model
    assert (given.size, given.d_model, given.layers, given.heads) == (size, d_model, 1, 2)
    chosen = plan_config(run, {"size": "small"}, {}, resume=False, force=False).model
    assert (chosen.size, chosen.d_model) == ("small", 128)
    run.save_config(plan_config(run, {}, {}, resume=False, force=False))
    assert run.load_config().model == auto  # what config.json records
    train = plan_config(run, {}, {}, resume=False, force=False).train
    expected = {
        "small": (2048, 2e-3, None, "inverse-sqrt", 0.1),
        "medium": (4096, 2e-3, None, "cosine", 0.2),
        "base": (4096, 5e-4, 4000, "inverse-sqrt", 0.1),
    }[size]
    assert (train.batch_tokens, train.lr, train.warmup, train.schedule, train.label_smoothing) == expected
    assert plan_config(run, {}, {"batch_tokens": 512}, resume=False, force=False).train.batch_tokens == 512


class _Rates(SilentProgress):
    """Progress that keeps the learning rate of every step, and the plans it was told."""

    def __init__(self) -> None:
        self.rates: list[float] = []
        self.plans: list[int] = []

    def on_step(self, step: int, epoch: int, loss: float, tokens_per_sec: float, lr: float) -> None:
        self.rates.append(lr)

    def on_plan(self, total_steps: int) -> None:
        self.plans.append(total_steps)


def test_a_cosine_schedule_warms_up_then_decays_to_zero_over_the_planned_updates(run, tmp_path):
    progress = _Rates()
    train(run, tiny_config(run, schedule="cosine", warmup=4, max_steps=12, epochs=50, lr=2e-3), progress=progress)
    saved = run.load_config().train
    assert (saved.schedule, saved.decay_steps) == ("cosine", 12)  # the plan, resolved from --max-steps
    rates = progress.rates
    assert len(rates) == 12 and max(rates) == pytest.approx(2e-3)
    peak = rates.index(max(rates))
    assert all(a < b for a, b in zip(rates[:peak], rates[1 : peak + 1]))  # warming up
    assert all(a > b for a, b in zip(rates[peak:], rates[peak + 1 :]))  # then only down
    assert rates[-1] < 0.05 * 2e-3  # to (nearly) zero at the last planned update
    # Resumed with a longer plan, it decays over the new one; by epochs when there is no --max-steps.
    train(run, run.load_config().with_overrides({}, {"max_steps": 20, "decay_steps": None}), resume=True)
    assert run.load_config().train.decay_steps == 20
    other = RunDir(tmp_path / "by-epochs")
    shutil.copytree(run.path, other.path)
    trainer = build_trainer(other, tiny_config(other, schedule="cosine", epochs=3))
    assert trainer.config.train.decay_steps == 3 * trainer.updates_per_epoch()
    assert build_trainer(other, tiny_config(other)).config.train.decay_steps is None  # inverse-sqrt: no plan


def test_a_cosine_bounded_by_minutes_alone_ends_its_decay_with_the_time(run, tmp_path, monkeypatch):
    """The trainer's clock is faked (one second a reading), so that the plan does not depend on the machine."""
    from s2s_cli.training import trainer as trainer_module

    readings = iter(range(10**7))
    monkeypatch.setattr(trainer_module, "time", SimpleNamespace(perf_counter=lambda: float(next(readings))))
    copy = RunDir(tmp_path / "copy")
    shutil.copytree(run.path, copy.path)
    progress = _Rates()
    config = tiny_config(run, schedule="cosine", warmup=4, max_minutes=2, epochs=50, lr=2e-3)
    result = train(run, config, progress=progress)
    saved = run.load_config().train
    assert saved.decay_steps == saved.max_steps == result.steps > 8  # planned, recorded, trained to its end
    assert progress.plans == [result.steps]  # the progress bar is told the new end, once
    assert result.stopped == "max_steps"
    rates = progress.rates
    assert rates.index(max(rates)) == 3 and max(rates) == pytest.approx(2e-3)
    assert all(a > b for a, b in zip(rates[3:], rates[4:]))
    assert rates[-1] < 0.05 * 2e-3  # to (nearly) zero when the time is up, not over the 50 epochs
    # with more time than --epochs need, the decay ends with the epochs
    ample = train(copy, tiny_config(copy, schedule="cosine", warmup=4, max_minutes=600, epochs=3))
    per_epoch = build_trainer(copy, tiny_config(copy)).updates_per_epoch()
    assert copy.load_config().train.decay_steps == ample.steps == 3 * per_epoch


def test_the_training_bar_ends_where_the_decay_was_planned():
    from s2s_cli.console import TrainBar

    with TrainBar() as bar:
        bar.on_start(100, 50, 0, 0)
        assert bar.progress.tasks[0].total == 5000  # the epochs' updates, until a plan says otherwise
        bar.on_plan(1234)
        assert bar.progress.tasks[0].total == 1234


def test_several_workers_bounded_by_minutes_decay_over_the_epochs(run):
    from s2s_cli.training.distribute import MultiWorker, Replicated

    workers = MultiWorker.__new__(MultiWorker)  # one process standing for a chief of several
    Replicated.__init__(workers, tf.distribute.get_strategy())
    trainer = build_trainer(run, tiny_config(run, schedule="cosine", warmup=2, max_minutes=5, epochs=3), None, workers)
    assert trainer.config.train.decay_steps is None and not trainer.clocked.due(10**6)
    assert int(trainer.clocked.length.numpy()) == 3 * trainer.updates_per_epoch() - 2
    assert float(trainer.optimizer.learning_rate) > 0


def test_resuming_with_a_new_plan_replans_the_cosine_decay(run):
    train(run, tiny_config(run, schedule="cosine", warmup=2, max_steps=4, epochs=50))
    kept = plan_config(run, {}, {}, resume=True, force=False)
    assert kept.train.decay_steps == 4
    longer = plan_config(run, {}, {"max_steps": 8}, resume=True, force=False)
    assert longer.train.decay_steps is None  # resolved again from the new --max-steps when training starts
    given = plan_config(run, {}, {"max_steps": 8, "decay_steps": 6}, resume=True, force=False)
    assert given.train.decay_steps == 6
