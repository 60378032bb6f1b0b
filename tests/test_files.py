"""Atomic writes: a failed write keeps the old file; new files and dirs follow the umask."""

import pytest

from s2s_cli.files import make_temp_dir, write_text_atomic


def test_atomic_write_failure_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "file.txt"
    write_text_atomic(path, "old")

    def fail(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("os.replace", fail)
    with pytest.raises(OSError):
        write_text_atomic(path, "new")
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["file.txt"]


def test_run_dir_files_follow_the_umask(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        write_text_atomic(tmp_path / "a" / "f.txt", "x")
        made = make_temp_dir(tmp_path, "t-")
    finally:
        os.umask(old)
    assert (tmp_path / "a" / "f.txt").stat().st_mode & 0o777 == 0o644
    assert made.stat().st_mode & 0o777 == 0o755
