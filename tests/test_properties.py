"""Property-based tests on arbitrary Unicode: corpus parsing and tokenizer round trips never crash or leak."""

from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from s2s_cli.data.corpus import normalize, read_corpus
from s2s_cli.data.tokenizers import VocabTokenizer
from s2s_cli.errors import DataError
from s2s_cli.tokens import EOS


@given(st.text())
@example("e\x00\u0301")  # NUL between a letter and its combining accent
def test_normalize_is_idempotent_and_strips_control_whitespace(text):
    out = normalize(text)
    assert normalize(out) == out
    assert not {"\t", "\n", "\r", "\x00", "\ufeff"} & set(out)
    assert out == out.strip()


@settings(max_examples=50, deadline=None)
@given(st.lists(st.binary(max_size=40), max_size=15))
def test_any_bytes_parse_without_crashing(tmp_path_factory, lines):
    path = tmp_path_factory.mktemp("prop") / "c.tsv"
    path.write_bytes(b"\n".join(lines) + b"\nok\tfine\n")
    try:
        pairs, stats = read_corpus(path)
    except DataError as err:  # refused as a whole, for what its first bytes are
        assert any(kind in str(err) for kind in ("UTF-16", "not a text file", "gzip"))
        return
    assert ("ok", "fine") in pairs
    assert stats.read == stats.kept + sum(stats.dropped.values())  # every line kept or dropped for one reason
    for src, tgt in pairs:
        assert src and tgt and "\t" not in src + tgt and normalize(src) == src


@given(st.lists(st.text(min_size=1, max_size=30), min_size=1, max_size=10))
def test_char_tokenizer_round_trips_normalized_text(texts):
    texts = [t for t in map(normalize, texts) if t]
    assume(texts)
    tok = VocabTokenizer.train("char", texts, 10_000)
    ids = tok.encode(texts)
    assert [tok.decode(seq) for seq in ids] == texts
    assert all(i > EOS for seq in ids for i in seq)


@given(st.lists(st.text(max_size=30), min_size=1, max_size=10), st.text(max_size=30))
def test_word_tokenizer_never_crashes_or_emits_specials(texts, unseen):
    tok = VocabTokenizer.train("word", [normalize(t) for t in texts], 10_000)
    ids = tok.encode([normalize(unseen)])[0]
    assert all(i == 1 or i > EOS for i in ids)
    assert isinstance(tok.decode(ids), str)
