"""prepare(): a corpus -> a run dir; over-long training pairs dropped; a failed --force leaves the old run dir."""

from pathlib import Path

import pytest

from s2s_cli.config import DataConfig
from s2s_cli.data.prepare import prepare
from s2s_cli.errors import DataError
from s2s_cli.rundir import RunDir


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_over_long_lines_are_dropped_by_max_len_or_unread(tmp_path):
    lines = [f"sentence number {i}\t第{i}句" for i in range(30)]
    lines += ["word " * 10_000 + "\t很长", "word " * 200_000 + "\t很长"]  # 50 KB: 10,000 words; 1 MB
    corpus = write(tmp_path / "c.tsv", ("\n".join(lines) + "\n").encode())
    data = DataConfig(tokenizer="word", valid_size=0, test_size=0)  # every pair goes to train
    result = prepare(corpus, None, tmp_path / "run", data)
    assert result.too_long == 1 and result.stats.dropped == {"line over 64 KiB": 1}
    assert result.split_sizes["train"] == 30
    assert "word word" not in (tmp_path / "run" / "data" / "train.src").read_text()


def test_failed_forced_prepare_leaves_the_old_run_dir(tmp_path, monkeypatch):
    corpus = write(tmp_path / "c.tsv", "".join(f"s{i}\tt{i}\n" for i in range(20)).encode())
    data = DataConfig(tokenizer="char", valid_size=2, test_size=2)
    prepare(corpus, None, tmp_path / "run", data)
    before = {p.relative_to(tmp_path): p.read_bytes() for p in (tmp_path / "run").rglob("*") if p.is_file()}
    before[Path("run/train.lock")] = b""  # a forced prepare takes the run dir's training lock
    with pytest.raises(DataError):
        prepare(tmp_path / "missing.tsv", None, tmp_path / "run", data, force=True)

    def disk_full(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(RunDir, "write_manifest", disk_full)
    with pytest.raises(OSError):
        prepare(corpus, None, tmp_path / "run", data, force=True)
    after = {p.relative_to(tmp_path): p.read_bytes() for p in (tmp_path / "run").rglob("*") if p.is_file()}
    assert after == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.tsv", "run"]  # no staging dir left behind
