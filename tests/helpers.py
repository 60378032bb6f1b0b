"""What the tests share: the shipped sample corpus, tiny model shapes and training settings."""

from __future__ import annotations

from pathlib import Path

from s2s_cli.config import RunConfig
from s2s_cli.rundir import RunDir

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample" / "en-zh.tsv"
TINY_MODEL = {"arch": "rnn", "emb_dim": 16, "hidden": 16, "layers": 1, "dropout": 0.1}
TINY_TRANSFORMER = {"arch": "transformer", "d_model": 16, "heads": 2, "ff_dim": 32, "layers": 2, "dropout": 0.1}
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
    """The first `n` pairs of the sample corpus as a TSV file."""
    lines = SAMPLE.read_text(encoding="utf-8").splitlines()[:n]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def tiny_config(run: RunDir, model: dict | None = None, **train: object) -> RunConfig:
    """The run's data config with a tiny model (the RNN unless `model` is given) and quick training settings."""
    return RunConfig(run.load_config().data).with_overrides(model or TINY_MODEL, {**TINY_TRAIN, **train})
