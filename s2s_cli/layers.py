"""Keras layers of the RNN encoder-decoder: a bidirectional encoder and attention over its states."""

from __future__ import annotations

import keras
from keras import layers, ops

NEG_INF = -1e9


def _rnn(cell: str, units: int, **kwargs) -> keras.layers.Layer:
    rnn_class = layers.LSTM if cell == "lstm" else layers.GRU
    return rnn_class(units, return_sequences=True, return_state=True, **kwargs)


def state_size(cell: str) -> int:
    """Number of state tensors per recurrent layer: LSTM carries (h, c), GRU only h."""
    return 2 if cell == "lstm" else 1


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
        self.dropout = layers.Dropout(dropout, dtype=self.dtype_policy)
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

    def call(self, query, memory, keys, src_mask):
        # query: (batch, tgt_len, units); memory, keys: (batch, src_len, units); src_mask: (batch, src_len)
        if self.kind == "bahdanau":
            # (batch, tgt_len, 1, units) + (batch, 1, src_len, units) -> scores (batch, tgt_len, src_len)
            hidden = ops.tanh(ops.expand_dims(self.query_proj(query), 2) + ops.expand_dims(keys, 1))
            scores = ops.squeeze(self.energy(hidden), -1)
        else:
            scores = ops.matmul(query, ops.transpose(keys, (0, 2, 1)))
        # Mask and normalize in float32 so bf16 runs neither overflow nor attend to padding.
        scores = ops.cast(scores, "float32")
        scores = ops.where(ops.expand_dims(src_mask, 1), scores, NEG_INF)
        weights = ops.cast(ops.softmax(scores, axis=-1), query.dtype)
        context = ops.matmul(weights, memory)  # (batch, tgt_len, units)
        return self.combine(ops.concatenate([context, query], axis=-1))

    def get_config(self) -> dict:
        return {**super().get_config(), "kind": self.kind, "units": self.units}
