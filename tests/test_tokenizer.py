"""Tokenizer behaviour that is not equivalence: learn_bpe, save/load, errors, truncation, the shipped file."""
import gzip, os, random, subprocess, sys
from collections import Counter
from pathlib import Path

import pytest
import torch

from clip_repro.tokenizer import (SimpleTokenizer, ContextLengthError, learn_bpe, tokenize, check_openai_bpe,
                                  default_bpe_path, read_merges, bytes_to_unicode, clean_text, CLIP_PATTERN, EOW,
                                  OPENAI_BPE_SHA256, CLIP_MAX_MERGES)

NOUNS = ["cat", "dog", "café", "crème brûlée", "東京", "🐶 puppy", "school bus", "naïve artist", "garçon", "teapot"]
ADJ = ["red", "tiny", "huge", "blurry", "old", "shiny", "green", "wet"]
FORMS = ["a photo of a {a} {n}.", "the {n} is {a}!", "two {a} {n}s", "{a} {n} & friends", "it's a {n}, isn't it?"]


def captions(n=1500, seed=0):
    rng = random.Random(seed)
    return [rng.choice(FORMS).format(a=rng.choice(ADJ), n=rng.choice(NOUNS)) for _ in range(n)]


def pretokens(corpus):
    return Counter(t for c in corpus for t in CLIP_PATTERN.findall(clean_text(c)))


def naive_bpe(corpus, n_new):
    "Textbook BPE, recounting every pair each step (slow but obviously right), with our tie rule."
    b2u = bytes_to_unicode()
    words = {}
    for tok, f in pretokens(corpus).items():
        w = "".join(b2u[b] for b in tok.encode("utf-8"))
        words[tuple(w[:-1]) + (w[-1] + EOW,)] = f
    known = set(b2u.values()) | {v + EOW for v in b2u.values()}
    merges, done, have = [], set(), 0
    while have < n_new:
        counts = Counter()
        for w, f in words.items():
            for p in zip(w, w[1:]):
                if p not in done: counts[p] += f
        best = min(counts, key=lambda p: (-counts[p], p))
        merges.append(best); done.add(best)
        if best[0] + best[1] not in known: known.add(best[0] + best[1]); have += 1
        new = {}
        for w, f in words.items():
            out, i = [], 0
            while i < len(w):
                if i < len(w) - 1 and (w[i], w[i + 1]) == best: out.append(w[i] + w[i + 1]); i += 2
                else: out.append(w[i]); i += 1
            new[tuple(out)] = new.get(tuple(out), 0) + f
        words = new
    return merges


@pytest.fixture(scope="module")
def corpus():
    return captions()


@pytest.fixture(scope="module")
def learned(corpus):
    return learn_bpe(corpus, 600, show_progress=False)


@pytest.mark.parametrize("size", [514, 515, 600, 630])
def test_learn_bpe_vocab_size_exact(corpus, size):
    tok = learn_bpe(corpus, size, show_progress=False)
    assert tok.vocab_size == size == len(tok.encoder) == len(tok.decoder)
    assert (tok.sot_token_id, tok.eot_token_id) == (size - 2, size - 1)
    assert max(max(tokenize(corpus[:50], tokenizer=tok).tolist())) == size - 1


def test_learn_bpe_matches_textbook_bpe(corpus, learned):
    assert learned.merges == naive_bpe(corpus, 600 - 514)
    assert learn_bpe(corpus, 630, show_progress=False).merges == naive_bpe(corpus, 630 - 514)  # to exhaustion


def test_learn_bpe_round_trips_corpus_words(corpus, learned):
    words = pretokens(corpus)
    assert len(words) > 20
    for w in words:
        ids = learned.encode(w)
        assert learned.decode(ids) == w + " ", w
    for c in corpus[:200]:
        assert learned.decode(learned.encode(c)).split() == CLIP_PATTERN.findall(clean_text(c))


def test_learn_bpe_compresses(corpus, learned):
    frequent = pretokens(corpus).most_common(5)
    assert all(len(learned.encode(w)) == 1 for w, _ in frequent)  # the commonest words became single tokens
    n_bytes = sum(len(clean_text(c).replace(" ", "").encode()) for c in corpus)
    assert sum(len(learned.encode(c)) for c in corpus) < 0.5 * n_bytes


def test_learn_bpe_deterministic(corpus, learned):
    assert learn_bpe(corpus, 600, show_progress=False).merges == learned.merges
    shuffled = corpus[:]; random.Random(5).shuffle(shuffled)
    assert learn_bpe(iter(shuffled), 600, show_progress=False).merges == learned.merges  # iterators are fine


def test_learn_bpe_independent_of_hash_seed(tmp_path):
    code = ("import sys; sys.path.insert(0, %r); from test_tokenizer import captions; "
            "from clip_repro.tokenizer import learn_bpe; "
            "learn_bpe(captions(400), 600, show_progress=False).save(sys.argv[1])") % str(Path(__file__).parent)
    outs = []
    for seed in ("1", "2"):
        out = tmp_path / f"m{seed}.txt"
        subprocess.run([sys.executable, "-c", code, str(out)], check=True,
                       env={**os.environ, "PYTHONHASHSEED": seed, "CLIP_REPRO_QUIET": "1"})
        outs.append(out.read_text())
    assert outs[0] == outs[1] and outs[0].count("\n") == 1 + 600 - 514


