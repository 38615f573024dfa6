"Appendix B analysis: log-linear data-efficiency interpolation, prompt ensembling, Figure 15 statistics and the scaling fit, against hand-computed cases."
import math

import numpy as np
import pytest
import torch

from clip_repro.zeroshot import zero_shot_classifier, zero_shot_logits
from clip_repro.zeroshot_analysis import (DataEfficiency, scaling_fit, shots_to_match, table4, training_flops,
                                          zero_shot_vs_probe)


# --- Figure 14: log-linear interpolation --------------------------------------------------------------------------
def test_interpolation_hand_computed():
    # 30% at 2 shots, 45% at 8 shots: 40% is 2/3 of the way in log2 k from 1 to 3 -> 2**(1 + 2/3*2) = 2**(7/3)
    r = shots_to_match([1, 2, 8, 16], [10, 30, 45, 50], 40)
    assert r.status == "interpolated"
    assert r.shots == pytest.approx(2 ** (1 + (40 - 30) / (45 - 30) * 2))
    # the fully supervised point at 250 examples per class: 55% between 50% (16) and 60% (250)
    r = shots_to_match([1, 2, 4, 8, 16, 250], [10, 20, 30, 40, 50, 60], 55)
    assert r.shots == pytest.approx(math.sqrt(16 * 250))


def test_interpolation_matches_numpy_interp_on_monotone_curves():
    rng = np.random.default_rng(0)
    for _ in range(50):
        k = np.array([1, 2, 4, 8, 16, 120.0])
        s = np.sort(rng.uniform(0, 100, 6))
        if len(np.unique(s)) < 6: continue
        t = rng.uniform(s[0] + 1e-6, s[-1] - 1e-6)
        assert shots_to_match(k, s, t).shots == pytest.approx(2 ** np.interp(t, s, np.log2(k)))


def test_interpolation_ends_and_errors():
    assert shots_to_match([1, 2, 4], [50, 60, 70], 80) == DataEfficiency(4.0, "above")
    below = shots_to_match([1, 2, 4], [50, 60, 70], 45)
    assert below.status == "below" and below.shots == pytest.approx(2 ** -0.5)
    assert shots_to_match([1, 2, 4], [50, 40, 70], 45) == DataEfficiency(1.0, "below")  # falling first segment: no extrapolation
    with pytest.raises(ValueError, match="at least two"): shots_to_match([1], [50], 45)
    with pytest.raises(ValueError, match="finite"): shots_to_match([1, 2], [50, np.inf], 45)


# --- Prompt ensembling (B): hand-computed embeddings ----------------------------------------------------------------
class _Lookup(torch.nn.Module):
    "A text encoder that returns a fixed vector per prompt (token id = prompt index)."
    def __init__(self, table):
        super().__init__(); self.table = torch.nn.Parameter(torch.tensor(table, dtype=torch.float32), requires_grad=False)
    def encode_text(self, ids): return self.table[ids[:, 0]]


def test_ensemble_is_mean_of_normalised_prompts_renormalised():
    prompts = ["a x.", "the x.", "a y.", "the y."]
    vecs = [[3.0, 4.0], [2.0, 0.0], [0.0, 5.0], [0.0, -1.0]]  # norms 5, 2, 5, 1
    tok = lambda texts: torch.tensor([[prompts.index(t)] for t in texts])
    W = zero_shot_classifier(_Lookup(vecs), ["x", "y"], ["a {}.", "the {}."], tokenizer=tok, show_progress=False)
    # class x: mean([0.6, 0.8], [1, 0]) = [0.8, 0.4] -> / sqrt(0.8) ; class y: mean([0, 1], [0, -1]) = [0, 0] is degenerate,
    # so check x exactly and that y stays finite and unit-norm or zero
    assert W.shape == (2, 2)
    assert torch.allclose(W[:, 0], torch.tensor([0.8, 0.4]) / math.sqrt(0.8), atol=1e-6)
    # a non-degenerate second class: prompts [0, 5] and [1, 1] -> mean([0, 1], [0.7071, 0.7071]) renormalised
    vecs[3] = [1.0, 1.0]
    W = zero_shot_classifier(_Lookup(vecs), ["x", "y"], ["a {}.", "the {}."], tokenizer=tok, show_progress=False)
    m = np.array([0.0 + 1 / math.sqrt(2), 1.0 + 1 / math.sqrt(2)]) / 2
    assert torch.allclose(W[:, 1], torch.tensor(m / np.linalg.norm(m), dtype=torch.float32), atol=1e-6)
    # the ensemble is one vector per class: logits cost one matrix product whatever the number of templates
    logits = zero_shot_logits(torch.tensor([[1.0, 0.0]]), W, 100.0)
    assert logits.shape == (1, 2) and torch.allclose(logits[0, 0], 100 * W[0, 0])


