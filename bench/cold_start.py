"""Cold start: the wall time of a whole `s2s translate -r RUN TEXT` process, as a user calls it from a script, for
each engine; the median of --runs, printed as JSON.

python bench/cold_start.py --run-dir R [--text "A man is riding a bike."] [--runs 5] [--engine auto s2s] --json

`auto` uses the run dir's own CTranslate2 copy, which `s2s train` keeps when ctranslate2 is installed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--text", default="A man is riding a bike.")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--engine", nargs="+", default=["auto", "s2s"], choices=["auto", "s2s", "ctranslate2"])
    parser.add_argument("--json", action="store_true", help="print only the JSON result")
    args = parser.parse_args()
    out = {}
    for engine in args.engine:
        command = [sys.executable, "-m", "s2s_cli", "translate", "-r", str(args.run_dir), "--engine", engine]
        seconds, output = [], None
        for _ in range(args.runs):
            started = time.perf_counter()
            done = subprocess.run([*command, args.text], capture_output=True, text=True)
            seconds.append(time.perf_counter() - started)
            if done.returncode:
                sys.exit(f"{' '.join(command)} failed: {done.stderr.strip().splitlines()[-1:]}")
            output = done.stdout.strip()
        out[engine] = {"median_s": round(statistics.median(seconds), 2), "runs_s": [round(s, 2) for s in seconds]}
        out[engine]["translation"] = output
    print(json.dumps(out) if args.json else json.dumps(out, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
