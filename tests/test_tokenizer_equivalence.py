"""Our tokenizer against the reference, open_clip_torch==3.3.0 (a copy of OpenAI's CLIP tokenizer).

Issue 3, item 4: identical ids on >= 2,000 varied strings for every string that fits in 77 tokens.
"""
import json, random, string
from pathlib import Path

import pytest
import torch

import open_clip
from open_clip import tokenizer as oc_tok

from clip_repro.tokenizer import (SimpleTokenizer, ContextLengthError, tokenize, clean_text, basic_clean,
                                  whitespace_clean, OPENAI_BPE_SHA256)
from clip_repro.core import sha256_file

PROMPTS = Path(__file__).resolve().parents[2] / "shared" / "reference" / "openai_imagenet_prompts.json"
SPECIAL_LITERALS = ("<|startoftext|>", "<|endoftext|>", "<start_of_text>", "<end_of_text>")

ACCENTS = ["café", "naïve", "Ångström", "São Paulo", "Zürich", "façade", "résumé", "piñata", "Dvořák", "Łódź",
           "e\u0301te\u0301", "crème brûlée", "İstanbul", "ΣΊΣΥΦΟΣ", "Straße", "Ørsted", "ĳssel", "Þór", "Mötley Crüe"]
CJK = ["東京タワー", "猫", "강아지", "中文字符", "ラーメン", "北京烤鸭", "ｶﾀｶﾅ", "한국어 문장", "日本の桜", "〒100-0001"]
EMOJI = ["🐶", "👩‍👩‍👧", "🇫🇷", "❤️", "🍕", "🏳️‍🌈", "👍🏽", "🤖", "✨✨", "☕"]
ENTITIES = ["&amp;", "&lt;", "&gt;", "&#39;", "&quot;", "&amp;amp;", "&nbsp;", "&eacute;", "&#x1F600;", "&copy;",
            "&amp;lt;b&amp;gt;", "&#8217;", "&bogus;", "& ", "&"]
CONTRACTIONS = ["don't", "it's", "they're", "we've", "I'm", "you'll", "she'd", "DON'T", "rock'n'roll", "it’s",
                "y'all", "'tis", "o'clock", "dogs'", "can't've"]
DIGITS = ["2021", "3.14", "1,000,000", "007", "٣٤", "²", "½", "1st", "4K", "10:30pm", "v1.2.3", "#42", "$9.99", "50%"]
PUNCT = ["!!!", "?!?", "...", "---", "(((", "«»", "—", "''", "…", "@@", "<>", "[*]", "~~~", "/\\", "{}", ":-)", "¡¿"]
SPACES = [" ", "  ", "\t", "\n", "\u00a0", "\u2003", "\u3000", "\r\n", "\u200b", "\u2028", "\x0c", ""]
ODD = ["cafÃ©", "â€™", "ＡＢＣ", "ﬁsh", "\x1b[31mred\x1b[0m", "a\x00b", "ÃƒÂ©", "\ufeffbom", "soft\xadhyphen",
       "HELLO WORLD", "McDonald's", "e-mail", "snake_case", "C++", "x86_64", "<b>bold</b>", "http://example.com/a?b=c"]
WORDS = ["a", "photo", "of", "the", "dog", "cat", "on", "beach", "sunset", "red", "car", "my", "new", "with", "and"]
POOLS = [ACCENTS, CJK, EMOJI, ENTITIES, CONTRACTIONS, DIGITS, PUNCT, ODD, WORDS, WORDS]


def varied_corpus(n: int = 3000, seed: int = 0) -> list[str]:
    "Seeded mix of accents, CJK, emoji, entities, contractions, digits, punctuation runs and odd whitespace."
    rng = random.Random(seed)
    out = []
    for i in range(n):
        kind = i % 4
        if kind == 3:  # random printable ASCII (exercises the ftfy shortcut)
            out.append("".join(rng.choices(string.printable, k=rng.randint(1, 60))))
            continue
        k = rng.randint(1, 40 if kind == 2 else 10)  # kind 2: often longer than 77 tokens
        parts = [rng.choice(rng.choice(POOLS)) for _ in range(k)]
        if rng.random() < 0.3: parts = [p.upper() if rng.random() < 0.5 else p.title() for p in parts]
        out.append("".join(p + rng.choice(SPACES) for p in parts))
    return out


