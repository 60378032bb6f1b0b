"""Corpus size: wall time and peak memory of `prepare` and of 200 training steps on an N-pair corpus, as JSON.

The corpus joins two Multi30k pairs a line (about 25 words a side), all lines distinct:

python bench/scale.py --data ../shared/data/multi30k --pairs 2000000 [--steps 200] [--work DIR] --json

Each phase runs in its own process, so that its peak RSS is its own; tree_peak_rss_mb is the most that process and
its workers (prepare starts one a core) held at once, sampled every 0.5 s. `spm` times SentencePiece alone on the same
sample as prepare's, the yardstick for prepare's own time.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="folder with train.en and train.de")
    parser.add_argument("--pairs", type=int, default=200_000)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--work", type=Path, help="keep the corpus and run dir here (default: a temporary dir)")
    parser.add_argument("--phase", choices=["prepare", "spm", "train"], help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true", help="print only the JSON result")
    args, rest = parser.parse_known_args()
    if args.phase:
        return _phase(args.phase, rest)
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        corpus = work / f"corpus-{args.pairs}.tsv"
        started = time.perf_counter()
        if not corpus.is_file():
            _write_corpus(args.data, args.pairs, corpus)
        result = {"pairs": args.pairs, "corpus_mb": round(corpus.stat().st_size / 2**20, 1)}
        result["corpus_seconds"] = round(time.perf_counter() - started, 1)
        run = work / f"run-{args.pairs}"
        result["prepare"] = _child("prepare", str(corpus), str(run))
        result["prepare"]["pairs_per_sec"] = round(args.pairs / result["prepare"]["seconds"], 1)
        result["spm"] = _child("spm", str(run))
        result["train"] = _child("train", str(run), str(args.steps))
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))


def _write_corpus(data: Path, pairs: int, out: Path) -> None:
    en = (data / "train.en").read_text(encoding="utf-8").splitlines()
    de = (data / "train.de").read_text(encoding="utf-8").splitlines()
    n = len(en)
    with out.open("w", encoding="utf-8") as f:
        for k in range(pairs):
            i, j = k % n, (k // n * 7919 + k % n + 1) % n  # a distinct second pair for each of n * n lines
            f.write(f"{en[i]} {en[j]}\t{de[i]} {de[j]}\n")


def _child(phase: str, *args: str) -> dict:
    command = [sys.executable, __file__, "--phase", phase, *args]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        child, tree_peak = subprocess.Popen(command, stdout=out, stderr=err, text=True), 0
        while child.poll() is None:
            tree_peak = max(tree_peak, _tree_rss_kb(child.pid))
            time.sleep(0.5)
        out.seek(0), err.seek(0)
        if child.returncode:
            sys.exit(f"{phase} failed:\n{err.read()[-3000:]}")
        result = json.loads(out.read().splitlines()[-1])
    return result | {"tree_peak_rss_mb": round(tree_peak / 1024, 1)}


def _tree_rss_kb(root: int) -> int:
    """The resident memory of a process and all its descendants now (Linux /proc), in KiB."""
    parents, rss = {}, {}
    for stat in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":", 1) for line in stat.read_text().splitlines() if ":" in line)
        except OSError:
            continue
        pid = int(stat.parent.name)
        parents[pid] = int(fields["PPid"])
        rss[pid] = int(fields.get("VmRSS", "0 kB").split()[0])
    tree, grew = {root}, True
    while grew:
        grew = False
        for pid, parent in parents.items():
            if parent in tree and pid not in tree:
                tree.add(pid)
                grew = True
    return sum(rss.get(pid, 0) for pid in tree)


def _phase(phase: str, args: list[str]) -> None:
    started = time.perf_counter()
    if phase == "prepare":
        from s2s_cli.config import DataConfig
        from s2s_cli.data.prepare import prepare

        result = prepare(Path(args[0]), None, Path(args[1]), DataConfig(), force=True)
        extra = {"train_pairs": result.split_sizes["train"], "too_long": result.too_long}
    elif phase == "spm":
        from s2s_cli.data.tokenizers import train_tokenizer_files
        from s2s_cli.rundir import RunDir

        run = RunDir(args[0])
        data = run.load_config().data
        sentences = sum(1 for _ in run.split_path("train", "src").open(encoding="utf-8"))
        for side in ("src", "tgt"):
            train_tokenizer_files(
                data.tokenizer,
                [run.split_path("train", side)],
                sentences,
                data.vocab_size,
                data.spm_model_type,
                sample=data.spm_sample,
                threads=data.spm_threads,
            )
        extra = {"sample": data.spm_sample, "threads": data.spm_threads}
    else:
        from s2s_cli.rundir import RunDir
        from s2s_cli.training.runner import plan_config, train

        run = RunDir(args[0])
        # today's default shape at every N, so that memory compares like with like (not the data-sized default)
        shape = {"arch": "transformer", "d_model": 256, "heads": 4, "ff_dim": 1024, "layers": 3}
        options = {"max_steps": int(args[1]), "valid_max_sentences": 500}
        config = plan_config(run, shape, options, resume=False, force=True)
        result = train(run, config)
        extra = {"steps": result.steps, "tgt_tokens_per_sec": result.tgt_tokens_per_sec}
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": round(seconds, 1), "peak_rss_mb": round(peak, 1), **extra}))


if __name__ == "__main__":
    main()
