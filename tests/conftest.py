"""Fixtures: a run dir prepared from a slice of the sample corpus, and a tiny model trained on it (once a session)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from helpers import tiny_config, write_sample

from s2s_cli.config import DataConfig
from s2s_cli.data.prepare import prepare
from s2s_cli.rundir import RunDir


@pytest.fixture
def sample_tsv(tmp_path: Path) -> Path:
    return write_sample(tmp_path / "sample.tsv", 300)


@pytest.fixture(scope="session")
def prepared_run(tmp_path_factory: pytest.TempPathFactory) -> RunDir:
    """A run dir prepared from 300 sample pairs with a char tokenizer (read-only for tests)."""
    root = tmp_path_factory.mktemp("prepared")
    corpus = write_sample(root / "sample.tsv", 300)
    data = DataConfig(tokenizer="char", vocab_size=500, valid_size=20, test_size=20, tgt_lang="zh")
    prepare(corpus, None, root / "run", data)
    return RunDir(root / "run")


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory, prepared_run: RunDir) -> RunDir:
    """A copy of `prepared_run` with a tiny RNN trained for two epochs (read-only for tests)."""
    from s2s_cli.training.runner import train

    run = RunDir(tmp_path_factory.mktemp("trained") / "run")
    shutil.copytree(prepared_run.path, run.path)
    train(run, tiny_config(run))
    return run


@pytest.fixture
def run(prepared_run: RunDir, tmp_path: Path) -> RunDir:
    """A writable copy of `prepared_run`, at a path with a space and a non-ASCII letter."""
    copy = RunDir(tmp_path / "run dir ü")
    shutil.copytree(prepared_run.path, copy.path)
    return copy


@pytest.fixture(scope="session")
def spm_transformer_run(tmp_path_factory: pytest.TempPathFactory) -> RunDir:
    """A tiny float32 Transformer on 400 sample pairs with SentencePiece, trained until its outputs differ from
    sentence to sentence (read-only for tests)."""
    from helpers import TINY_TRANSFORMER

    from s2s_cli.training.runner import train

    root = tmp_path_factory.mktemp("spm-transformer")
    run = RunDir(root / "run")
    prepare(
        write_sample(root / "corpus.tsv", 400), None, run.path, DataConfig(vocab_size=300, valid_size=20, test_size=30)
    )
    train(run, tiny_config(run, {**TINY_TRANSFORMER, "d_model": 32, "ff_dim": 64}, epochs=12, lr=1e-2))
    return run
