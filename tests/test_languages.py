"""Scripts: CJK characters, and guessing zh/ja/ko from text."""

from s2s_cli.languages import detect_lang, is_cjk


def test_detect_lang():
    assert detect_lang(["你好，世界。", "我喜欢猫。"]) == "zh"
    assert detect_lang(["こんにちは世界"]) == "ja"
    assert detect_lang(["안녕하세요"]) == "ko"
    assert detect_lang(["Hello, world."]) is None


def test_is_cjk_covers_han_kana_hangul_and_full_width_punctuation():
    assert all(is_cjk(ch) for ch in "中文かなカナ한국어，。！")
    assert not any(is_cjk(ch) for ch in "abc,.!é ")
