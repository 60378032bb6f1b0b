"""The presets `train --size` starts a model from, and how `auto` picks one from the corpus."""

from __future__ import annotations

from typing import Any

from s2s_cli.config import Arch, ModelConfig, ModelSize, Schedule, TrainConfig

# The shape presets `train --size` starts from; explicit shape options change single fields of them. `auto` picks
# by the number of training pairs: small below SMALL_BELOW, base from BASE_FROM, medium (the field defaults) between.
MODEL_SIZES: dict[ModelSize, dict[str, Any]] = {
    ModelSize.SMALL: {"layers": 2, "d_model": 128, "heads": 4, "ff_dim": 512, "emb_dim": 128, "hidden": 128},
    ModelSize.MEDIUM: {},
    ModelSize.BASE: {
        "layers": 6,
        "d_model": 512,
        "heads": 8,
        "ff_dim": 2048,
        "emb_dim": 512,
        "hidden": 512,
        "dropout": 0.1,
    },
}
SMALL_BELOW, BASE_FROM = 10_000, 1_000_000
# Training defaults a preset changes (explicit options still win): a small corpus gets more, smaller updates; a
# corpus the size of Multi30k a higher peak with a cosine decay and label smoothing 0.2 (chosen on Multi30k's
# validation set); the base model the peak learning rate and warm-up of fairseq's WMT Transformer-base recipe (not
# tuned here).
TRAIN_BY_SIZE: dict[ModelSize, dict[str, Any]] = {
    ModelSize.SMALL: {"batch_tokens": 2048, "lr": 2e-3},
    ModelSize.MEDIUM: {"lr": 2e-3, "schedule": Schedule.COSINE, "label_smoothing": 0.2},
    ModelSize.BASE: {"lr": 5e-4, "warmup": 4000},
}


def size_for(train_pairs: int) -> ModelSize:
    """The preset `--size auto` picks for a training split of `train_pairs` pairs."""
    if train_pairs < SMALL_BELOW:
        return ModelSize.SMALL
    return ModelSize.BASE if train_pairs >= BASE_FROM else ModelSize.MEDIUM


def sized_model(size: ModelSize | str, train_pairs: int) -> ModelConfig:
    """The preset `size` (resolving auto from the number of training pairs) as a ModelConfig."""
    size = ModelSize(size)
    resolved = size_for(train_pairs) if size == ModelSize.AUTO else size
    return ModelConfig(size=resolved, **MODEL_SIZES[resolved])


def describe_model(model: ModelConfig) -> str:
    """One line naming the shape, as `train` prints it."""
    dropout = f"dropout {model.dropout:g}"
    if model.arch == Arch.TRANSFORMER:
        shape = f"d_model {model.d_model}, {model.heads} heads, ff {model.ff_dim}"
        rates = {"attention": model.attention_dropout, "activation": model.activation_dropout}
        apart = ", ".join(f"{name} {rate:g}" for name, rate in rates.items() if rate is not None)
        dropout += f" ({apart})" if apart else ""
    else:
        shape = f"{model.cell} {model.emb_dim}/{model.hidden}, {model.attention} attention"
    return f"{model.size} {model.arch}: {model.layers}+{model.dec_layers} layers, {shape}, {dropout}"


def describe_training(train: TrainConfig) -> str:
    """The training settings a preset changes, as `train` prints them."""
    warmup = f", {train.warmup:,} warm-up steps" if train.warmup is not None else ""
    decay = ", cosine decay" if train.schedule == Schedule.COSINE else ""
    weight_decay = f", weight decay {train.weight_decay:g}" if train.weight_decay else ""
    return f"{train.batch_tokens:,}-token batches, peak lr {train.lr:g}{warmup}{decay}{weight_decay}"
