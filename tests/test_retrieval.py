"Retrieval (H.1): Recall@k against clip_benchmark's recall function on the same embeddings, and the encoding path."
import numpy as np
import pytest
import torch

from clip_repro.retrieval import PHOTO_PREFIX, encode_retrieval, evaluate_retrieval, flatten_captions, paper_table13, retrieval_recall

import clip_benchmark.metrics.zeroshot_retrieval as zr  # the peer for this check (test requirement)


def _clip_benchmark_recalls(img, txt, owner, ks):
    "clip_benchmark's own scoring (zeroshot_retrieval.evaluate): scores are (texts, images), a query hits if recall > 0."
    img = torch.nn.functional.normalize(torch.as_tensor(img, dtype=torch.float64), dim=-1)
    txt = torch.nn.functional.normalize(torch.as_tensor(txt, dtype=torch.float64), dim=-1)
    scores = txt @ img.T
    pos = torch.zeros_like(scores, dtype=torch.bool)
    pos[torch.arange(len(owner)), torch.as_tensor(owner)] = True
    t2i = {k: 100 * (zr.recall_at_k(scores, pos, k) > 0).float().mean().item() for k in ks}
    i2t = {k: 100 * (zr.recall_at_k(scores.T, pos.T, k) > 0).float().mean().item() for k in ks}
    return i2t, t2i


@pytest.mark.parametrize("seed,n_img,per_img,noise", [(0, 50, 5, 1.0), (1, 30, 5, 0.3), (2, 40, 1, 2.0), (3, 25, 3, 0.0)])
def test_matches_clip_benchmark(seed, n_img, per_img, noise):
    rng = np.random.default_rng(seed)
    img = rng.normal(size=(n_img, 16))
    owner = np.repeat(np.arange(n_img), per_img)
    txt = img[owner] + noise * rng.normal(size=(len(owner), 16))  # noise=0: every caption equals its image
    ks = (1, 5, 10)
    ours = retrieval_recall(img, txt, owner, ks)
    i2t, t2i = _clip_benchmark_recalls(img, txt, owner, ks)
    for k in ks:
        assert ours["text_retrieval"][k] == pytest.approx(i2t[k], abs=1e-4)  # clip_benchmark averages in float32
        assert ours["image_retrieval"][k] == pytest.approx(t2i[k], abs=1e-4)
    if noise == 0: assert ours["text_retrieval"][1] == ours["image_retrieval"][1] == 100.0
    if noise >= 1: assert ours["image_retrieval"][1] < 100.0  # the check is not trivially saturated


def test_any_caption_counts_for_image_queries():
    # image 0's first caption is hopeless but its second is the nearest: image 0 still hits at R@1
    img = np.eye(3)
    txt = np.array([[0, 0.3, 0.95], [1, 0, 0], [0, 1, 0], [0, 0.1, 0.9]])
    r = retrieval_recall(img, txt, [0, 0, 1, 2], ks=(1,))
    assert r["text_retrieval"][1] == 100.0
    assert r["image_retrieval"][1] == pytest.approx(75.0)  # caption 0 retrieves image 2


class _BagModel(torch.nn.Module):
    "A stand-in CLIP: images are their own embeddings; a caption embeds as the sum of its token embeddings."
    def __init__(self, d=8, vocab=49408):
        super().__init__()
        self.emb = torch.nn.Embedding(vocab, d)
        self.context_length = 77
    def encode_image(self, x): return x.flatten(1)[:, :self.emb.embedding_dim]
    def encode_text(self, tok): return self.emb(tok).sum(1)


def test_encode_retrieval_prefix_and_shapes():
    torch.manual_seed(0)
    m = _BagModel()
    seen = []
    def tok(texts):
        seen.extend(texts)
        from clip_repro.tokenizer import tokenize
        return tokenize(texts)
    caps = [["a cat", "a small cat"], ["a dog"], ["a red car", "a car", "car"]]
    ie, te, owner = encode_retrieval(m, torch.randn(3, 8), caps, tokenizer=tok, batch_size=2)
    assert ie.shape == (3, 8) and te.shape == (6, 8) and owner.tolist() == [0, 0, 1, 2, 2, 2]
    assert all(t.startswith(PHOTO_PREFIX) for t in seen) and len(seen) == 6
    assert torch.allclose(ie.norm(dim=-1), torch.ones(3)) and torch.allclose(te.norm(dim=-1), torch.ones(6))
    seen.clear(); encode_retrieval(m, torch.randn(3, 8), caps, prefix="", tokenizer=tok)
    assert seen[0] == "a cat"
    r = evaluate_retrieval(m, torch.randn(3, 8), caps, tokenizer=tok, ks=(1, 6))
    assert r["text_retrieval"][6] == r["image_retrieval"][6] == 100.0  # k >= gallery size always hits


def test_bad_input():
    with pytest.raises(ValueError, match="has no captions"): flatten_captions([["a"], []])
    with pytest.raises(ValueError, match="empty or non-string"): flatten_captions([["a", "  "]])
    with pytest.raises(ValueError, match="one list of captions per image"): flatten_captions("a cat")
    with pytest.raises(ValueError, match="same D"): retrieval_recall(np.ones((2, 3)), np.ones((2, 4)), [0, 1])
    with pytest.raises(ValueError, match="outside"): retrieval_recall(np.ones((2, 3)), np.ones((2, 3)), [0, 2])
    with pytest.raises(ValueError, match="images but"):
        encode_retrieval(_BagModel(), torch.randn(2, 8), [["a"]])


def test_table13_transcription():
    t = paper_table13()
    assert t.shape == (10, 15)
    clip = t[(t.setting == "zeroshot") & (t.model == "CLIP")].iloc[0]
    assert [clip.text_flickr30k_r1, clip.text_mscoco_r1, clip.image_flickr30k_r1, clip.image_mscoco_r1] == [88.0, 58.4, 68.7, 37.8]
    # every row's recalls increase with k where reported
    for d in ("text", "image"):
        for s in ("flickr30k", "mscoco"):
            v = t[[f"{d}_{s}_r{k}" for k in (1, 5, 10)]].dropna().to_numpy()
            assert (np.diff(v, axis=1) >= 0).all()
