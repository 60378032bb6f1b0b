"""Load a trained run dir and translate sentences in length-sorted batches, returned in input order."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from s2s_cli.config import RunConfig
from s2s_cli.data.batching import pad_ids
from s2s_cli.data.corpus import normalize
from s2s_cli.data.tokenizers import Tokenizer, load_tokenizers
from s2s_cli.errors import ConfigError
from s2s_cli.inference.beam import beam_graph
from s2s_cli.inference.search import greedy_graph, max_output_lengths, search_weights, step_log_probs
from s2s_cli.models import EncoderDecoder, build_model, load_weights
from s2s_cli.rundir import RunDir
from s2s_cli.tokens import EOS, PAD


@dataclass(frozen=True)
class Hypothesis:
    ids: list[int]
    score: float  # length-normalized log-probability


@dataclass(frozen=True)
class Translation:
    text: str
    score: float


class Searcher:
    """A model's searches compiled once per setting; takes and returns numpy / Python values."""

    def __init__(self, model: EncoderDecoder) -> None:
        self.model = model
        ids = tf.TensorSpec([None, None], tf.int32)
        self.encode = tf.function(lambda src: model.encode(src, training=False), input_signature=[ids])
        self.step = tf.function(self._step, reduce_retracing=True)
        self.greedy_fn = tf.function(
            lambda src, max_lengths: greedy_graph(model, src, max_lengths),
            input_signature=[ids, tf.TensorSpec([None], tf.int32)],
        )
        self._beam_fns: dict[tuple[int, float, int], tf.types.experimental.GenericFunction] = {}
        self._lock = threading.Lock()  # batches may be decoded on several threads at once

    def _step(self, *args):
        with search_weights(self.model):
            return step_log_probs(self.model, *args)

    def beam_fn(self, beam: int, alpha: float, n_best: int):
        key = (beam, float(alpha), n_best)
        with self._lock:
            if key not in self._beam_fns:
                self._beam_fns[key] = tf.function(
                    lambda src, max_lengths: beam_graph(self.model, src, max_lengths, beam, alpha, n_best),
                    input_signature=[tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None], tf.int32)],
                )
            return self._beam_fns[key]


def greedy_search(searcher: Searcher, src: np.ndarray, max_lengths) -> list[Hypothesis]:
    """src: (batch, src_len) padded ids; returns one hypothesis per row, without <s>/</s>."""
    ids, scores = searcher.greedy_fn(tf.constant(src, tf.int32), tf.constant(max_lengths, tf.int32))
    return [Hypothesis(_until_eos(row), float(score)) for row, score in zip(ids.numpy(), scores.numpy())]


def beam_search(
    searcher: Searcher, src: np.ndarray, max_lengths, beam: int = 5, alpha: float = 0.6, n_best: int = 1
) -> list[list[Hypothesis]]:
    """Per sentence, the `n_best` finished hypotheses sorted by length-penalized score."""
    if n_best > beam:
        raise ValueError("n_best must not exceed the beam size")
    fn = searcher.beam_fn(beam, alpha, n_best)
    ids, scores, counts = (x.numpy() for x in fn(tf.constant(src, tf.int32), tf.constant(max_lengths, tf.int32)))
    return [[Hypothesis(_until_eos(ids[b, i]), float(scores[b, i])) for i in range(counts[b])] for b in range(len(ids))]


def _until_eos(ids: np.ndarray) -> list[int]:
    out = []
    for i in ids.tolist():
        if i in (EOS, PAD):
            break
        out.append(i)
    return out


