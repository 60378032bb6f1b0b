"""Frozen configuration dataclasses for data preparation, the model and training."""

from __future__ import annotations

import dataclasses
import math
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


class ModelSize(Choice):
    AUTO = "auto"
    SMALL = "small"
    MEDIUM = "medium"
    BASE = "base"


class Precision(Choice):
    AUTO = "auto"
    FLOAT32 = "float32"
    BF16 = "bf16"


class Select(Choice):
    BLEU = "bleu"
    LOSS = "loss"


class Schedule(Choice):
    INVERSE_SQRT = "inverse-sqrt"
    COSINE = "cosine"


class Strategy(Choice):
    AUTO = "auto"
    ONE = "one"
    MIRRORED = "mirrored"
    MULTI_WORKER = "multi-worker"


DEFAULT_WARMUP = 400
LENGTH_PENALTY = 1.0  # the GNMT alpha search uses unless told, chosen on Multi30k's validation set (bench/RESULTS.md)
BIG = 10**9  # an upper bound that only stops values no machine could run


class FieldError(ConfigError):
    """A config field has a bad value. Given as a command-line flag, that is a usage error (exit 2)."""

    exit_code = 2

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"--{name.replace('_', '-')} {problem}.")
        self.name, self.problem = name, problem


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
    valid_size: float = 0.05  # a fraction is at most 3,000 pairs
    test_size: float = 0.05
    seed: int = 1
    spm_sample: int = 500_000  # sentences a side SentencePiece trains on, sampled from a larger corpus
    spm_threads: int | None = None  # None: one per core (resolved by prepare)

    LIMITS = {
        "vocab_size": (8, 1_000_000),
        "max_len": (1, 100_000),
        "valid_size": (0, BIG),
        "test_size": (0, BIG),
        "spm_sample": (1_000, BIG),
        "spm_threads": (1, 1024),
    }

    def __post_init__(self) -> None:
        _check_fields(self)


@dataclass(frozen=True)
class ModelConfig:
    """The network's shape; the model is rebuilt from this on every load."""

    arch: Arch = Arch.TRANSFORMER
    cell: Cell = Cell.LSTM  # rnn only, like emb_dim and hidden
    emb_dim: int = 256
    hidden: int = 256
    layers: int = 3  # encoder layers, and decoder layers unless decoder_layers says otherwise
    decoder_layers: int = 0  # 0: as many as `layers`
    dropout: float = 0.2
    attention_dropout: float | None = None  # transformer: on attention probabilities (None: `dropout`)
    activation_dropout: float | None = None  # transformer: on the feed-forward's hidden layer (None: `dropout`)
    attention: AttentionScore = AttentionScore.GENERAL  # rnn only
    tie_embeddings: bool = False
    d_model: int = 256  # transformer only, like heads and ff_dim
    heads: int = 4
    ff_dim: int = 1024
    size: ModelSize = ModelSize.MEDIUM  # the preset the shape started from (MODEL_SIZES); options change fields

    LIMITS = {
        "emb_dim": (1, 65_536),
        "hidden": (1, 65_536),
        "layers": (1, 128),
        "decoder_layers": (0, 128),
        "dropout": (0.0, 1.0, "open"),
        "attention_dropout": (0.0, 1.0, "open"),
        "activation_dropout": (0.0, 1.0, "open"),
        "d_model": (1, 65_536),
        "heads": (1, 1024),
        "ff_dim": (1, 262_144),
    }

    def __post_init__(self) -> None:
        _check_fields(self)
        if self.arch == Arch.TRANSFORMER and self.d_model % self.heads:
            raise FieldError("d_model", f"({self.d_model}) must be divisible by --heads ({self.heads})")
        if self.arch == Arch.RNN and self.tie_embeddings and self.emb_dim != self.hidden:
            raise FieldError("tie_embeddings", "needs --emb-dim equal to --hidden")

    @property
    def dec_layers(self) -> int:
        """The decoder's layers."""
        return self.decoder_layers or self.layers


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
    warmup: int | None = None  # None: DEFAULT_WARMUP steps, at most three epochs (resolved by train)
    schedule: Schedule = Schedule.INVERSE_SQRT  # after the warm-up
    decay_steps: int | None = None  # cosine: the updates it decays over (None: the planned ones, resolved by train)
    clip_norm: float = 1.0
    dense_embedding_grads: bool = False  # sum an embedding's rows per token before clipping and Adam
    label_smoothing: float = 0.1
    weight_decay: float = 0.0  # decoupled (AdamW): each update shrinks the weight matrices by lr * weight_decay
    subword_sampling: float = 0.0  # SentencePiece's sampling smoothing for training segmentations (0: off)
    patience: int = 5
    select: Select = Select.BLEU
    valid_beam: int = 1
    valid_max_sentences: int = 0  # 0: the whole validation split
    precision: Precision = Precision.AUTO  # train resolves auto to bf16 or float32 before saving
    keep: int = 2
    save_every_steps: int = 0  # a checkpoint between validations every N steps (0: not by steps)
    save_every_minutes: float = 10.0  # ... or every M minutes of this run (0: not by time)
    accum_steps: int = 1  # batches whose gradients make one update
    init_from: str | None = None  # the run dir whose best weights a fresh training starts from
    seed: int = 1
    strategy: Strategy = Strategy.AUTO  # how training is distributed

    LIMITS = {
        "epochs": (1, BIG),
        "max_steps": (0, BIG),
        "max_minutes": (0.0, BIG),
        "valid_every": (0, BIG),
        "batch_tokens": (16, BIG),
        "batch_size": (0, BIG),
        "lr": (0.0, 10.0, "above"),
        "warmup": (0, BIG),
        "decay_steps": (1, BIG),
        "clip_norm": (0.0, BIG),
        "label_smoothing": (0.0, 1.0, "open"),
        "weight_decay": (0.0, 10.0),
        "subword_sampling": (0.0, 100.0),
        "patience": (0, BIG),
        "valid_beam": (1, 1000),
        "valid_max_sentences": (0, BIG),
        "keep": (1, 10_000),
        "save_every_steps": (0, BIG),
        "save_every_minutes": (0.0, BIG),
        "accum_steps": (1, 10_000),
    }

    def __post_init__(self) -> None:
        _check_fields(self)


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
    def from_dict(cls, raw: dict[str, Any], source: str = "config.json") -> RunConfig:
        """The config a file holds; a bad value is a ConfigError naming `source` and the key."""
        _reject_unknown(cls, raw, "config")
        return cls(
            data=_section(DataConfig, raw.get("data", {}), "data", source),
            model=_section(ModelConfig, raw.get("model", {}), "model", source),
            train=_section(TrainConfig, raw.get("train", {}), "train", source),
        )


