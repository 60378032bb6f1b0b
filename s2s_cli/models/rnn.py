"""The RNN encoder-decoder: embeddings -> bidirectional LSTM/GRU encoder -> LSTM/GRU decoder with attention."""

from __future__ import annotations

import keras
from keras import layers, ops

from s2s_cli.config import Cell, ModelConfig
from s2s_cli.models.base import NEG_INF, Dropout, EncoderDecoder
from s2s_cli.tokens import PAD


def _rnn(cell: str, units: int, **kwargs) -> keras.layers.Layer:
    rnn_class = layers.LSTM if cell == Cell.LSTM else layers.GRU
    return rnn_class(units, return_sequences=True, return_state=True, **kwargs)


def state_size(cell: str) -> int:
    """Number of state tensors per recurrent layer: LSTM carries (h, c), GRU only h."""
    return 2 if cell == Cell.LSTM else 1


@keras.saving.register_keras_serializable(package="s2s")
class BiRNNEncoder(layers.Layer):
    """A stack of bidirectional LSTM/GRU layers over embedded source tokens.

    Returns memory (batch, src_len, 2 * units) and the top layer's final states, forward and backward
    concatenated: a list of `state_size(cell)` tensors of shape (batch, 2 * units).
    """

    def __init__(self, cell: str, units: int, num_layers: int, dropout: float, **kwargs) -> None:
        super().__init__(**kwargs)
        self.cell, self.units, self.num_layers, self.dropout_rate = cell, units, num_layers, dropout
        self.rnns = [
            layers.Bidirectional(_rnn(cell, units, dtype=self.dtype_policy), name=f"birnn_{i}", dtype=self.dtype_policy)
            for i in range(num_layers)
        ]
        self.dropout = Dropout(dropout, dtype=self.dtype_policy)
        self.supports_masking = True

    def call(self, x, mask=None, training=False):
        # x: (batch, src_len, emb_dim); mask: (batch, src_len) bool
        n = state_size(self.cell)
        for rnn in self.rnns:
            outputs = rnn(x, mask=mask, training=training)
            x = self.dropout(outputs[0], training=training)
            fw, bw = outputs[1 : 1 + n], outputs[1 + n :]
        states = [ops.concatenate([f, b], axis=-1) for f, b in zip(fw, bw)]
        return x, states

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "cell": self.cell,
            "units": self.units,
            "num_layers": self.num_layers,
            "dropout": self.dropout_rate,
        }


@keras.saving.register_keras_serializable(package="s2s")
class Attention(layers.Layer):
    """Attention of decoder outputs over encoder memory: Luong `dot`/`general` or Bahdanau (additive) scores.

    The query is the decoder's output at each step (Luong's placement), so training runs over the whole target
    sequence at once; `bahdanau` changes the score to v^T tanh(W q + U m).
    """

    def __init__(self, kind: str, units: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.kind, self.units = kind, units
        policy = self.dtype_policy
        self.key_proj = None if kind == "dot" else layers.Dense(units, use_bias=False, name="key", dtype=policy)
        self.query_proj = (
            layers.Dense(units, use_bias=False, name="query", dtype=policy) if kind == "bahdanau" else None
        )
        self.energy = layers.Dense(1, use_bias=False, name="energy", dtype=policy) if kind == "bahdanau" else None
        self.combine = layers.Dense(units, activation="tanh", use_bias=False, name="combine", dtype=policy)

    def precompute_keys(self, memory):
        """Keys depend only on the memory, so search computes them once per sentence."""
        # memory: (batch, src_len, units) -> keys: (batch, src_len, units)
        return memory if self.key_proj is None else self.key_proj(memory)

    def attention_weights(self, query, keys, src_mask):
        """query: (batch, tgt_len, units) -> attention weights (batch, tgt_len, src_len) float32."""
        if self.kind == "bahdanau":
            # (batch, tgt_len, 1, units) + (batch, 1, src_len, units) -> scores (batch, tgt_len, src_len)
            hidden = ops.tanh(ops.expand_dims(self.query_proj(query), 2) + ops.expand_dims(keys, 1))
            scores = ops.squeeze(self.energy(hidden), -1)
        else:
            scores = ops.matmul(query, ops.transpose(keys, (0, 2, 1)))
        # Mask and normalize in float32 so bf16 runs neither overflow nor attend to padding.
        scores = ops.cast(scores, "float32")
        scores = ops.where(ops.expand_dims(src_mask, 1), scores, NEG_INF)
        return ops.softmax(scores, axis=-1)

    def call(self, query, memory, keys, src_mask):
        # query: (batch, tgt_len, units); memory, keys: (batch, src_len, units); src_mask: (batch, src_len)
        weights = ops.cast(self.attention_weights(query, keys, src_mask), query.dtype)
        context = ops.matmul(weights, memory)  # (batch, tgt_len, units)
        return self.combine(ops.concatenate([context, query], axis=-1))

    def get_config(self) -> dict:
        return {**super().get_config(), "kind": self.kind, "units": self.units}


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
        self.decoder_rnns = [_rnn(c.cell, c.hidden, name=f"decoder_rnn_{i}", dtype=policy) for i in range(c.dec_layers)]
        self.attention = Attention(c.attention, c.hidden, name="attention", dtype=policy)
        self.dropout = Dropout(c.dropout, dtype=policy)
        self.build_output()

    def encode(self, src, training=False):
        """src: (batch, src_len) ids -> memory (batch, src_len, hidden), keys, src_mask, decoder states."""
        src_mask = ops.not_equal(src, PAD)
        x = self.dropout(self.src_embedding(src), training=training)
        outputs, final = self.encoder(x, mask=src_mask, training=training)
        memory = self.memory_proj(outputs)
        init = [bridge(state) for bridge, state in zip(self.bridges, final)]
        states = init * self.config.dec_layers
        return memory, self.attention.precompute_keys(memory), src_mask, states

    def pad_encoded(self, memory, keys, length):
        pad = [[0, 0], [0, length - ops.shape(memory)[1]], [0, 0]]  # both (batch, src_len, units)
        return ops.pad(memory, pad), ops.pad(keys, pad)

    def decode(self, tgt_in, memory, keys, src_mask, states, training=False, project=True):
        """tgt_in: (batch, tgt_len) ids -> logits (batch, tgt_len, tgt_vocab) float32 (the hidden states before
        the output layer when not `project`), new states.

        With tgt_len == 1 this is one incremental search step; the recurrent states carry the prefix.
        """
        x, new_states = self._decoder_rnns(tgt_in, states, training)
        hidden = self.dropout(self.attention(x, memory, keys, src_mask), training=training)
        return (self.project(hidden) if project else hidden), new_states

    def _decoder_rnns(self, tgt_in, states, training):
        n = state_size(self.config.cell)
        x = self.dropout(self.tgt_embedding(tgt_in), training=training)
        new_states = []
        for i, rnn in enumerate(self.decoder_rnns):
            out = rnn(x, initial_state=states[i * n : (i + 1) * n], training=training)
            x, layer_states = out[0], list(out[1:])
            new_states += layer_states
            x = self.dropout(x, training=training) if i < len(self.decoder_rnns) - 1 else x
        return x, new_states

    def alignment(self, src, tgt_in):
        """The attention over the source at each target position: (batch, tgt_len, src_len)."""
        _, keys, src_mask, states = self.encode(src)
        x, _ = self._decoder_rnns(tgt_in, states, False)
        return self.attention.attention_weights(x, keys, src_mask)

    def tied_output_scale(self) -> float:
        return self.config.emb_dim**-0.5  # the embeddings are N(0, 1)
