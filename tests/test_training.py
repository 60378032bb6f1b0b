import dataclasses
import json
import os
import shutil
import signal

import numpy as np
import pytest
from conftest import tiny_config

from s2s_cli import checkpoints, training
from s2s_cli.errors import RunDirError, TrainingError
from s2s_cli.rundir import RunDir
from s2s_cli.training import TrainingInterrupted, plan_config, train, train_lock


@pytest.fixture
def run(prepared_run, tmp_path):
    copy = RunDir(tmp_path / "run dir ü")  # spaces and non-ASCII in the path must work
    shutil.copytree(prepared_run.path, copy.path)
    return copy


def weights_of(run: RunDir) -> list[np.ndarray]:
    import h5py

    with h5py.File(run.weights_path) as f:
        arrays = []
        f.visititems(lambda name, obj: arrays.append(obj[()]) if hasattr(obj, "shape") else None)
    return arrays


def test_trained_run_has_history_best_weights_and_manifest(trained_run):
    history = [json.loads(line) for line in trained_run.history_path.read_text().splitlines()]
    assert [r["epoch"] for r in history] == [1, 2]
    assert history[-1]["valid_loss"] < history[0]["valid_loss"]
    assert {"bleu", "chrf", "ppl", "tgt_tokens_per_sec", "best_step"} <= set(history[0])
    assert trained_run.has_weights()
    trained_run.verify_manifest()
    assert len(checkpoints.list_checkpoints(trained_run)) == 2
    assert any(trained_run.logs_dir.iterdir())


def test_interrupted_and_resumed_training_ends_with_the_same_weights(run, tmp_path):
    other = RunDir(tmp_path / "uninterrupted")
    shutil.copytree(run.path, other.path)
    full = train(other, tiny_config(other, max_steps=6, epochs=5))
    train(run, tiny_config(run, max_steps=3, epochs=5))
    resumed = train(run, tiny_config(run, max_steps=6, epochs=5), resume=True)
    assert full.steps == resumed.steps == 6
    last = [checkpoints.list_checkpoints(r)[-1] for r in (run, other)]
    with np.load(last[0] / "variables.npz") as a, np.load(last[1] / "variables.npz") as b:
        assert a.files == b.files
        for name in a.files:
            np.testing.assert_array_equal(a[name], b[name])


def test_resume_refuses_a_different_model(trained_run):
    with pytest.raises(TrainingError, match="hidden changed"):
        plan_config(trained_run, {"hidden": 32}, {}, resume=True, force=False)
    config = plan_config(trained_run, {}, {"epochs": 9}, resume=True, force=False)
    assert config.train.epochs == 9 and config.model.hidden == 16


def test_fresh_training_over_a_trained_run_needs_force(trained_run):
    with pytest.raises(TrainingError, match="--resume` continues it"):
        plan_config(trained_run, {}, {}, resume=False, force=False)
    assert plan_config(trained_run, {}, {}, resume=False, force=True).model.hidden == 256


def test_resume_without_checkpoint_is_an_error(run):
    with pytest.raises(TrainingError, match="no checkpoint to resume from"):
        train(run, tiny_config(run), resume=True)


def test_lock_held_by_a_live_process_blocks_and_a_stale_one_is_taken_over(run):
    run.file("train.lock").write_text(str(os.getppid()))
    with pytest.raises(TrainingError, match=f"process {os.getppid()}"), train_lock(run):
        pass
    run.file("train.lock").write_text("999999999")
    with train_lock(run):
        assert run.file("train.lock").read_text() == str(os.getpid())
    assert not run.file("train.lock").exists()


def test_nan_loss_stops_with_a_clear_error(run, monkeypatch):
    original = training.masked_loss
    monkeypatch.setattr(training, "masked_loss", lambda *a: (original(*a)[0] * float("nan"), original(*a)[1]))
    with pytest.raises(TrainingError, match="loss became nan at step 1"):
        train(run, tiny_config(run))


class KillAt:
    def __init__(self, step: int) -> None:
        self.step = step

    def on_start(self, *args):
        pass

    def on_step(self, step, *args):
        if step == self.step:
            os.kill(os.getpid(), signal.SIGTERM)

    def on_validation(self, record):
        pass


def test_sigterm_saves_a_checkpoint_and_says_how_to_resume(run):
    with pytest.raises(TrainingInterrupted, match="--resume") as caught:
        train(run, tiny_config(run), progress=KillAt(2))
    assert caught.value.exit_code == 143
    saved = checkpoints.list_checkpoints(run)
    assert [p.name for p in saved] == ["ckpt-000000002"]
    assert json.loads((saved[0] / "state.json").read_text())["batch"] == 2
    assert train(run, tiny_config(run, max_steps=4), resume=True).steps == 4


