"""build_model: the one place that knows every architecture. Each architecture's blocks live in their own module."""

from __future__ import annotations

from pathlib import Path

from keras import ops

from s2s_cli.config import Arch, ModelConfig, Precision
from s2s_cli.errors import RunDirError
from s2s_cli.models.base import EncoderDecoder, masked_loss, output_losses, token_losses
from s2s_cli.models.rnn import Seq2Seq
from s2s_cli.models.transformer import TransformerSeq2Seq

ARCHITECTURES: dict[Arch, type[EncoderDecoder]] = {Arch.RNN: Seq2Seq, Arch.TRANSFORMER: TransformerSeq2Seq}

__all__ = [
    "ARCHITECTURES",
    "EncoderDecoder",
    "build_model",
    "load_weights",
    "masked_loss",
    "output_losses",
    "token_losses",
]


def build_model(
    config: ModelConfig, src_vocab: int, tgt_vocab: int, precision: str = Precision.FLOAT32, joint: bool = False
) -> EncoderDecoder:
    """Build the model `config` describes and create its variables, so weights can be loaded into it.

    `precision` bf16 is Keras' mixed_bfloat16 policy (float32 variables, bfloat16 compute). `joint`: source and
    target share one vocabulary (prepare --joint), hence one embedding table (and, with tie_embeddings, the output
    layer's too)."""
    dtype = "mixed_bfloat16" if precision == Precision.BF16 else "float32"
    model = ARCHITECTURES[Arch(config.arch)](config, src_vocab, tgt_vocab, dtype=dtype, joint=joint)
    model((ops.ones((1, 2), dtype="int32"), ops.ones((1, 2), dtype="int32")))
    return model


def load_weights(model: EncoderDecoder, path: Path) -> None:
    """Load a weights file into `model`; one that does not fit it is a RunDirError."""
    try:
        model.load_weights(str(path))
    except (ValueError, OSError, KeyError) as err:
        raise RunDirError(
            f"{path} does not fit the model described by config.json ({str(err).splitlines()[0]}): "
            "the weights and config/tokenizers come from different runs; retrain with `s2s train`."
        ) from None