def imagenet_corpus(n_prompts: int = 1500, seed: int = 0) -> list[str]:
    if not PROMPTS.is_file(): pytest.skip(f"reference prompts not found at {PROMPTS}")
    d = json.loads(PROMPTS.read_text())
    rng = random.Random(seed)
    prompts = [rng.choice(d["imagenet_templates"]).format(rng.choice(d["imagenet_classes"])) for _ in range(n_prompts)]
    return d["imagenet_classes"] + d["imagenet_templates"] + prompts


@pytest.fixture(scope="module")
def ref():
    return oc_tok.SimpleTokenizer()


@pytest.fixture(scope="module")
def ours():
    return SimpleTokenizer()


@pytest.fixture(scope="module")
def ours_from_open_clip_file():
    return SimpleTokenizer(bpe_path=oc_tok.default_bpe())


def test_shipped_file_is_open_clips():
    assert sha256_file(oc_tok.default_bpe()) == OPENAI_BPE_SHA256


def test_vocabulary_equal(ref, ours, ours_from_open_clip_file):
    rename = {"<start_of_text>": "<|startoftext|>", "<end_of_text>": "<|endoftext|>"}
    expected = {rename.get(k, k): v for k, v in ref.encoder.items()}
    assert ours.encoder == expected
    assert ours_from_open_clip_file.encoder == expected
    assert ours.bpe_ranks == ref.bpe_ranks
    assert (ours.vocab_size, ours.sot_token_id, ours.eot_token_id) == (ref.vocab_size, ref.sot_token_id, ref.eot_token_id)


@pytest.mark.parametrize("corpus", ["varied", "imagenet"])
def test_ids_identical(ref, ours, ours_from_open_clip_file, corpus):
    texts = varied_corpus() if corpus == "varied" else imagenet_corpus()
    assert len(texts) >= 2000
    assert not any(s in t for t in texts for s in SPECIAL_LITERALS)
    n_fit = n_long = 0
    for text in texts:
        ids = ours.encode(text)
        assert ids == ref.encode(text), text
        assert ours_from_open_clip_file.encode(text) == ids, text
        if len(ids) + 2 <= 77:
            n_fit += 1
            assert torch.equal(tokenize(text), oc_tok.tokenize(text)), text
        else:
            n_long += 1
            with pytest.raises(ContextLengthError):
                tokenize(text)
            assert torch.equal(tokenize(text, truncate=True), oc_tok.tokenize(text)), text  # open_clip truncates
    assert n_fit >= 2000 if corpus == "imagenet" else n_fit >= 1500
    if corpus == "varied": assert n_long >= 50  # the too-long path is exercised too
    batch = texts[:64]
    assert torch.equal(tokenize(batch, truncate=True), oc_tok.tokenize(batch))


def test_decode_identical(ref, ours):
    for text in varied_corpus(500, seed=1):
        ids = ref.encode(text)
        assert ours.decode(ids) == ref.decode(ids)


def test_ascii_shortcut_matches_ftfy_path():
    "Printable ASCII without '&' skips ftfy; it must give what the full cleaning gives."
    rng = random.Random(2)
    alphabet = string.printable.replace("&", "")
    for _ in range(5000):
        s = "".join(rng.choices(alphabet, k=rng.randint(0, 40)))
        assert clean_text(s) == whitespace_clean(basic_clean(s)).lower(), repr(s)
        assert clean_text(s) == oc_tok._clean_lower(s), repr(s)


def test_special_token_literals_are_the_only_known_difference(ref, ours):
    "OpenAI's code maps '<|endoftext|>' typed in a caption to the EOT id; open_clip renamed its specials."
    assert ours.encode("a <|endoftext|> b") == [320, 49407, 321]
    assert ref.encode("a <|endoftext|> b") != [320, 49407, 321]
    assert ref.encode("a <end_of_text> b") == [320, 49407, 321]
    assert ours.encode("a <end_of_text> b") != [320, 49407, 321]
