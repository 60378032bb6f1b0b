"""Frozen configuration dataclasses for data preparation, the model and training."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, TypeVar

from s2s_cli.errors import ConfigError

TOKENIZERS = ("spm", "char", "word")
ARCHS = ("rnn", "transformer")
CELLS = ("lstm", "gru")
ATTENTIONS = ("general", "dot", "bahdanau")
STRATEGIES = ("auto", "one", "mirrored", "multi-worker")
PRECISIONS = ("auto", "float32", "bf16")


@dataclass(frozen=True)
class DataConfig:
    """How `prepare` turned a corpus into splits and tokenizers."""

    src_lang: str | None = None
    tgt_lang: str | None = None
    tokenizer: str = "spm"
    spm_model_type: str = "unigram"
    vocab_size: int = 4000  # per side; beat 8,000 on Multi30k (README, Performance)
    joint: bool = False
    max_len: int = 100
    valid_size: float = 0.05
    test_size: float = 0.05
    seed: int = 1

    def __post_init__(self) -> None:
        _check_choice("tokenizer", self.tokenizer, TOKENIZERS)
        _check_choice("spm_model_type", self.spm_model_type, ("unigram", "bpe"))
        _check_positive("vocab_size", self.vocab_size, minimum=8)
        _check_positive("max_len", self.max_len)
        for name in ("valid_size", "test_size"):
            if getattr(self, name) < 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be a count >= 0 or a fraction in [0, 1).")


@dataclass(frozen=True)
class ModelConfig:
    """The network's shape; the model is rebuilt from this on every load."""

    arch: str = "transformer"  # won the Multi30k bench (README, Performance)
    cell: str = "lstm"  # rnn only, like emb_dim and hidden
    emb_dim: int = 256
    hidden: int = 256
    layers: int = 3
    dropout: float = 0.2
    attention: str = "general"
    tie_embeddings: bool = False
    d_model: int = 256  # transformer only, like heads and ff_dim
    heads: int = 4
    ff_dim: int = 1024

    def __post_init__(self) -> None:
        _check_choice("arch", self.arch, ARCHS)
        _check_choice("cell", self.cell, CELLS)
        _check_choice("attention", self.attention, ATTENTIONS)
        for name in ("emb_dim", "hidden", "layers"):
            _check_positive(name, getattr(self, name))
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError("--dropout must be in [0, 1).")
        for name in ("d_model", "heads", "ff_dim"):
            _check_positive(name, getattr(self, name))
        if self.arch == "transformer" and self.d_model % self.heads:
            raise ConfigError(f"--d-model ({self.d_model}) must be divisible by --heads ({self.heads}).")
        if self.arch == "rnn" and self.tie_embeddings and self.emb_dim != self.hidden:
            raise ConfigError("--tie-embeddings needs --emb-dim equal to --hidden.")


@dataclass(frozen=True)
class TrainConfig:
    """How `train` optimizes the model."""

    epochs: int = 30
    max_steps: int = 0
    max_minutes: float = 0.0
    valid_every: int = 0
    # The defaults are the recipe that reached BLEU 35 on Multi30k in under an hour on 2 CPU cores (README).
    batch_tokens: int = 4096
    batch_size: int = 0
    lr: float = 1e-3
    warmup: int | None = None  # None: 400 steps, but at most a tenth of the planned steps (resolved by train)
    clip_norm: float = 1.0
    label_smoothing: float = 0.1
    patience: int = 5
    select: str = "bleu"
    valid_beam: int = 1
    valid_max_sentences: int = 500
    precision: str = "auto"  # train resolves it to bf16 or float32 (training.detect_precision) before saving
    keep: int = 2
    seed: int = 1
    strategy: str = "auto"  # how training is distributed: auto, one, mirrored, multi-worker

    def __post_init__(self) -> None:
        _check_choice("precision", self.precision, PRECISIONS)
        _check_choice("select", self.select, ("bleu", "loss"))
        _check_choice("strategy", self.strategy, STRATEGIES)
        _check_positive("epochs", self.epochs)
        _check_positive("batch_tokens", self.batch_tokens, minimum=16)
        _check_positive("valid_beam", self.valid_beam)
        _check_positive("keep", self.keep)
        for name in ("max_steps", "max_minutes", "valid_every", "batch_size", "warmup", "patience"):
            if (getattr(self, name) or 0) < 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 0.")
        if self.lr <= 0:
            raise ConfigError("--lr must be > 0.")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError("--label-smoothing must be in [0, 1).")


@dataclass(frozen=True)
class RunConfig:
    """Everything a run dir's config.json holds."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def with_overrides(self, model: dict[str, Any], train: dict[str, Any]) -> RunConfig:
        """A copy with some model/train fields replaced (as given on the command line)."""
        return RunConfig(self.data, dataclasses.replace(self.model, **model), dataclasses.replace(self.train, **train))

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> RunConfig:
        _reject_unknown(cls, raw, "config")
        return cls(
            data=_section(DataConfig, raw.get("data", {}), "data"),
            model=_section(ModelConfig, raw.get("model", {}), "model"),
            train=_section(TrainConfig, raw.get("train", {}), "train"),
        )


Section = TypeVar("Section", DataConfig, ModelConfig, TrainConfig)


def _section(cls: type[Section], raw: dict[str, Any], name: str) -> Section:
    _reject_unknown(cls, raw, name)
    return cls(**raw)


def _reject_unknown(cls: type, raw: dict[str, Any], name: str) -> None:
    if not isinstance(raw, dict):
        raise ConfigError(f"config section '{name}' must be an object.")
    unknown = set(raw) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise ConfigError(
            f"unknown key(s) {sorted(unknown)} in config section '{name}': "
            "the run dir was written by another s2s version; re-run `s2s prepare`."
        )


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"--{name.replace('_', '-')} must be one of {', '.join(choices)} (got {value!r}).")


def _check_positive(name: str, value: int, minimum: int = 1) -> None:
    if value < minimum:
        raise ConfigError(f"--{name.replace('_', '-')} must be >= {minimum} (got {value}).")
