"""The run dir: manifest checks, history records, the best validation, clear messages for what is missing."""

import dataclasses
import json
import subprocess
import sys

import pytest

from s2s_cli.errors import RunDirError
from s2s_cli.manifest import FORMAT_VERSION
from s2s_cli.rundir import RunDir, Validation


def test_manifest_detects_missing_changed_and_newer(prepared_run, tmp_path):
    import shutil

    run = RunDir(tmp_path / "run")
    shutil.copytree(prepared_run.path, run.path)
    run.verify_manifest()
    manifest = json.loads(run.file("manifest.json").read_text())
    assert "data/train.src" in manifest["files"] and "tokenizers/src.json" in manifest["files"]
    manifest["format_version"] = FORMAT_VERSION + 1
    run.file("manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(RunDirError, match="newer than this s2s"):
        run.verify_manifest()
    run.write_manifest()
    run.split_path("test", "src").unlink()
    with pytest.raises(RunDirError, match="test.src is listed in manifest.json but missing"):
        run.verify_manifest()


def test_missing_run_dir_messages(tmp_path):
    with pytest.raises(RunDirError, match="does not exist: run `s2s prepare"):
        RunDir(tmp_path / "nope").load_config()
    with pytest.raises(RunDirError, match="has no config.json"):
        RunDir(tmp_path).load_config()


def test_real_process_prints_one_clean_error_line(tmp_path):
    """Outside the test runner, TensorFlow's native log lines must not reach the user's stderr."""
    result = subprocess.run(
        [sys.executable, "-m", "s2s_cli", "translate", "--run-dir", str(tmp_path / "none"), "hi"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: run dir {tmp_path / 'none'} does not exist: run `s2s prepare CORPUS --run-dir {tmp_path / 'none'}`."
    ]


def record(step: int, bleu: float, valid_loss: float, best_step: int) -> Validation:
    return Validation(step, 1, 4.0, valid_loss, 9.9, bleu, 30.0, 1000.0, best_step)


def test_history_round_trip_truncation_and_the_best_validation(tmp_path):
    run = RunDir(tmp_path)
    assert run.history() == [] and run.best_validation() is None
    # equal BLEU at steps 2 and 3: training chose 3 by its lower loss, and the best is the step it chose
    records = [record(1, 0.0, 6.0, 1), record(2, 7.0, 5.0, 2), record(3, 7.0, 4.5, 3), record(4, 6.0, 4.4, 3)]
    for r in records:
        run.append_history(r)
    with run.history_path.open("a") as f:
        f.write('{"step": 5, "epoch": 2, "bl')  # cut short by a crash
    assert run.history() == records
    assert run.best_validation() == records[2]
    run.truncate_history(2)
    assert run.history() == records[:2] and run.history_path.read_text().count("\n") == 2


def test_a_history_line_from_before_the_validation_timings_still_loads(tmp_path):
    run = RunDir(tmp_path)
    old = {k: v for k, v in dataclasses.asdict(record(1, 7.0, 5.0, 1)).items() if not k.endswith("_seconds")}
    run.history_path.write_text(json.dumps(old) + "\n")
    assert run.history() == [record(1, 7.0, 5.0, 1)]


def test_the_training_lock_is_exclusive_and_released(tmp_path):
    from s2s_cli.errors import TrainingError

    run = RunDir(tmp_path)
    with run.training_lock(), pytest.raises(TrainingError, match="already being trained"), run.training_lock():
        pass
    with run.training_lock():
        pass
