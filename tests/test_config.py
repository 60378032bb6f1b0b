"""Configs: round trip through config.json, unknown keys refused, choices as Enums, values checked."""

import json

import pytest

from s2s_cli.config import Arch, DataConfig, ModelConfig, RunConfig, Strategy, TokenizerKind, TrainConfig
from s2s_cli.errors import ConfigError
from s2s_cli.rundir import RunDir


def test_config_round_trip_and_unknown_keys(tmp_path):
    run = RunDir(tmp_path)
    config = RunConfig(data=DataConfig(tgt_lang="zh"), model=ModelConfig(hidden=32))
    run.save_config(config)
    assert run.load_config() == config
    raw = json.loads((tmp_path / "config.json").read_text())
    assert set(raw["versions"]) == {"s2s", "keras", "tensorflow"}
    raw["model"]["colour"] = "blue"
    (tmp_path / "config.json").write_text(json.dumps(raw))
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['colour'\]"):
        run.load_config()


def test_invalid_values_are_config_errors():
    with pytest.raises(ConfigError, match="--cell must be one of lstm, gru"):
        ModelConfig(cell="rnn")
    with pytest.raises(ConfigError, match="--tie-embeddings needs"):
        ModelConfig(arch="rnn", emb_dim=8, hidden=16, tie_embeddings=True)


def test_choices_given_as_strings_become_enums_and_are_saved_as_strings(tmp_path):
    config = RunConfig(DataConfig(tokenizer="char"), ModelConfig(arch="rnn"), TrainConfig(strategy="multi-worker"))
    assert config.model.arch is Arch.RNN and config.train.strategy is Strategy.MULTI_WORKER
    assert config.data.tokenizer is TokenizerKind.CHAR and f"{config.data.tokenizer}" == "char"
    plain = config.to_dict()
    assert plain["model"]["arch"] == "rnn" and type(plain["model"]["arch"]) is str
    RunDir(tmp_path).save_config(config)
    assert json.loads((tmp_path / "config.json").read_text())["train"]["strategy"] == "multi-worker"
    with pytest.raises(ConfigError, match="--strategy must be one of auto, one, mirrored, multi-worker"):
        TrainConfig(strategy="tpu")


@pytest.mark.parametrize(
    "pairs, size, d_model, layers",
    [(0, "small", 128, 2), (9_999, "small", 128, 2), (10_000, "medium", 256, 3), (999_999, "medium", 256, 3),
     (1_000_000, "base", 512, 6), (50_000_000, "base", 512, 6)],
)  # fmt: skip
def test_auto_size_picks_the_preset_by_training_pairs(pairs, size, d_model, layers):
    from s2s_cli.presets import sized_model

    model = sized_model("auto", pairs)
    assert (model.size, model.d_model, model.layers) == (size, d_model, layers)
    assert sized_model(size, 0) == model  # an explicit size ignores the corpus


def test_the_medium_preset_is_the_dataclass_default():
    from s2s_cli.presets import sized_model

    assert sized_model("medium", 0) == ModelConfig()
