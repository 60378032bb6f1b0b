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


@pytest.mark.parametrize("layout", ["tsv", "two files"])
def test_cleaning_a_big_corpus_on_several_processes_gives_what_one_process_gives(tmp_path, monkeypatch, layout):
    from s2s_cli.data import cleaning

    pairs = [(f"Sentence {i % 150}.".encode(), f"第{i % 150}句。".encode()) for i in range(400)]  # duplicates
    pairs[7] = (b"caf\xc3\xa9 ok", b"Cafe\xcc\x81 ok")  # NFC: the second becomes the first's spelling
    pairs[50] = (b"bad \xff byte", b"x")
    pairs[90] = (b"   ", b"empty source")
    pairs[130] = (b"w " * 40_000, b"over 64 KiB")
    pairs[333] = (b"  spaced \t out ", "有 空格".encode())
    if layout == "tsv":
        lines = [src + b"\t" + tgt for src, tgt in pairs] + [b"one column", b"", b"a\tb\textra"]
        corpus, tgt_file = write(tmp_path / "c.tsv", b"\n".join(lines) + b"\n"), None
    else:
        corpus = write(tmp_path / "c.src", b"\n".join(src.replace(b"\t", b" ") for src, _ in pairs) + b"\n")
        tgt_file = write(tmp_path / "c.tgt", b"\n".join(tgt for _, tgt in pairs) + b"\n")
    monkeypatch.setattr(cleaning, "BLOCK_LINES", 37)  # many blocks, in flight on two workers at once
    monkeypatch.setattr("s2s_cli.data.prepare.cpu_count", lambda: 2)
    data = DataConfig(tokenizer="char", valid_size=20, test_size=20)
    results = {}
    for name, parallel_from in (("one", 10**12), ("several", 0)):
        monkeypatch.setattr(cleaning, "PARALLEL_BYTES", parallel_from)
        monkeypatch.setattr("s2s_cli.data.prepare.PARALLEL_FROM", parallel_from)  # encoding the shards too
        results[name] = prepare(corpus, tgt_file, tmp_path / name, data)
    one, several = results["one"].stats, results["several"].stats
    assert (several.read, several.kept, several.dropped, several.examples) == (
        one.read,
        one.kept,
        one.dropped,
        one.examples,
    )
    assert one.dropped["duplicate"] == 400 - 5 - 150 and one.dropped["invalid UTF-8"] == 1
    for split in ("train", "valid", "test"):
        for side in ("src", "tgt"):
            path = Path("data") / f"{split}.{side}"
            assert (tmp_path / "several" / path).read_bytes() == (tmp_path / "one" / path).read_bytes()
    shards = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one" / "data" / "shards").iterdir())
    assert len(shards) >= 12  # ids and offsets of each side of each split, and meta.json
    for path in shards:
        assert (tmp_path / "several" / path).read_bytes() == (tmp_path / "one" / path).read_bytes()
    monkeypatch.setattr(cleaning, "PARALLEL_BYTES", 0)
    with pytest.raises(DataError, match=r":51: invalid UTF-8"):
        prepare(corpus, tgt_file, tmp_path / "strict", data, strict=True)
