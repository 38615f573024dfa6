"""Encode speed of clip_repro.tokenizer against open_clip_torch's SimpleTokenizer (the reference), interleaved.

    .venv/bin/python benchmarks/bench_tokenizer.py [--n 20000] [--rounds 3]

Prints, per corpus and cache state, the median seconds of each and the ratio open_clip / ours
(> 1.0: ours is faster). "cold": a fresh tokenizer (empty per-word cache; construction not timed);
"warm": the same texts again on that tokenizer.
"""
import argparse, json, random, statistics, time
from pathlib import Path

import torch

from clip_repro.tokenizer import SimpleTokenizer, tokenize
from open_clip import tokenizer as oc_tok

PROMPTS = Path(__file__).resolve().parents[2] / "shared" / "reference" / "openai_imagenet_prompts.json"


def imagenet_prompts(n, seed=0):
    "ImageNet prompts (OpenAI's 80 templates × 1,000 class names), or a synthetic stand-in if the file is absent."
    rng = random.Random(seed)
    if PROMPTS.is_file():
        d = json.loads(PROMPTS.read_text())
        classes, templates = d["imagenet_classes"], d["imagenet_templates"]
    else:
        classes = [f"object number {i}" for i in range(1000)]
        templates = ["a photo of a {}.", "a bad photo of the {}.", "itap of a {}."]
    return [rng.choice(templates).format(rng.choice(classes)) for _ in range(n)]


def varied(n, seed=0):
    "Non-ASCII captions: accents, CJK, emoji, HTML entities, odd whitespace (these go through ftfy)."
    rng = random.Random(seed)
    pool = ["café", "naïve", "Zürich", "東京タワー", "강아지", "🐶", "🇫🇷", "&amp;", "&#39;", "don't", "2021", "!!!",
            "\u00a0", "crème brûlée", "ＡＢＣ", "photo", "of", "a", "dog", "sunset", "beach", "red"]
    return [" ".join(rng.choices(pool, k=rng.randint(3, 15))) for _ in range(n)]


def timed(fn):
    t0 = time.perf_counter(); fn(); return time.perf_counter() - t0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20000, help="texts per corpus")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median reported)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    rows = []
    for name, texts in [("imagenet prompts", imagenet_prompts(a.n)), ("varied unicode", varied(a.n))]:
        res = {("ours", "cold"): [], ("ours", "warm"): [], ("open_clip", "cold"): [], ("open_clip", "warm"): []}
        for r in range(a.rounds):
            order = [("ours", SimpleTokenizer), ("open_clip", oc_tok.SimpleTokenizer)]
            if r % 2: order.reverse()  # alternate who goes first
            for who, cls in order:
                tok = cls()
                res[(who, "cold")].append(timed(lambda: [tok.encode(t) for t in texts]))
                res[(who, "warm")].append(timed(lambda: [tok.encode(t) for t in texts]))
        for state in ("cold", "warm"):
            o, r_ = statistics.median(res[("ours", state)]), statistics.median(res[("open_clip", state)])
            rows.append((name, state, o, r_))
        # the batch API: clip_repro.tokenize vs open_clip.tokenize (shared default tokenizers, warm)
        batch = texts[:4096]
        tokenize(batch, truncate=True); oc_tok.tokenize(batch)
        o = statistics.median(timed(lambda: tokenize(batch, truncate=True)) for _ in range(a.rounds))
        r_ = statistics.median(timed(lambda: oc_tok.tokenize(batch)) for _ in range(a.rounds))
        rows.append((name, "tokenize(4096)", o, r_))
    print(f"{'corpus':<18}{'state':<16}{'ours s':>9}{'open_clip s':>13}{'ratio':>8}")
    for name, state, o, r_ in rows:
        print(f"{name:<18}{state:<16}{o:>9.3f}{r_:>13.3f}{r_ / o:>8.2f}")
    print("ratio = open_clip time / our time (>= 1.0: ours is not slower)")


if __name__ == "__main__":
    main()
