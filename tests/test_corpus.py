"""Reading a corpus: TSV or two files, cleaning, drops counted by reason and line, deterministic splits."""

import os
from pathlib import Path

import numpy as np
import pytest

from s2s_cli.data.corpus import TEST, TRAIN, VALID, assign_splits, held_out_sizes, normalize, read_corpus, read_lines
from s2s_cli.errors import DataError


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_tsv_crlf_bom_extra_columns_and_tabs(tmp_path):
    corpus = write(
        tmp_path / "c.tsv",
        "\ufeffHello, world.\t你好，世界。\r\nGo.\tGeh.\tCC-BY 2.0 (France) Attribution: tatoeba.org\r\n".encode(),
    )
    pairs, stats = read_corpus(corpus)
    assert pairs == [("Hello, world.", "你好，世界。"), ("Go.", "Geh.")]
    assert stats.read == 2 and stats.kept == 2 and stats.extra_columns == 1


def test_drops_are_counted_with_line_numbers(tmp_path):
    corpus = write(
        tmp_path / "c.tsv",
        b"a\tb\n\n   \t x\nonly one column\na\tb\nbad \xff\tbyte\nc\td\n",
    )
    pairs, stats = read_corpus(corpus)
    assert pairs == [("a", "b"), ("c", "d")]
    assert stats.dropped == {
        "blank line": 1,
        "empty side": 1,
        "one column": 1,
        "duplicate": 1,
        "invalid UTF-8": 1,
    }
    assert stats.examples["duplicate"] == [5] and stats.examples["invalid UTF-8"] == [6]


def test_strict_names_the_line(tmp_path):
    corpus = write(tmp_path / "c.tsv", b"a\tb\nonly one column\n")
    with pytest.raises(DataError, match=r"c.tsv:2: one column"):
        read_corpus(corpus, strict=True)


def test_normalize_nfc_nul_and_whitespace():
    decomposed = "Cafe\u0301"
    assert normalize(f"  {decomposed}\x00\t  au\tlait ") == "Caf\u00e9 au lait"


def test_parallel_files_and_count_mismatch(tmp_path):
    src = write(tmp_path / "train.en", b"one\ntwo\n")
    tgt = write(tmp_path / "train.de", b"eins\nzwei\n")
    assert read_corpus(src, tgt)[0] == [("one", "eins"), ("two", "zwei")]
    short = write(tmp_path / "short.de", b"eins\n")
    with pytest.raises(DataError, match="has 2 lines but .* has 1"):
        read_corpus(src, short)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p / "missing.tsv", "no such file"),
        (lambda p: p, "is a directory"),
        (lambda p: write(p / "empty.tsv", b""), "is empty"),
        (lambda p: write(p / "blank.tsv", b"\n\n \t \n"), "no usable pairs .* read 3 lines"),
    ],
)
def test_unusable_corpus_is_a_clear_error(tmp_path, make, message):
    with pytest.raises(DataError, match=message):
        read_corpus(make(tmp_path))


def test_split_is_deterministic_and_disjoint():
    roles = assign_splits(100, 10, 5, seed=3)
    assert np.array_equal(roles, assign_splits(100, 10, 5, seed=3))
    assert not np.array_equal(roles, assign_splits(100, 10, 5, seed=4))
    assert [int((roles == r).sum()) for r in (TRAIN, VALID, TEST)] == [85, 10, 5]


def test_held_out_sizes_are_counts_or_capped_fractions():
    assert held_out_sizes(0.05, 0.05, 4000) == (200, 200)
    assert held_out_sizes(7, 0.1, 4000) == (7, 400)
    assert held_out_sizes(0.05, 0.05, 2_000_000) == (3000, 3000)  # a big corpus: fixed-size sets, as WMT's
    assert held_out_sizes(5000, 0, 2_000_000) == (5000, 0)  # a count is taken as given
    with pytest.raises(DataError, match="leave no training pairs"):
        held_out_sizes(60, 40, 100)


def test_read_lines_rejects_invalid_utf8(tmp_path):
    with pytest.raises(DataError, match=r"bad.txt:2: invalid UTF-8"):
        read_lines(write(tmp_path / "bad.txt", b"ok\n\xff\n"))


def test_strict_invalid_utf8_names_the_line(tmp_path):
    corpus = write(tmp_path / "c.tsv", b"a\tb\nbad \xff\tbyte\n")
    with pytest.raises(DataError, match=r"c.tsv:2: invalid UTF-8"):
        read_corpus(corpus, strict=True)


def test_unreadable_file_even_as_root(tmp_path, monkeypatch):
    path = write(tmp_path / "locked.tsv", b"a\tb\n")
    original = Path.open

    def denied(self, *args, **kwargs):
        if self == path:
            raise PermissionError(13, "Permission denied")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", denied)
    with pytest.raises(DataError, match="locked.tsv cannot be read \\(Permission denied\\)"):
        read_corpus(path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read any file")
def test_unreadable_file(tmp_path):
    path = write(tmp_path / "secret.tsv", b"a\tb\n")
    path.chmod(0)
    with pytest.raises(DataError, match="cannot be read"):
        read_corpus(path)


def test_the_deduplicator_marks_first_occurrences_across_blocks(monkeypatch):
    import numpy as np

    from s2s_cli.data import dedupe

    monkeypatch.setattr(dedupe, "BLOCK", 1000)  # checked many times, each block against all seen before
    hashes = np.random.default_rng(0).integers(0, 500, 20_000).astype(np.uint64)
    finder = dedupe.Deduplicator()
    for start in range(0, len(hashes), 37):
        finder.add_hashes(hashes[start : start + 37])
    seen, expected = set(), []
    for h in hashes.tolist():
        expected.append(h not in seen)
        seen.add(h)
    assert finder.firsts().tolist() == expected and sum(expected) == 500
