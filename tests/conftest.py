"""Shared fixtures: a slice of the shipped sample corpus and a tiny trained run dir (trained once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest

from s2s_cli.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from s2s_cli.preparation import prepare
from s2s_cli.rundir import RunDir

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample" / "en-zh.tsv"
TINY_MODEL = {"arch": "rnn", "emb_dim": 16, "hidden": 16, "layers": 1, "dropout": 0.1}
TINY_TRAIN = {
    "epochs": 2,
    "batch_tokens": 512,
    "lr": 3e-3,
    "warmup": 10,
    "valid_max_sentences": 20,
    "patience": 0,
    "precision": "float32",
}


def write_sample(path: Path, n: int) -> Path:
    lines = SAMPLE.read_text(encoding="utf-8").splitlines()[:n]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def sample_tsv(tmp_path: Path) -> Path:
    return write_sample(tmp_path / "sample.tsv", 300)


def tiny_config(run: RunDir, **train: object) -> RunConfig:
    return RunConfig(run.load_config().data).with_overrides(TINY_MODEL, {**TINY_TRAIN, **train})


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
    """A copy of `prepared_run` with a tiny model trained for two epochs."""
    import shutil

    from s2s_cli.training import train

    run = RunDir(tmp_path_factory.mktemp("trained") / "run")
    shutil.copytree(prepared_run.path, run.path)
    train(run, tiny_config(run))
    return run


__all__ = [
    "SAMPLE",
    "TINY_MODEL",
    "TINY_TRAIN",
    "tiny_config",
    "write_sample",
    "DataConfig",
    "ModelConfig",
    "TrainConfig",
]