Section = TypeVar("Section", DataConfig, ModelConfig, TrainConfig)


def _section(cls: type[Section], raw: dict[str, Any], name: str, source: str) -> Section:
    _reject_unknown(cls, raw, name)
    try:
        return cls(**raw)
    except FieldError as err:
        raise ConfigError(
            f"{source}: '{name}.{err.name}' {err.problem}: fix the file, or re-run `s2s prepare` / `s2s train --force`."
        ) from None


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


def _check_fields(section: Any) -> None:
    """Check each field's type and range, and turn choices given as strings into their Enum (the dataclass is
    frozen, hence object.__setattr__)."""
    for f in dataclasses.fields(section):
        value, kind = getattr(section, f.name), f.type
        if kind in _CHOICES:
            try:
                object.__setattr__(section, f.name, _CHOICES[kind](value))
            except ValueError:
                choices = ", ".join(c.value for c in _CHOICES[kind])
                raise FieldError(f.name, f"must be one of {choices} (got {value!r})") from None
            continue
        if value is None and "None" in kind:
            continue
        expected = _TYPES[kind.split(" | ")[0]]
        if not isinstance(value, expected) or isinstance(value, bool) != (expected is bool):
            raise FieldError(f.name, f"must be {_TYPE_NAMES[expected]} (got {value!r})")
        if f.name in section.LIMITS:
            _check_range(f.name, value, *section.LIMITS[f.name])


def _check_range(name: str, value: float, low: float, high: float, open_end: str = "") -> None:
    if not math.isfinite(value):
        raise FieldError(name, f"must be a finite number (got {value})")
    if open_end == "open" and not low <= value < high:
        raise FieldError(name, f"must be in [{low}, {high}) (got {value})")
    if open_end == "above" and not low < value <= high:
        raise FieldError(name, f"must be > {low} and at most {high} (got {value})")
    if not open_end and not low <= value <= high:
        raise FieldError(name, f"must be >= {low} (got {value})" if value < low else f"must be <= {high} (got {value})")


_CHOICES = {kind.__name__: kind for kind in Choice.__subclasses__()}
_TYPES = {"int": int, "float": (int, float), "bool": bool, "str": str}
_TYPE_NAMES = {int: "an integer", (int, float): "a number", bool: "true or false", str: "a string"}
