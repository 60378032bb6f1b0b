"""The special token ids every tokenizer, batch, model and search agrees on."""

PAD, UNK, BOS, EOS = 0, 1, 2, 3
SPECIALS = ("<pad>", "<unk>", "<s>", "</s>")
UNK_TEXT = "\u2047"  # ⁇, what SentencePiece also prints for an unknown piece