class Translator:
    """A model with its tokenizers; `translate` takes and returns plain text."""

    def __init__(
        self, config: RunConfig, model: EncoderDecoder, src_tok: Tokenizer, tgt_tok: Tokenizer, workers: int = 1
    ) -> None:
        self.config, self.model, self.src_tok, self.tgt_tok = config, model, src_tok, tgt_tok
        self.searcher = Searcher(model)
        self.workers = workers  # batches decoded at once, each on its own thread (see decoding_workers)
        self.truncated = 0  # how many inputs were cut to the model's maximum source length

    @classmethod
    def from_run_dir(cls, path: Path | str | RunDir, weights: Path | None = None, workers: int = 1) -> Translator:
        run = path if isinstance(path, RunDir) else RunDir(path)
        run.require_weights()
        run.verify_manifest()
        config = run.load_config()
        src_tok, tgt_tok = load_tokenizers(run, config)
        model = build_model(
            config.model, src_tok.vocab_size, tgt_tok.vocab_size, config.train.precision, config.data.joint
        )
        load_weights(model, weights or run.weights_path)
        return cls(config, model, src_tok, tgt_tok, workers)

    def translate(
        self,
        texts: Sequence[str],
        beam: int = 5,
        n_best: int = 1,
        alpha: float = 0.6,
        batch_size: int = 256,
        on_batch: Callable[[int], None] | None = None,
    ) -> list[list[Translation]]:
        """Translate each text; returns `n_best` translations per text (one empty one for an empty text)."""
        if beam > self.tgt_tok.vocab_size:
            raise ConfigError(f"--beam {beam} is larger than the target vocabulary ({self.tgt_tok.vocab_size}).")
        results: list[list[Translation]] = [[Translation("", 0.0)] for _ in texts]
        encoded = self.encode_sources(texts)
        todo = sorted((i for i, ids in enumerate(encoded) if ids), key=lambda i: len(encoded[i]))
        # Longest batches first, so that with several workers no long batch is left to run alone at the end.
        batches = [todo[start : start + batch_size] for start in range(0, len(todo), batch_size)][::-1]

        def decode(index: list[int]) -> list[list[Hypothesis]]:
            src = pad_ids([encoded[i] for i in index])
            max_lengths = max_output_lengths((src != 0).sum(1), cap=self.config.data.max_len * 2)
            if beam == 1 and n_best == 1:
                return [[h] for h in greedy_search(self.searcher, src, max_lengths)]
            return beam_search(self.searcher, src, max_lengths, beam=beam, alpha=alpha, n_best=n_best)

        def store(index: list[int], hyps: list[list[Hypothesis]]) -> None:
            for i, nbest in zip(index, hyps):
                results[i] = [Translation(self.tgt_tok.decode(h.ids), h.score) for h in nbest]
            if on_batch:
                on_batch(len(index))

        if self.workers <= 1 or len(batches) <= 1:
            for index in batches:
                store(index, decode(index))
            return results
        with ThreadPoolExecutor(min(self.workers, len(batches)), thread_name_prefix="s2s-decode") as pool:
            futures = {pool.submit(decode, index): index for index in batches}
            try:
                for future in as_completed(futures):
                    store(futures[future], future.result())
            except BaseException:  # an error or Ctrl-C: do not start the batches still waiting
                pool.shutdown(wait=False, cancel_futures=True)
                raise
        return results

    @property
    def max_source_tokens(self) -> int:
        return self.config.data.max_len

    def encode_sources(self, texts: Sequence[str]) -> list[list[int]]:
        """Tokenize sources, cutting any longer than the model's maximum source length."""
        max_len = self.config.data.max_len
        encoded = self.src_tok.encode([normalize(t) for t in texts])  # as prepare normalized the corpus
        self.truncated = sum(len(ids) > max_len for ids in encoded)
        return [ids[:max_len] for ids in encoded]


def cpu_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def decoding_workers(requested: int | None = None) -> int:
    """How many batches to decode at once (`--workers`), with TensorFlow's CPU thread pools set to match.

    A search step is many small ops, which spread badly over cores, so one single-threaded worker per core, each
    decoding its own batch, beats one batch at a time on all cores. On CPU the default is one worker per core (at
    most 4), each op using cores // workers threads; with a GPU it is 1. TensorFlow's thread pools can only be set
    before its first op runs: called later, this leaves them as they are and only the worker count applies.
    """
    gpu = bool(tf.config.list_physical_devices("GPU"))
    cores = cpu_cores()
    workers = requested or (1 if gpu else min(cores, 4))
    if not gpu:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(max(1, cores // workers))
            tf.config.threading.set_inter_op_parallelism_threads(max(cores, workers))
        except RuntimeError:  # TensorFlow is already running
            pass
    return workers