def test_failed_weight_save_leaves_previous_weights_loadable(trained_run, tmp_path, monkeypatch):
    run = RunDir(tmp_path / "copy")
    shutil.copytree(trained_run.path, run.path)
    before = weights_of(run)
    trainer = training.Trainer(run, run.load_config(), training.SilentProgress())

    def half_write(path, *args, **kwargs):
        with open(path, "wb") as f:
            f.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(trainer.model, "save_weights", half_write)
    with pytest.raises(OSError):
        trainer.save_best_weights()
    assert all(np.array_equal(a, b) for a, b in zip(before, weights_of(run)))
    assert not [p for p in run.path.iterdir() if ".tmp" in p.name]
    run.verify_manifest()


def test_tampered_tokenizer_is_detected(trained_run, tmp_path):
    run = RunDir(tmp_path / "copy")
    shutil.copytree(trained_run.path, run.path)
    vocab = run.tokenizer_dir() / "tgt.json"
    vocab.write_text(vocab.read_text().replace("猫", "狗", 1))
    with pytest.raises(RunDirError, match="tgt.json differs"):
        run.verify_manifest()


def test_valid_every_validates_on_step_multiples_and_at_the_end(run):
    result = train(run, tiny_config(run, valid_every=3, max_steps=7, epochs=50))
    steps = [json.loads(line)["step"] for line in run.history_path.read_text().splitlines()]
    assert steps == [3, 6, 7] and result.stopped == "max_steps"


def test_patience_stops_training(run, monkeypatch):
    scores = iter([5.0, 4.0, 3.0, 2.0, 1.0, 0.0])
    original = training.evaluation.score

    def falling(*args):
        return dataclasses.replace(original(*args), bleu=next(scores))

    monkeypatch.setattr(training.evaluation, "score", falling)
    result = train(run, tiny_config(run, valid_every=1, patience=2, epochs=50))
    assert result.stopped == "patience" and result.steps == 3 and result.best_step == 1
    assert result.best_valid_bleu == 5.0 and result.valid_bleu == 3.0  # the best validation's and the last one's


def test_weights_from_another_vocabulary_are_refused(trained_run, tmp_path):
    from s2s_cli.translation import Translator

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
    steps = [json.loads(line)["step"] for line in run.history_path.read_text().splitlines()]
    assert steps == [2, 3]


def test_training_refuses_a_changed_tokenizer(run):
    vocab = run.tokenizer_dir() / "src.json"
    vocab.write_text(vocab.read_text().replace('"a"', '"b"', 1))
    with pytest.raises(RunDirError, match="src.json differs"):
        train(run, tiny_config(run))


def test_empty_validation_split_is_a_clear_error(tmp_path):
    from conftest import write_sample

    from s2s_cli.config import DataConfig
    from s2s_cli.preparation import prepare

    prepare(write_sample(tmp_path / "c.tsv", 40), None, tmp_path / "run", DataConfig(tokenizer="char", valid_size=0))
    run = RunDir(tmp_path / "run")
    with pytest.raises(TrainingError, match="valid.src is empty.*--valid-size > 0"):
        train(run, tiny_config(run))


def test_bleu_ties_go_to_the_lower_validation_loss():
    score = training.selection_score
    assert training.is_better(score("bleu", 0.0, 4.0), score("bleu", 0.0, 5.0))  # BLEU still 0, loss falling
    assert training.is_better(score("bleu", 1.0, 6.0), score("bleu", 0.0, 4.0))  # BLEU decides first
    assert not training.is_better(score("bleu", 0.0, 5.0), score("bleu", 0.0, 5.0))
    assert not training.is_better(score("loss", 9.0, 5.0), score("loss", 0.0, 4.0))  # --select loss ignores BLEU
    assert training.is_better(score("bleu", 2.0, 5.0), None)
    assert training.is_better(score("bleu", 2.0, 5.0), 1.5)  # a checkpoint's single number from before
    assert not training.is_better(score("bleu", 1.0, 5.0), 1.5)


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ("fpu sse avx512f avx512_bf16 amx_tile", "bf16"),
        ("fpu amx_bf16 amx_tile", "bf16"),
        ("fpu avx2 avx512f", "float32"),
    ],
)
def test_auto_precision_is_bf16_only_where_the_cpu_multiplies_bfloat16(tmp_path, flags, expected):
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("auto precision follows the GPU here")
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
    assert training.detect_precision(cpuinfo) == expected
    assert training.detect_precision(tmp_path / "missing") == "float32"


def test_auto_precision_and_warmup_are_resolved_in_the_saved_config(run):
    train(run, tiny_config(run, precision="auto", warmup=None, max_steps=30))
    saved = run.load_config().train
    assert saved.precision == training.detect_precision()
    assert saved.warmup == 3  # a tenth of the 30 planned steps


def test_default_warmup_is_400_steps_or_a_tenth_of_a_short_training():
    assert training.default_warmup(100_000) == 400
    assert training.default_warmup(270) == 27
    assert training.default_warmup(5) == 1