def test_learn_bpe_errors(corpus):
    with pytest.raises(ValueError, match=">= 514"): learn_bpe(corpus, 513)
    with pytest.raises(ValueError, match=">= 514"): learn_bpe(corpus, 600.0)
    with pytest.raises(ValueError, match="supports at most"): learn_bpe(["ab ab ab"], 520, show_progress=False)
    with pytest.raises(ValueError, match="at most 630 "): learn_bpe(corpus, 631, show_progress=False)
    with pytest.raises(TypeError, match="iterable of captions"): learn_bpe("a photo", 600)
    with pytest.raises(TypeError, match="expected text as str"): learn_bpe(["ok", 3], 600, show_progress=False)


@pytest.mark.parametrize("name", ["bpe.txt", "bpe.txt.gz"])
def test_save_load(tmp_path, learned, corpus, name):
    p = learned.save(tmp_path / name)
    assert (p.read_bytes()[:2] == b"\x1f\x8b") == name.endswith(".gz")
    back = SimpleTokenizer.load(p)
    assert back.merges == learned.merges and back.encoder == learned.encoder
    assert torch.equal(tokenize(corpus[:100], tokenizer=back), tokenize(corpus[:100], tokenizer=learned))
    assert learned.save(tmp_path / name).read_bytes() == p.read_bytes()  # byte-stable


def test_duplicate_merge_strings_share_one_id():
    merges = [("a", "b"), ("ab", "c</w>"), ("b", "c</w>"), ("a", "bc</w>")]
    tok = SimpleTokenizer(merges=merges)
    assert tok.vocab_size == 512 + 3 + 2
    assert tok.decode(tok.encode("abc")) == "abc "
    assert sorted(tok.encoder.values()) == list(range(tok.vocab_size))


def test_bad_merges_and_files(tmp_path):
    with pytest.raises(ValueError, match="merge #1"): SimpleTokenizer(merges=[("a", "b"), ("xyz", "c")])
    with pytest.raises(ValueError, match="either bpe_path or merges"): SimpleTokenizer(bpe_path="x", merges=[])
    with pytest.raises(FileNotFoundError, match="not found"): SimpleTokenizer(bpe_path=tmp_path / "nope.txt")
    (tmp_path / "bad.txt").write_text("#version: 0.2\na b c\n")
    with pytest.raises(ValueError, match="line 2"): read_merges(tmp_path / "bad.txt")
    (tmp_path / "noheader.txt").write_text("a b\nab c</w>\n\n")
    assert read_merges(tmp_path / "noheader.txt") == [("a", "b"), ("ab", "c</w>")]
    assert read_merges(tmp_path / "noheader.txt", max_merges=1) == [("a", "b")]
    corrupt = tmp_path / "corrupt.gz"
    corrupt.write_bytes(gzip.compress(gzip.decompress(default_bpe_path().read_bytes())[:-10]))
    with pytest.raises(ValueError, match="sha256"): check_openai_bpe(corrupt)


def test_shipped_vocabulary():
    assert check_openai_bpe() == default_bpe_path()
    tok = SimpleTokenizer()
    assert tok.vocab_size == 49408 == 512 + CLIP_MAX_MERGES + 2  # Table 18
    assert len(set(tok.encoder)) == len(tok.encoder) and sorted(tok.encoder.values()) == list(range(49408))
    assert (tok.sot_token_id, tok.eot_token_id) == (49406, 49407)


def test_too_long_and_truncate():
    text = "a photo of " + "a very " * 50 + "big dog"
    with pytest.raises(ContextLengthError, match=r"text #1 is \d+ tokens long.*context_length=77.*truncate=True"):
        tokenize(["short", text])
    with pytest.raises(ValueError):  # ContextLengthError is a ValueError
        tokenize(text)
    t = tokenize(["short", text], truncate=True)
    assert t.shape == (2, 77) and t[1, -1].item() == 49407 and t[1, 0].item() == 49406
    assert (t[1] == 49407).sum().item() == 1
    ids = SimpleTokenizer().encode(text)
    assert t[1, 1:76].tolist() == ids[:75]
    exact = tokenize("x " * 75)  # 75 ids + SOT + EOT fill the context exactly
    assert exact[0, -1].item() == 49407
    with pytest.raises(ContextLengthError): tokenize("x " * 76)
    assert tokenize("a dog", context_length=4, truncate=True).tolist() == [[49406, 320, 1929, 49407]]
    assert tokenize("a big dog", context_length=3, truncate=True).tolist() == [[49406, 320, 49407]]


def test_bad_arguments():
    with pytest.raises(TypeError, match="list of str"): tokenize(["a", None])
    with pytest.raises(TypeError, match="list of str"): tokenize(5)
    with pytest.raises(ValueError, match="context_length"): tokenize("a", context_length=0)
    with pytest.raises(ValueError, match="context_length"): tokenize("a", context_length=7.5)
    tok = SimpleTokenizer()
    with pytest.raises(ValueError, match="not in this vocabulary"): tok.decode([0, 10**6])
    assert tok.decode(tokenize("A  Dog")[0, 1:3]) == "a dog "  # tensors decode too


def test_cache_eviction_keeps_results():
    small, fresh = SimpleTokenizer(cache_size=8), SimpleTokenizer()
    texts = captions(300, seed=3)
    assert [small.encode(t) for t in texts] == [fresh.encode(t) for t in texts]
    assert len(small._cache) <= 8
    assert small("a photo of a cat.").tolist() == tokenize("a photo of a cat.").tolist()
