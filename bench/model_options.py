"""The flags the bench scripts share: the model shape, so each builds exactly the shape it is asked for, and the
parallel corpus the training benches read."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from s2s_cli.config import Arch, Cell, ModelConfig


def add_corpus_options(parser: argparse.ArgumentParser) -> None:
    """--data, a folder holding train.SRC and train.TGT, and the two languages."""
    parser.add_argument("--data", type=Path, required=True, help="folder with train.SRC and train.TGT")
    parser.add_argument("--src", default="en")
    parser.add_argument("--tgt", default="de")


def train_files(args: argparse.Namespace) -> tuple[Path, Path]:
    """The training files of --data; exits with one line when they are not there."""
    src_file, tgt_file = args.data / f"train.{args.src}", args.data / f"train.{args.tgt}"
    if not src_file.is_file():
        sys.exit(f"{src_file} not found: give --data a folder holding train.{args.src} and train.{args.tgt}")
    return src_file, tgt_file


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """Shape flags whose defaults are `s2s train`'s (ModelConfig's)."""
    default = ModelConfig()
    parser.add_argument("--arch", default=default.arch.value, choices=[a.value for a in Arch])
    parser.add_argument("--cell", default=default.cell.value, choices=[c.value for c in Cell])
    parser.add_argument("--emb", type=int, default=default.emb_dim, help="RNN embedding size")
    parser.add_argument("--hidden", type=int, default=default.hidden, help="RNN hidden size")
    parser.add_argument("--layers", type=int, default=default.layers)
    parser.add_argument("--decoder-layers", type=int, default=default.decoder_layers)
    parser.add_argument("--d-model", type=int, default=default.d_model, help="Transformer width")
    parser.add_argument("--heads", type=int, default=default.heads)
    parser.add_argument("--ff-dim", type=int, default=default.ff_dim)
    parser.add_argument("--dropout", type=float, default=default.dropout)
    parser.add_argument("--attention-dropout", type=float, help="Transformer (default: --dropout)")
    parser.add_argument("--activation-dropout", type=float, help="Transformer (default: --dropout)")
    parser.add_argument(
        "--tie-embeddings",
        action=argparse.BooleanOptionalAction,
        default=default.tie_embeddings,
        help="target embedding = output matrix (with a joint vocabulary, the source embedding too)",
    )


def model_config(args: argparse.Namespace) -> ModelConfig:
    return ModelConfig(
        arch=args.arch,
        cell=args.cell,
        emb_dim=args.emb,
        hidden=args.hidden,
        layers=args.layers,
        decoder_layers=args.decoder_layers,
        d_model=args.d_model,
        heads=args.heads,
        ff_dim=args.ff_dim,
        dropout=args.dropout,
        attention_dropout=args.attention_dropout,
        activation_dropout=args.activation_dropout,
        tie_embeddings=args.tie_embeddings,
    )


def model_settings(args: argparse.Namespace) -> dict:
    """The shape flags that matter for --arch, for the JSON result."""
    transformer = ["d_model", "heads", "ff_dim", "attention_dropout", "activation_dropout"]
    names = ["layers", "dropout", "tie_embeddings"] + (
        transformer if args.arch == "transformer" else ["cell", "emb", "hidden"]
    )
    return {"arch": args.arch, **{name: getattr(args, name) for name in names}}
