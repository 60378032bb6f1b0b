import json
import subprocess
import sys

import pytest

from s2s_cli.config import DataConfig, ModelConfig, RunConfig
from s2s_cli.errors import ConfigError, RunDirError
from s2s_cli.rundir import FORMAT_VERSION, RunDir, write_text_atomic


def test_config_round_trip_and_unknown_keys(tmp_path):
    run = RunDir(tmp_path)
    config = RunConfig(data=DataConfig(tgt_lang="zh"), model=ModelConfig(hidden=32))
    run.save_config(config)
    assert run.load_config() == config
    raw = json.loads((tmp_path / "config.json").read_text())
    assert set(raw["versions"]) == {"s2s", "keras", "tensorflow"}
    raw["model"]["colour"] = "blue"
    (tmp_path / "config.json").write_text(json.dumps(raw))
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['colour'\]"):
        run.load_config()


def test_invalid_values_are_config_errors():
    with pytest.raises(ConfigError, match="--cell must be one of lstm, gru"):
        ModelConfig(cell="rnn")
    with pytest.raises(ConfigError, match="--tie-embeddings needs"):
        ModelConfig(arch="rnn", emb_dim=8, hidden=16, tie_embeddings=True)


def test_atomic_write_failure_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "file.txt"
    write_text_atomic(path, "old")

    def fail(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("os.replace", fail)
    with pytest.raises(OSError):
        write_text_atomic(path, "new")
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["file.txt"]


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


def test_run_dir_files_follow_the_umask(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        write_text_atomic(tmp_path / "a" / "f.txt", "x")
        from s2s_cli.rundir import make_temp_dir

        made = make_temp_dir(tmp_path, "t-")
    finally:
        os.umask(old)
    assert (tmp_path / "a" / "f.txt").stat().st_mode & 0o777 == 0o644
    assert made.stat().st_mode & 0o777 == 0o755
