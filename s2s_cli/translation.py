"""Load a trained run dir and translate sentences in length-sorted batches, returned in input order."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import tensorflow as tf

from s2s_cli.config import RunConfig
from s2s_cli.corpus import normalize
from s2s_cli.errors import RunDirError
from s2s_cli.model import Seq2Seq, build_model
from s2s_cli.pipeline import pad_ids
from s2s_cli.rundir import RunDir
from s2s_cli.search import Hypothesis, Searcher, beam_search, greedy_search, max_output_lengths
from s2s_cli.tokenizers import Tokenizer, load_tokenizer


@dataclass(frozen=True)
class Translation:
    text: str
    score: float


class Translator:
    """A model with its tokenizers; `translate` takes and returns plain text."""

    def __init__(
        self, config: RunConfig, model: Seq2Seq, src_tok: Tokenizer, tgt_tok: Tokenizer, workers: int = 1
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

    def encode_sources(self, texts: Sequence[str]) -> list[list[int]]:
        """Tokenize sources, cutting any longer than the model's maximum source length."""
        max_len = self.config.data.max_len
        encoded = self.src_tok.encode([normalize(t) for t in texts])  # as prepare normalized the corpus
        self.truncated = sum(len(ids) > max_len for ids in encoded)
        return [ids[:max_len] for ids in encoded]


def load_tokenizers(run: RunDir, config: RunConfig) -> tuple[Tokenizer, Tokenizer]:
    kind = config.data.tokenizer
    return load_tokenizer(run.tokenizer_dir(), "src", kind), load_tokenizer(run.tokenizer_dir(), "tgt", kind)


def load_weights(model: Seq2Seq, path: Path) -> None:
    try:
        model.load_weights(str(path))
    except (ValueError, OSError, KeyError) as err:
        raise RunDirError(
            f"{path} does not fit the model described by config.json ({str(err).splitlines()[0]}): "
            "the weights and config/tokenizers come from different runs; retrain with `s2s train`."
        ) from None


def decoding_workers(requested: int | None = None) -> int:
    """How many batches to decode at once (`--workers`), with TensorFlow's CPU thread pools set to match.

    A search step is many small ops, which spread badly over cores: on 2 cores, one single-threaded worker per core,
    each decoding its own batch, translates the Multi30k test set 40–45% faster than one batch at a time on both cores.
    So on CPU the default is one worker per core (at most 4), each op using cores // workers threads; with a GPU it is
    1. TensorFlow's thread pools can only be set before its first op runs: called later, this leaves them as they are
    and only the worker count applies.
    """
    gpu = bool(tf.config.list_physical_devices("GPU"))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    workers = requested or (1 if gpu else min(cores, 4))
    if not gpu:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(max(1, cores // workers))
            tf.config.threading.set_inter_op_parallelism_threads(max(cores, workers))
        except RuntimeError:  # TensorFlow is already running
            pass
    return workers
