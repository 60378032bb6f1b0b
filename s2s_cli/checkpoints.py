"""Step checkpoints: every model and optimizer variable plus the trainer's position, saved atomically."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from s2s_cli.errors import RunDirError
from s2s_cli.rundir import RunDir, make_temp_dir, versions

VARIABLES = "variables.npz"
STATE = "state.json"
PREFIX = "ckpt-"


def _variables(model, optimizer) -> list:
    # model.variables includes the dropout layers' seed-generator states, so resumed dropout masks match.
    return [*model.variables, *optimizer.variables]


def save_checkpoint(run: RunDir, model, optimizer, state: dict[str, Any], keep: int) -> Path:
    """Write checkpoints/ckpt-STEP as a whole (temp dir, then rename) and keep the newest `keep`."""
    final = run.checkpoints_dir / f"{PREFIX}{state['step']:09d}"
    tmp = make_temp_dir(run.checkpoints_dir, prefix=".tmp-")
    try:
        arrays = {f"v{i:05d}": np.asarray(v.numpy()) for i, v in enumerate(_variables(model, optimizer))}
        with (tmp / VARIABLES).open("wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        names = [v.path for v in _variables(model, optimizer)]
        (tmp / STATE).write_text(json.dumps({**state, "variables": names, "versions": versions()}, indent=1))
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for old in list_checkpoints(run)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(run: RunDir) -> list[Path]:
    """Complete checkpoints, oldest first (temp dirs of an interrupted save are ignored)."""
    if not run.checkpoints_dir.is_dir():
        return []
    return sorted(p for p in run.checkpoints_dir.glob(f"{PREFIX}*") if (p / STATE).is_file())


def load_checkpoint(path: Path, model, optimizer) -> dict[str, Any]:
    """Restore variables in place and return the trainer state saved with them."""
    try:
        state = json.loads((path / STATE).read_text())
        with np.load(path / VARIABLES, allow_pickle=False) as data:
            arrays = [data[f"v{i:05d}"] for i in range(len(data.files))]
    except (OSError, ValueError, KeyError) as err:
        raise RunDirError(f"checkpoint {path} cannot be read ({err}); delete it to resume from an older one.") from None
    variables = _variables(model, optimizer)
    shapes_match = len(arrays) == len(variables) and all(
        tuple(a.shape) == tuple(v.shape) for a, v in zip(arrays, variables)
    )
    if not shapes_match:
        raise RunDirError(f"checkpoint {path} does not fit the model in config.json; it comes from another run.")
    for variable, array in zip(variables, arrays):
        variable.assign(array)
    return state