def test_ensemble_differs_from_probability_averaging():
    # averaging embeddings (B) is not averaging per-template probabilities: a hand-made case where they disagree
    prompts = ["a x.", "the x.", "a y.", "the y."]
    vecs = [[1.0, 0.0], [0.0, 1.0], [0.8, 0.6], [0.8, 0.6]]
    tok = lambda texts: torch.tensor([[prompts.index(t)] for t in texts])
    W = zero_shot_classifier(_Lookup(vecs), ["x", "y"], ["a {}.", "the {}."], tokenizer=tok, show_progress=False)
    img = torch.tensor([[0.6, 0.8]])
    emb_pred = zero_shot_logits(img, W, 100.0).argmax(1).item()
    per_t = [torch.softmax(100 * img @ torch.tensor([vecs[t], vecs[2 + t]]).T, 1) for t in (0, 1)]
    prob_pred = torch.stack(per_t).mean(0).argmax(1).item()
    # embedding mean of x = [0.7071, 0.7071] scores 0.99 > y's 0.96; per-template probabilities favour y (x is near 0.6 or 0.8)
    assert emb_pred == 0 and prob_pred == 1


# --- Figure 15 and Figure 16 --------------------------------------------------------------------------------------
def test_zero_shot_vs_probe_against_closed_forms():
    from scipy import stats
    rng = np.random.default_rng(1)
    lp = rng.uniform(30, 99, 27); zs = 1.28 * lp - 40 + rng.normal(0, 6, 27)
    st = zero_shot_vs_probe(zs, lp)
    n = len(lp); b = np.cov(lp, zs)[0, 1] / np.var(lp, ddof=1); a = zs.mean() - b * lp.mean()
    resid = zs - (a + b * lp); se = math.sqrt(resid @ resid / (n - 2) / ((lp - lp.mean()) ** 2).sum())
    t = stats.t.ppf(0.975, n - 2)
    assert st["slope"] == pytest.approx(b) and st["intercept"] == pytest.approx(a)
    assert st["slope_ci"] == pytest.approx((b - t * se, b + t * se))
    r = np.corrcoef(lp, zs)[0, 1]
    tr = r * math.sqrt((n - 2) / (1 - r * r))
    assert st["r"] == pytest.approx(r) and st["p_value"] == pytest.approx(2 * stats.t.sf(abs(tr), n - 2), rel=1e-6)


def test_scaling_fit_and_flops():
    c = np.array([1.0, 2.0, 8.0, 44.0]) * 1e12
    e = 0.4 * (c / 1e12) ** -0.07 * np.array([1.01, 0.99, 1.0, 1.0])
    f = scaling_fit(c, e)
    ref = np.polyfit(np.log10(c), np.log10(e), 1)
    assert f["slope"] == pytest.approx(ref[0]) and f["intercept"] == pytest.approx(ref[1])
    assert 0.9 < f["r2"] <= 1 and f["compute_range"] == pytest.approx(44)
    with pytest.raises(ValueError, match="same compute"): scaling_fit([1, 1, 1], [0.3, 0.2, 0.1])
    with pytest.raises(ValueError, match="at least 3"): scaling_fit([1, 2], [0.3, 0.2])
    from clip_repro.model import forward_flops
    assert training_flops("toy-vit", 7) == 3 * 7 * (forward_flops("toy-vit", "image") + forward_flops("toy-vit", "text"))


def test_table4_transcription():
    t = table4()
    assert t.shape == (9, 27) and not t.isna().any().any()
    assert ((t.values > 0) & (t.values <= 100)).all()
    # spot checks against the appendix text
    assert t.loc[("CLIP-ResNet", "RN50x64"), "MNIST"] == 90.8
    assert t.loc[("CLIP-ViT", "B/16"), "PCAM"] == 48.1
    assert t.loc[("CLIP-ViT", "L/14"), "KITTI"] == 23.1
