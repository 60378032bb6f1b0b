"""Careless and hostile input: nothing lost, nothing destroyed, one clear line and the right exit code."""

import hashlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from helpers import tiny_config, write_sample
from typer.testing import CliRunner

from s2s_cli.cli import app
from s2s_cli.errors import TrainingError, TrainingInterrupted
from s2s_cli.rundir import RunDir
from s2s_cli.training.runner import train

runner = CliRunner()


def invoke(*args, input=None):
    return runner.invoke(app, [str(a) for a in args], input=input)


def one_line(result) -> str:
    """The error line on stderr: exactly one, and no traceback (progress lines may come before it)."""
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.output, result.output
    return errors[0]


def snapshot(root: Path) -> dict[str, str]:
    """Every file under `root` by its hash (symlinks by where they point)."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            out[rel] = "-> " + os.readlink(path)
        elif path.is_file():
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@pytest.fixture
def trained(trained_run, tmp_path) -> RunDir:
    run = RunDir(tmp_path / "trained")
    shutil.copytree(trained_run.path, run.path)
    return run


# --- output paths ------------------------------------------------------------------------------------------------
def test_evaluate_output_writes_through_devices_symlinks_and_fifos(trained, tmp_path):
    assert invoke("evaluate", "-r", trained.path, "--beam", "1", "-o", "/dev/null").exit_code == 0
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    target = tmp_path / "hyps.txt"
    link = tmp_path / "link.txt"
    target.write_text("old\n")
    link.symlink_to(target)
    assert invoke("evaluate", "-r", trained.path, "--beam", "1", "-o", link).exit_code == 0
    assert link.is_symlink() and len(target.read_text(encoding="utf-8").splitlines()) == 20
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text(encoding="utf-8")))
    reader.start()
    assert invoke("evaluate", "-r", trained.path, "--beam", "1", "-o", fifo).exit_code == 0
    reader.join(timeout=60)
    assert stat.S_ISFIFO(fifo.stat().st_mode) and got[0] == target.read_text(encoding="utf-8")


def test_a_full_disk_is_one_line(trained):
    result = invoke("evaluate", "-r", trained.path, "--beam", "1", "-o", "/dev/full")
    assert result.exit_code == 1 and "No space left on device" in one_line(result)
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)


# --- --force deletes only what is ours -------------------------------------------------------------------------
def test_export_force_refuses_folders_that_are_not_exports(trained, tmp_path, monkeypatch):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.txt").write_text("years of work")
    before = snapshot(tmp_path)
    for out, cwd, message in [
        (mine, tmp_path, "is not an s2s export"),
        (tmp_path, Path("/"), "holds"),  # the run dir's parent
        (Path("."), mine, "current directory"),
    ]:
        monkeypatch.chdir(cwd)
        result = invoke("export", out, "-r", trained.path, "--force")
        assert result.exit_code == 1 and message in one_line(result), out
    assert snapshot(tmp_path) == before


def test_prepare_force_replaces_only_run_dirs(tmp_path, monkeypatch):
    data = tmp_path / "mydata"
    data.mkdir()
    corpus = write_sample(data / "corpus.tsv", 60)
    (data / "notes.txt").write_text("mine")
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    before = snapshot(tmp_path)
    result = invoke("prepare", corpus, "--run-dir", data, "--force", "--tokenizer", "char")
    assert result.exit_code == 1 and "holds" in one_line(result)
    result = invoke("prepare", corpus, "--run-dir", other, "--force", "--tokenizer", "char")
    assert result.exit_code == 1 and "is not an s2s run dir" in one_line(result)
    monkeypatch.chdir(other)
    result = invoke("prepare", corpus, "--run-dir", ".", "--force", "--tokenizer", "char")
    assert result.exit_code == 1 and "current directory" in one_line(result)
    assert snapshot(tmp_path) == before


def test_prepare_force_waits_for_a_training_in_progress(trained, tmp_path):
    corpus = write_sample(tmp_path / "corpus.tsv", 60)
    with trained.training_lock():
        before = snapshot(trained.path)
        result = invoke("prepare", corpus, "-r", trained.path, "--force", "--tokenizer", "char")
    assert result.exit_code == 1 and "already being trained" in one_line(result)
    assert snapshot(trained.path) == before


# --- train --force keeps the old model until the new one has a checkpoint --------------------------------------
def test_bad_flags_are_usage_errors_that_touch_nothing(trained):
    before = snapshot(trained.path)
    bad = (["--lr", "nan"], ["--lr", "inf"], ["--epochs", "0"], ["--batch-tokens", "1"], ["--dropout", "1.5"])
    more = (["--subword-sampling", "-1"], ["--attention-dropout", "1.5"], ["--activation-dropout", "-0.1"])
    for flags in (*bad, ["--warmup", "-1"], ["--decoder-layers", "-1"], ["--decay-steps", "0"], *more):
        result = invoke("train", "-r", trained.path, "--force", *flags)
        assert result.exit_code == 2 and flags[0] in one_line(result), flags
    assert snapshot(trained.path) == before


def test_subword_sampling_without_sentencepiece_is_refused_before_anything_changes(trained):
    before = snapshot(trained.path)  # prepared with --tokenizer char
    result = invoke("train", "-r", trained.path, "--force", "--subword-sampling", "0.5")
    assert result.exit_code == 1 and "--subword-sampling needs SentencePiece tokenizers" in one_line(result)
    assert snapshot(trained.path) == before


def test_a_forced_training_that_fails_before_its_first_checkpoint_puts_the_old_model_back(trained, monkeypatch):
    before = snapshot(trained.path)
    from s2s_cli.training import steps

    original = steps.output_losses
    monkeypatch.setattr(steps, "output_losses", lambda *a: original(*a) * float("nan"))
    with pytest.raises(TrainingError, match="no checkpoint was saved yet"):
        train(trained, tiny_config(trained, max_steps=3))
    assert snapshot(trained.path) == before
    trained.verify_manifest()


def test_a_signal_while_the_data_loads_stops_at_once_and_keeps_the_old_model(trained, monkeypatch):
    before = snapshot(trained.path)
    from s2s_cli.training import runner

    def interrupted_load(*args):
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("the signal should have stopped the load")

    monkeypatch.setattr(runner, "load_training_data", interrupted_load)
    with pytest.raises(TrainingInterrupted, match="nothing was saved") as caught:
        train(trained, tiny_config(trained))
    assert caught.value.exit_code == 143 and snapshot(trained.path) == before


def test_a_forced_training_replaces_the_old_model_and_leaves_no_copy(trained):
    old_history = trained.history()
    train(trained, tiny_config(trained, max_steps=2))
    assert trained.history() != old_history and not (trained.path / ".previous-training").exists()
    trained.verify_manifest()


# --- the manifest is checked, not trusted -----------------------------------------------------------------------
@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda m: m["files"].update({"../../../../etc/passwd": "0" * 64}), "not relative|not inside"),
        (lambda m: m.update(files={}), "does not cover"),
        (lambda m: m.update(files=[]), "damaged"),
    ],
)
def test_a_damaged_manifest_is_refused_in_one_line(trained, damage, message):
    import re

    path = trained.file("manifest.json")
    manifest = json.loads(path.read_text())
    damage(manifest)
    path.write_text(json.dumps(manifest))
    result = invoke("translate", "-r", trained.path, "hello")
    assert result.exit_code == 1 and re.search(message, one_line(result))


def test_config_json_is_covered_by_the_manifest(trained):
    config = trained.file("config.json")
    config.write_text(config.read_text().replace('"valid_beam": 1', '"valid_beam": 2'))
    result = invoke("translate", "-r", trained.path, "hello")
    assert result.exit_code == 1 and "config.json differs" in one_line(result)


def test_train_force_rebuilds_a_corrupt_manifest(trained):
    trained.file("manifest.json").write_text("{not json")
    assert invoke("translate", "-r", trained.path, "hi").exit_code == 1
    result = invoke("train", "-r", trained.path, "--force", "--max-steps", "1", "--arch", "rnn", "--layers", "1")
    assert result.exit_code == 0, result.output
    trained.verify_manifest()


def test_a_symlinked_checkpoints_folder_is_not_followed(trained, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("mine")
    shutil.rmtree(trained.checkpoints_dir)
    trained.checkpoints_dir.symlink_to(outside)
    train(trained, tiny_config(trained, max_steps=1))
    assert [p.name for p in outside.iterdir()] == ["keep.txt"] and not trained.checkpoints_dir.is_symlink()


# --- config.json is range-checked like the flags ---------------------------------------------------------------
@pytest.mark.parametrize(
    "key, value, message",
    [
        ("layers", "3", "'model.layers' must be an integer"),
        ("layers", 10_000, "'model.layers' must be <="),
        ("dropout", None, "'model.dropout' must be a number"),
    ],
)
def test_a_bad_value_in_config_json_names_the_file_and_key(trained, key, value, message):
    path = trained.file("config.json")
    config = json.loads(path.read_text())
    config["model"][key] = value
    path.write_text(json.dumps(config))
    trained.write_manifest()  # consistent, yet the value is bad
    result = invoke("translate", "-r", trained.path, "hello")
    assert result.exit_code == 1 and "config.json" in one_line(result) and message in one_line(result)


# --- prepare: files that are not corpora --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: shutil.copy(sys.executable, p), "not a text file"),
        (lambda p: p.write_bytes("Hello\tHallo\n".encode("utf-16")), "UTF-16"),
        (lambda p: p.write_bytes(b"\x1f\x8b\x08\x00" + bytes(60)), "gzip"),
        (lambda p: os.mkfifo(p), "not a regular file"),
    ],
    ids=["binary", "utf-16", "gzip", "fifo"],
)
def test_prepare_names_what_a_file_is_instead_of_a_corpus(tmp_path, make, message):
    path = tmp_path / "corpus.tsv"
    make(path)
    result = invoke("prepare", path, "-r", tmp_path / "run")
    assert result.exit_code == 1 and message in one_line(result)
    assert not (tmp_path / "run").exists()


def test_a_line_over_64_kib_is_dropped_unread(tmp_path):
    lines = [f"sentence number {i}\t第{i}句" for i in range(40)] + ["word " * 40_000 + "\t很长"]
    corpus = tmp_path / "c.tsv"
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = invoke("prepare", corpus, "-r", tmp_path / "run", "--json", "--valid-size", "2", "--test-size", "2")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["dropped"] == {"line over 64 KiB": 1}


# --- translate: stdin and stdout ------------------------------------------------------------------------------------
def test_translate_invalid_utf8_on_stdin_names_the_line(trained):
    result = runner.invoke(app, ["translate", "-r", str(trained.path), "-"], input=b"hello\n\xff\xfe\n")
    assert result.exit_code == 1 and "stdin:2: invalid UTF-8" in one_line(result)


def test_translate_with_no_text_reads_piped_stdin(trained):
    result = invoke("translate", "-r", trained.path, "--beam", "1", input="I eat apples.\nHello.\n")
    assert result.exit_code == 0 and len(result.stdout.splitlines()) == 2


def test_a_beam_wider_than_the_vocabulary_is_one_line(trained):
    result = invoke("translate", "-r", trained.path, "--beam", "100000", "hello")
    assert result.exit_code == 1 and "larger than the target vocabulary" in one_line(result)


def test_translate_into_a_closed_pipe_exits_quietly(trained, tmp_path):
    source = tmp_path / "in.txt"
    source.write_text("I eat apples.\n" * 2000, encoding="utf-8")
    command = f"{sys.executable} -m s2s_cli translate -r '{trained.path}' --beam 1 -i '{source}' | head -1"
    result = subprocess.run(["bash", "-o", "pipefail", "-c", command], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and len(result.stdout.splitlines()) == 1
    assert "Traceback" not in result.stderr and "error" not in result.stderr


def test_translate_onto_a_full_disk_is_one_line(trained):
    command = f"{sys.executable} -m s2s_cli translate -r '{trained.path}' --beam 1 hello > /dev/full"
    result = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=300)
    assert result.returncode == 1 and result.stderr.count("error:") == 1 and "No space left" in result.stderr
    assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr


def test_translate_with_stdin_closed_is_a_usage_error(trained):
    command = [sys.executable, "-m", "s2s_cli", "translate", "-r", str(trained.path), "-"]
    result = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stdout == ""  # an empty stdin: nothing to translate
    result = subprocess.run(
        ["bash", "-c", " ".join(f"'{c}'" for c in command) + " <&-"], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 2 and "stdin is closed" in result.stderr and "Traceback" not in result.stderr


# --- recovery advice agrees with itself -------------------------------------------------------------------------
def test_weights_without_checkpoints_get_one_piece_of_advice(trained):
    shutil.rmtree(trained.checkpoints_dir)
    for args in (["train"], ["train", "--resume"]):
        result = invoke(*args, "-r", trained.path)
        assert result.exit_code == 1 and "`s2s train --force` starts over" in one_line(result), args


def test_file_system_errors_are_one_line(trained, monkeypatch):
    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(trained.lock_path))

    monkeypatch.setattr(RunDir, "training_lock", denied)
    result = invoke("train", "-r", trained.path, "--force")
    assert result.exit_code == 1 and "Permission denied" in one_line(result)


def test_a_crash_message_from_native_code_reaches_the_terminal():
    code = (
        "import os\nfrom s2s_cli import console\n"
        "with console.native_logs_filtered():\n"
        "    os.write(2, b'I0000 00:00 port.cc:153] oneDNN custom operations are on.\\n')\n"
        "    os.write(2, b'F0000 00:00 op.cc:9] Check failed: rank >= 0\\n')\n"
        "    os.abort()\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == -signal.SIGABRT
    assert "Check failed: rank >= 0" in result.stderr and "oneDNN" not in result.stderr


@pytest.mark.parametrize(
    "command", [["translate", "hi"], ["train"], ["evaluate"], ["export", "out"], ["prepare", "c.tsv"]]
)
def test_a_run_dir_that_is_a_symlink_loop_is_one_line(tmp_path, monkeypatch, command):
    monkeypatch.chdir(tmp_path)
    write_sample(tmp_path / "c.tsv", 50)
    Path("loop").symlink_to("loop")
    result = invoke(*command, "-r", "loop", *(["--force"] if command[0] == "prepare" else []))
    assert result.exit_code == 1 and "symlink that leads nowhere" in one_line(result)
