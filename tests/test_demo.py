"""The README's Quick start, end to end as a user runs it (slow: it trains the default model for 30 epochs)."""

import json
import subprocess
import sys

import pytest
from helpers import SAMPLE

pytestmark = pytest.mark.slow


def s2s(*args: str, cwd) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "s2s_cli", *args], cwd=cwd, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_the_quick_start_translates_the_sample_well(tmp_path):
    s2s("prepare", str(SAMPLE), cwd=tmp_path)
    s2s("train", cwd=tmp_path)
    scores = json.loads(s2s("evaluate", "--json", cwd=tmp_path).stdout)
    assert scores["sentences"] == 200 and scores["bleu"] >= 90, scores
    assert s2s("translate", "Hello, world.", cwd=tmp_path).stdout == "你好，世界。\n"
