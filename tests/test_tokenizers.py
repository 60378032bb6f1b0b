"""Tokenizers: fixed special ids, round trips in English and Chinese, saving and loading, CJK word splitting."""

import pytest

from s2s_cli.data.tokenizers import VocabTokenizer, load_tokenizer, train_tokenizer
from s2s_cli.tokens import BOS, EOS, PAD, SPECIALS, UNK

ZH = ["你好，世界。", "我喜欢吃苹果。", "他们在北京学中文。", "猫很小。"]
EN = ["Hello, world.", "I like to eat apples.", "They learn Chinese in Beijing.", "The cat is small."]


@pytest.mark.parametrize("kind", ["spm", "char", "word"])
@pytest.mark.parametrize("texts", [EN, ZH], ids=["en", "zh"])
def test_round_trip_and_special_ids(tmp_path, kind, texts):
    tok = train_tokenizer(kind, texts * 20, vocab_size=200, cjk=texts is ZH)
    ids = tok.encode(texts)
    assert all(min(seq) > EOS for seq in ids)  # specials are never produced by plain text
    assert [tok.decode(seq) for seq in ids] == texts
    assert tok.decode([BOS, *ids[0], EOS, *ids[1]]) == texts[0]  # stops at </s>
    tok.save(tmp_path, "tgt")
    loaded = load_tokenizer(tmp_path, "tgt", kind)
    assert loaded.encode(texts) == ids and loaded.vocab_size == tok.vocab_size


def test_word_tokenizer_splits_chinese_into_characters():
    tok = VocabTokenizer.train("word", ZH, 100)
    assert len(tok.encode(["你好，世界。"])[0]) == 6
    assert tok.tokens[: len(SPECIALS)] == list(SPECIALS) and tok.ids["<pad>"] == PAD


def test_unknown_characters_map_to_unk():
    tok = VocabTokenizer.train("char", ["abc"], 100)
    assert tok.encode(["abz"])[0] == [tok.ids["a"], tok.ids["b"], UNK]
    assert tok.decode(tok.encode(["abz"])[0]) == "ab\u2047"


def test_spm_chinese_decodes_without_spaces():
    tok = train_tokenizer("spm", ZH * 30, vocab_size=60, cjk=True)
    out = tok.decode(tok.encode(["我喜欢猫。"])[0])
    assert out == "我喜欢猫。" and " " not in out
