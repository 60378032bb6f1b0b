"""`s2s train`: train the run dir's model with a progress bar; every shape and training option overrides the preset."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Annotated, Optional

import typer

from s2s_cli import console
from s2s_cli.cli.app import DEFAULT_RUN_DIR, JsonOpt, RunDirOpt, app, default_of, force_option, handles_errors
from s2s_cli.cli.engine import KeepOpt, keep_ctranslate2
from s2s_cli.config import (
    DEFAULT_WARMUP,
    Arch,
    AttentionScore,
    Cell,
    ModelConfig,
    ModelSize,
    Precision,
    Schedule,
    Select,
    Strategy,
    TrainConfig,
)
from s2s_cli.presets import BASE_FROM, MODEL_SIZES, SMALL_BELOW, TRAIN_BY_SIZE, describe_model, describe_training


def _model(name: str, help: str):  # noqa: A002
    if any(name in preset for preset in MODEL_SIZES.values()):
        shown = ", ".join(
            f"{size} {preset.get(name, default_of(ModelConfig, name))}" for size, preset in MODEL_SIZES.items()
        )
        return typer.Option(help=help, show_default=f"by --size: {shown}")
    return typer.Option(help=help, show_default=default_of(ModelConfig, name))


def _train(name: str, help: str):  # noqa: A002
    by_size = "".join(f", {size} preset {preset[name]}" for size, preset in TRAIN_BY_SIZE.items() if name in preset)
    return typer.Option(help=help, show_default=default_of(TrainConfig, name) + by_size)


@app.command()
@handles_errors
def train(
    run_dir: RunDirOpt = DEFAULT_RUN_DIR,
    epochs: Annotated[Optional[int], _train("epochs", "Epochs to train.")] = None,
    max_steps: Annotated[
        Optional[int], _train("max_steps", "Stop after this many optimizer steps in total; 0 = no limit.")
    ] = None,
    max_minutes: Annotated[
        Optional[float], _train("max_minutes", "Stop after this many minutes of this run (validation included).")
    ] = None,
    valid_every: Annotated[
        Optional[int], _train("valid_every", "Validate every N steps instead of after every epoch.")
    ] = None,
    batch_tokens: Annotated[Optional[int], _train("batch_tokens", "Tokens per batch, padding included.")] = None,
    batch_size: Annotated[
        Optional[int], _train("batch_size", "Sentences per batch instead of --batch-tokens; 0 = by tokens.")
    ] = None,
    size: Annotated[
        Optional[ModelSize],
        typer.Option(
            help=f"Model preset. auto: small below {SMALL_BELOW:,} training pairs, base from {BASE_FROM:,}, else "
            "medium. Shape options below change single fields of it.",
            show_default="auto",
        ),
    ] = None,
    arch: Annotated[Optional[Arch], _model("arch", "Architecture.")] = None,
    layers: Annotated[
        Optional[int], _model("layers", "Encoder layers, and decoder layers unless --decoder-layers.")
    ] = None,
    decoder_layers: Annotated[
        Optional[int],
        _model("decoder_layers", "Decoder layers; 0 = as many as --layers (fewer decode faster)."),
    ] = None,
    dropout: Annotated[Optional[float], _model("dropout", "Dropout rate.")] = None,
    attention_dropout: Annotated[
        Optional[float],
        typer.Option(help="Transformer: dropout on the attention probabilities.", show_default="--dropout"),
    ] = None,
    activation_dropout: Annotated[
        Optional[float],
        typer.Option(help="Transformer: dropout on the feed-forward's hidden layer.", show_default="--dropout"),
    ] = None,
    d_model: Annotated[Optional[int], _model("d_model", "Transformer model size.")] = None,
    heads: Annotated[Optional[int], _model("heads", "Transformer attention heads.")] = None,
    ff_dim: Annotated[Optional[int], _model("ff_dim", "Transformer feed-forward size.")] = None,
    cell: Annotated[Optional[Cell], _model("cell", "RNN cell.")] = None,
    emb_dim: Annotated[Optional[int], _model("emb_dim", "RNN embedding size.")] = None,
    hidden: Annotated[Optional[int], _model("hidden", "RNN hidden size.")] = None,
    attention: Annotated[
        Optional[AttentionScore], _model("attention", "RNN attention score: general, dot (Luong) or bahdanau.")
    ] = None,
    tie_embeddings: Annotated[
        Optional[bool], _model("tie_embeddings", "Share the target embedding and output matrix.")
    ] = None,
    lr: Annotated[Optional[float], _train("lr", "Peak learning rate.")] = None,
    warmup: Annotated[
        Optional[int],
        typer.Option(
            help="Warm-up steps, then inverse-sqrt decay.",
            show_default=f"{DEFAULT_WARMUP}, at most three epochs; base preset 4000",
        ),
    ] = None,
    schedule: Annotated[
        Optional[Schedule],
        _train(
            "schedule",
            "Learning rate after the warm-up: inverse-sqrt decay, or cosine decay to zero over the planned updates "
            "(--max-steps, else --epochs).",
        ),
    ] = None,
    decay_steps: Annotated[
        Optional[int], typer.Option(help="cosine: decay over this many updates instead.", show_default=False)
    ] = None,
    clip_norm: Annotated[Optional[float], _train("clip_norm", "Global gradient-norm clip; 0 disables.")] = None,
    label_smoothing: Annotated[Optional[float], _train("label_smoothing", "Label smoothing.")] = None,
    weight_decay: Annotated[
        Optional[float],
        _train(
            "weight_decay",
            "Decoupled weight decay (AdamW): each update shrinks weight matrices and embeddings by lr times this "
            "(biases and layer norms are not decayed); 0 = off.",
        ),
    ] = None,
    dense_embedding_grads: Annotated[
        Optional[bool],
        typer.Option(
            "--dense-embedding-grads/--sparse-embedding-grads",
            help="Sum an embedding's gradient per token before clipping and Adam (the PyTorch toolkits' update), or "
            "leave it one row per occurrence (Keras' sparse update: a token seen k times in a batch can step up to "
            "sqrt(k) times further).",
            show_default="sparse",
        ),
    ] = None,
    subword_sampling: Annotated[
        Optional[float],
        _train(
            "subword_sampling",
            "Subword regularization: train on SentencePiece segmentations sampled anew for every batch, with this "
            "smoothing (unigram: lower samples more, 0.5 changes about 40% of sentences; BPE: the dropout "
            "probability, e.g. 0.1); 0 = off. A sample longer than its batch's longest stored sentence is not "
            "used, so batches are no wider. Validation and translation never sample.",
        ),
    ] = None,
    patience: Annotated[
        Optional[int], _train("patience", "Stop after N validations without improvement; 0 never.")
    ] = None,
    select: Annotated[Optional[Select], _train("select", "Keep the best weights by validation BLEU or loss.")] = None,
    valid_beam: Annotated[Optional[int], _train("valid_beam", "Beam for validation decoding.")] = None,
    valid_max_sentences: Annotated[
        Optional[int], _train("valid_max_sentences", "Decode only the first N validation sentences; 0 = all.")
    ] = None,
    accum_steps: Annotated[
        Optional[int],
        _train("accum_steps", "Batches whose gradients make one update (an N times larger batch in the same memory)."),
    ] = None,
    save_every: Annotated[
        Optional[str],
        typer.Option(
            help="A checkpoint between validations every N steps (`500`) or minutes (`10m`); 0 = none.",
            show_default="10m",
        ),
    ] = None,
    init_from: Annotated[
        Optional[Path],
        typer.Option(
            help="Start from this run dir's best weights (fine-tuning; the model shape is its, the run dir must be "
            "prepared with --tokenizers-from it)."
        ),
    ] = None,
    precision: Annotated[
        Optional[Precision],
        _train(
            "precision",
            "auto: bf16 where the hardware multiplies bfloat16 natively, else float32; bf16 = mixed bfloat16.",
        ),
    ] = None,
    keep: Annotated[Optional[int], _train("keep", "Step checkpoints to keep.")] = None,
    seed: Annotated[Optional[int], _train("seed", "Seed for initialization, shuffling and dropout.")] = None,
    strategy: Annotated[
        Optional[Strategy],
        _train(
            "strategy",
            "Distribution: one device, mirrored (all local GPUs), multi-worker (the cluster in TF_CONFIG; run the "
            "same command on every worker), or auto.",
        ),
    ] = None,
    resume: Annotated[bool, typer.Option("--resume/--no-resume", help="Continue from the last checkpoint.")] = False,
    force: Annotated[bool, force_option("Start over, replacing an earlier training of the run dir.")] = False,
    ctranslate2: KeepOpt = True,
    json_out: JsonOpt = False,
) -> None:
    """Train the model on the run dir's data; validate each epoch and keep the best weights.

    Without --resume it starts afresh from the model preset (--size; by default sized from the corpus) and the
    options given; --force replaces an earlier training.
    With --resume it continues the saved run, and the options given change its training settings.
    """
    from s2s_cli.rundir import RunDir
    from s2s_cli.training.runner import plan_config, training_pairs
    from s2s_cli.training.runner import train as run_train
    from s2s_cli.training.schedules import plans_by_clock

    given = {k: v for k, v in locals().items() if v is not None}
    if save_every is not None:
        given.update(_save_every(save_every))
    if init_from is not None:
        given["init_from"] = str(init_from)
    run = RunDir(run_dir)
    config = plan_config(
        run,
        model={f.name: given[f.name] for f in fields(ModelConfig) if f.name in given},
        train={f.name: given[f.name] for f in fields(TrainConfig) if f.name in given},
        resume=resume,
        force=force,
    )
    if not resume:
        auto = size in (None, ModelSize.AUTO) and init_from is None
        how = f", sized for {training_pairs(run):,} training pairs" if auto else ""
        console.info(f"model: {describe_model(config.model)}{how}; {describe_training(config.train)}")
    tc = config.train
    if plans_by_clock(tc):
        console.info(
            f"cosine decay: planned when warm-up ends, from the speed so far, to end with --max-minutes "
            f"{tc.max_minutes:g} (or --epochs {tc.epochs}, if sooner)"
        )
    console.info(f"TensorBoard: tensorboard --logdir {run.logs_dir}")
    with console.TrainBar(config.train.max_steps) as bar:
        result = run_train(run, config, resume=resume, progress=bar)
    best = f" (valid BLEU {result.best_valid_bleu:.2f})" if result.best_valid_bleu is not None else ""
    console.info(
        f"trained {result.steps} steps ({result.epochs} epochs, {result.seconds:.0f}s, "
        f"{result.tgt_tokens_per_sec:,.0f} tgt tok/s); stopped by {result.stopped}; best step {result.best_step}"
        f"{best}; last valid BLEU {result.valid_bleu:.2f}"
    )
    if ctranslate2 and result.chief:
        keep_ctranslate2(run)
    if json_out:
        console.print_json(result.to_dict())


def _save_every(value: str) -> dict[str, float]:
    """--save-every N (steps) or Nm (minutes) as the two config fields."""
    minutes = value.endswith("m")
    try:
        number = float(value[:-1]) if minutes else int(value)
    except ValueError:
        raise typer.BadParameter(f"--save-every {value!r}: give steps (500) or minutes (10m).") from None
    return (
        {"save_every_steps": 0, "save_every_minutes": number}
        if minutes
        else {
            "save_every_steps": number,
            "save_every_minutes": 0.0,
        }
    )
