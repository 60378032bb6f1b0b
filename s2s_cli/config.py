"""Frozen configuration dataclasses for data preparation, the model and training."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, TypeVar

from s2s_cli.errors import ConfigError


class Choice(str, Enum):
    """One of a fixed set of values: equal to its string, printed and saved as it."""

    def __str__(self) -> str:
        return self.value


class TokenizerKind(Choice):
    SPM = "spm"
    CHAR = "char"
    WORD = "word"


class SpmModelType(Choice):
    UNIGRAM = "unigram"
    BPE = "bpe"


class Arch(Choice):
    TRANSFORMER = "transformer"
    RNN = "rnn"


class Cell(Choice):
    LSTM = "lstm"
    GRU = "gru"


class AttentionScore(Choice):
    GENERAL = "general"
    DOT = "dot"
    BAHDANAU = "bahdanau"


class Precision(Choice):
    AUTO = "auto"
    FLOAT32 = "float32"
    BF16 = "bf16"


class Select(Choice):
    BLEU = "bleu"
    LOSS = "loss"


class Strategy(Choice):
    AUTO = "auto"
    ONE = "one"
    MIRRORED = "mirrored"
    MULTI_WORKER = "multi-worker"


DEFAULT_WARMUP = 400


@dataclass(frozen=True)
class DataConfig:
    """How `prepare` turned a corpus into splits and tokenizers."""

    src_lang: str | None = None
    tgt_lang: str | None = None
    tokenizer: TokenizerKind = TokenizerKind.SPM
    spm_model_type: SpmModelType = SpmModelType.UNIGRAM
    vocab_size: int = 4000  # per side
    joint: bool = False
    max_len: int = 100
    valid_size: float = 0.05
    test_size: float = 0.05
    seed: int = 1

    def __post_init__(self) -> None:
        _coerce_choices(self)
        _check_positive("vocab_size", self.vocab_size, minimum=8)
        _check_positive("max_len", self.max_len)
        for name in ("valid_size", "test_size"):
            if getattr(self, name) < 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be a count >= 0 or a fraction in [0, 1).")


@dataclass(frozen=True)
class ModelConfig:
    """The network's shape; the model is rebuilt from this on every load."""

    arch: Arch = Arch.TRANSFORMER
    cell: Cell = Cell.LSTM  # rnn only, like emb_dim and hidden
    emb_dim: int = 256
    hidden: int = 256
    layers: int = 3
    dropout: float = 0.2
    attention: AttentionScore = AttentionScore.GENERAL  # rnn only
    tie_embeddings: bool = False
    d_model: int = 256  # transformer only, like heads and ff_dim
    heads: int = 4
    ff_dim: int = 1024

    def __post_init__(self) -> None:
        _coerce_choices(self)
        for name in ("emb_dim", "hidden", "layers"):
            _check_positive(name, getattr(self, name))
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError("--dropout must be in [0, 1).")
        for name in ("d_model", "heads", "ff_dim"):
            _check_positive(name, getattr(self, name))
        if self.arch == Arch.TRANSFORMER and self.d_model % self.heads:
            raise ConfigError(f"--d-model ({self.d_model}) must be divisible by --heads ({self.heads}).")
        if self.arch == Arch.RNN and self.tie_embeddings and self.emb_dim != self.hidden:
            raise ConfigError("--tie-embeddings needs --emb-dim equal to --hidden.")


@dataclass(frozen=True)
class TrainConfig:
    """How `train` optimizes the model."""

    epochs: int = 30
    max_steps: int = 0
    max_minutes: float = 0.0
    valid_every: int = 0
    batch_tokens: int = 4096
    batch_size: int = 0
    lr: float = 1e-3
    warmup: int | None = None  # None: DEFAULT_WARMUP steps, at most a tenth of the planned ones (resolved by train)
    clip_norm: float = 1.0
    label_smoothing: float = 0.1
    patience: int = 5
    select: Select = Select.BLEU
    valid_beam: int = 1
    valid_max_sentences: int = 500
    precision: Precision = Precision.AUTO  # train resolves auto to bf16 or float32 before saving
    keep: int = 2
    seed: int = 1
    strategy: Strategy = Strategy.AUTO  # how training is distributed

    def __post_init__(self) -> None:
        _coerce_choices(self)
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
        """Plain JSON values: choices as their strings."""
        return dataclasses.asdict(self, dict_factory=lambda items: {k: _plain(v) for k, v in items})

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


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value


def _coerce_choices(section: Any) -> None:
    """Turn each choice field given as a string into its Enum (a frozen dataclass, hence object.__setattr__)."""
    for f in dataclasses.fields(section):
        if isinstance(f.type, str) and f.type in _CHOICES:
            kind = _CHOICES[f.type]
            value = getattr(section, f.name)
            try:
                object.__setattr__(section, f.name, kind(value))
            except ValueError:
                choices = ", ".join(c.value for c in kind)
                raise ConfigError(f"--{f.name.replace('_', '-')} must be one of {choices} (got {value!r}).") from None


_CHOICES = {kind.__name__: kind for kind in Choice.__subclasses__()}


def _check_positive(name: str, value: int, minimum: int = 1) -> None:
    if value < minimum:
        raise ConfigError(f"--{name.replace('_', '-')} must be >= {minimum} (got {value}).")
