"""The Seq2Seq model (embeddings -> BiRNN encoder -> RNN decoder with attention) and its masked loss."""

from __future__ import annotations

import keras
from keras import layers, ops

from s2s_cli.config import ModelConfig
from s2s_cli.layers import Attention, BiRNNEncoder, _rnn, state_size
from s2s_cli.tokenizers import PAD


class EncoderDecoder(keras.Model):
    """What the RNN and Transformer models share: the output layer, the training call and the config.

    Subclasses build `tgt_embedding` and call `build_output()` after their layers, and implement
    `encode(src)` -> (memory, keys, src_mask, states) and `decode(tgt_in, memory, keys, src_mask, states)`.
    """

    def __init__(
        self,
        config: ModelConfig,
        src_vocab: int,
        tgt_vocab: int,
        dtype: str = "float32",
        joint: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(dtype=dtype, **kwargs)
        self.config, self.src_vocab, self.tgt_vocab, self.joint = config, src_vocab, tgt_vocab, joint
        if joint and src_vocab != tgt_vocab:
            raise ValueError("a joint vocabulary has one size for source and target")

    def build_embeddings(self, dim: int, initializer) -> None:
        """Source and target embeddings: one shared table when the vocabulary is joint (prepare --joint)."""
        policy = self.dtype_policy

        def embedding(vocab: int, name: str) -> layers.Embedding:
            return layers.Embedding(vocab, dim, embeddings_initializer=initializer, name=name, dtype=policy)

        # Source first: the order in which layers are created is the layout of saved weight files.
        self.src_embedding = embedding(self.src_vocab, "src_embedding" if not self.joint else "shared_embedding")
        self.tgt_embedding = self.src_embedding if self.joint else embedding(self.tgt_vocab, "tgt_embedding")

    def tied_output_scale(self) -> float:
        """Factor on tied-embedding logits that keeps them as small as an untied layer's at initialization."""
        return 1.0

    def build_output(self) -> None:
        self.output_bias = self.add_weight(shape=(self.tgt_vocab,), initializer="zeros", name="output_bias")
        self.output_proj = (
            None
            if self.config.tie_embeddings
            else layers.Dense(self.tgt_vocab, use_bias=False, name="output_proj", dtype=self.dtype_policy)
        )

    def project(self, hidden):
        """hidden: (batch, tgt_len, size) -> float32 logits (batch, tgt_len, tgt_vocab).

        The projection, the largest matmul of a step, runs in the compute dtype (bf16 under mixed precision, as
        in the Keras mixed-precision guide); logits are cast to float32 before softmax and loss.
        """
        if self.output_proj is None:
            table = ops.cast(self.tgt_embedding.embeddings, hidden.dtype) * self.tied_output_scale()
            logits = ops.matmul(hidden, ops.transpose(table))
        else:
            logits = self.output_proj(hidden)
        return ops.cast(logits, "float32") + ops.cast(self.output_bias, "float32")

    def pad_encoded(self, memory, keys, length):
        """`encode`'s memory and attention keys, padded with zeros along their source axis to `length` positions.

        Search encodes a batch in chunks, each cut to its own longest sentence, and pads them back to the batch's;
        the source mask hides the padding, as it does any other."""
        raise NotImplementedError

    def call(self, inputs, training=False):
        src, tgt_in = inputs
        memory, keys, src_mask, states = self.encode(src, training=training)
        logits, _ = self.decode(tgt_in, memory, keys, src_mask, states, training=training)
        return logits

    def get_config(self) -> dict:
        return {
            "config": vars(self.config),
            "src_vocab": self.src_vocab,
            "tgt_vocab": self.tgt_vocab,
            "joint": self.joint,
        }


@keras.saving.register_keras_serializable(package="s2s")
class Seq2Seq(EncoderDecoder):
    """Encoder-decoder whose encoder and one-step decoder are separately callable for search.

    Decoder state is a flat list: for each decoder layer, `state_size(cell)` tensors of shape (batch, hidden).
    """

    def __init__(self, config: ModelConfig, src_vocab: int, tgt_vocab: int, **kwargs) -> None:
        super().__init__(config, src_vocab, tgt_vocab, **kwargs)
        c, policy = config, self.dtype_policy
        # Keras' default uniform(+-0.05) embeddings give the recurrent layers almost no input signal at first, and
        # training then sits at the unigram loss for hundreds of steps; N(0, 1) (as in PyTorch) avoids that.
        init = keras.initializers.RandomNormal(stddev=1.0)
        self.build_embeddings(c.emb_dim, init)
        self.encoder = BiRNNEncoder(c.cell, c.hidden, c.layers, c.dropout, name="encoder", dtype=policy)
        self.memory_proj = layers.Dense(c.hidden, use_bias=False, name="memory_proj", dtype=policy)
        self.bridges = [
            layers.Dense(c.hidden, activation="tanh", name=f"bridge_{i}", dtype=policy)
            for i in range(state_size(c.cell))
        ]
        self.decoder_rnns = [_rnn(c.cell, c.hidden, name=f"decoder_rnn_{i}", dtype=policy) for i in range(c.layers)]
        self.attention = Attention(c.attention, c.hidden, name="attention", dtype=policy)
        self.dropout = layers.Dropout(c.dropout, dtype=policy)
        self.build_output()

    def encode(self, src, training=False):
        """src: (batch, src_len) ids -> memory (batch, src_len, hidden), keys, src_mask, decoder states."""
        src_mask = ops.not_equal(src, PAD)
        x = self.dropout(self.src_embedding(src), training=training)
        outputs, final = self.encoder(x, mask=src_mask, training=training)
        memory = self.memory_proj(outputs)
        init = [bridge(state) for bridge, state in zip(self.bridges, final)]
        states = init * self.config.layers
        return memory, self.attention.precompute_keys(memory), src_mask, states

    def pad_encoded(self, memory, keys, length):
        pad = [[0, 0], [0, length - ops.shape(memory)[1]], [0, 0]]  # both (batch, src_len, units)
        return ops.pad(memory, pad), ops.pad(keys, pad)

    def decode(self, tgt_in, memory, keys, src_mask, states, training=False):
        """tgt_in: (batch, tgt_len) ids -> logits (batch, tgt_len, tgt_vocab) float32, new states.

        With tgt_len == 1 this is one incremental search step; the recurrent states carry the prefix.
        """
        n = state_size(self.config.cell)
        x = self.dropout(self.tgt_embedding(tgt_in), training=training)
        new_states = []
        for i, rnn in enumerate(self.decoder_rnns):
            out = rnn(x, initial_state=states[i * n : (i + 1) * n], training=training)
            x, layer_states = out[0], list(out[1:])
            new_states += layer_states
            x = self.dropout(x, training=training) if i < len(self.decoder_rnns) - 1 else x
        hidden = self.dropout(self.attention(x, memory, keys, src_mask), training=training)
        return self.project(hidden), new_states

    def tied_output_scale(self) -> float:
        return self.config.emb_dim**-0.5  # the embeddings are N(0, 1)


def build_model(
    config: ModelConfig, src_vocab: int, tgt_vocab: int, precision: str = "float32", joint: bool = False
) -> keras.Model:
    """Build the RNN or Transformer model and create its variables, so weights can be loaded into it.

    `joint`: source and target share one vocabulary (prepare --joint), hence one embedding table (and, with
    tie_embeddings, the output layer's too)."""
    from s2s_cli.transformer import TransformerSeq2Seq

    model_class = TransformerSeq2Seq if config.arch == "transformer" else Seq2Seq
    dtype = "mixed_bfloat16" if precision == "bf16" else "float32"
    model = model_class(config, src_vocab, tgt_vocab, dtype=dtype, joint=joint)
    model((ops.ones((1, 2), dtype="int32"), ops.ones((1, 2), dtype="int32")))
    return model


def masked_loss(labels, logits, label_smoothing: float = 0.0):
    """Token-level cross-entropy over non-pad labels, with optional label smoothing.

    labels: (batch, tgt_len) ids; logits: (batch, tgt_len, vocab). Returns (mean loss, number of tokens).
    """
    log_probs = ops.log_softmax(ops.cast(logits, "float32"), axis=-1)
    nll = -ops.squeeze(ops.take_along_axis(log_probs, ops.expand_dims(labels, -1), axis=-1), -1)
    if label_smoothing:
        nll = (1.0 - label_smoothing) * nll - label_smoothing * ops.mean(log_probs, axis=-1)
    mask = ops.cast(ops.not_equal(labels, PAD), "float32")
    tokens = ops.sum(mask)
    return ops.sum(nll * mask) / ops.maximum(tokens, 1.0), tokens
