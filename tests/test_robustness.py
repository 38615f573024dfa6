"""clip_repro.robustness (Appendix D / H.5): the effective-robustness fit against scipy/numpy and a hand-computed case,
pooling rules, PM-k, the few-shot continuum against scikit-learn, Table 16 against the paper text, and bad input."""
import math
from pathlib import Path
import re

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats
from scipy.special import expit as sp_expit, logit as sp_logit

from clip_repro import robustness as R


# ---------- effective robustness ----------

def test_fit_matches_scipy_linregress_and_numpy_polyfit():
    rng = np.random.default_rng(1)
    for n in (2, 5, 40):
        ida = rng.uniform(0.05, 0.95, n)
        ood = sp_expit(rng.normal(0.8, 0.2) * sp_logit(ida) + rng.normal(-1, 0.3) + rng.normal(0, 0.2, n))
        fit = R.fit_baseline(ida, ood)
        lr = stats.linregress(sp_logit(ida), sp_logit(ood))
        np.testing.assert_allclose([fit.slope, fit.intercept], [lr.slope, lr.intercept], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(np.polyfit(sp_logit(ida), sp_logit(ood), 1), [fit.slope, fit.intercept], rtol=1e-9, atol=1e-12)
        if n > 2: np.testing.assert_allclose(fit.r, lr.rvalue, rtol=1e-10)
        assert fit.n == n


def test_hand_computed_case():
    # logit points (0,0), (1,1), (2,3): x̄=1, ȳ=4/3, Sxy=3, Sxx=2 -> slope 3/2, intercept 4/3 - 3/2 = -1/6
    ida, ood = sp_expit([0.0, 1.0, 2.0]), sp_expit([0.0, 1.0, 3.0])
    fit = R.fit_baseline(ida, ood)
    assert fit.slope == pytest.approx(1.5, abs=1e-12)
    assert fit.intercept == pytest.approx(-1 / 6, abs=1e-12)
    # a model at logit(ID) = 1 is predicted expit(1.5 - 1/6) = expit(4/3) = 0.79139...; it measures 0.9
    pred = 1 / (1 + math.exp(-4 / 3))
    assert float(fit.predict([sp_expit(1.0)])[0]) == pytest.approx(pred, abs=1e-12)
    er = R.effective_robustness([sp_expit(1.0)], [0.9], fit)
    assert er[0] == pytest.approx(0.9 - pred, abs=1e-12)
    assert 0.9 - pred == pytest.approx(0.10861, abs=1e-5)
    # the testbed's own points: (0,0) lies 1/6 above the line, (1,1) 1/3 below, (2,3) 1/6 above (logit residuals sum to 0)
    np.testing.assert_allclose(R.effective_robustness(ida, ood, fit),
                               [0.5 - sp_expit(-1 / 6), sp_expit(1.0) - sp_expit(4 / 3), sp_expit(3.0) - sp_expit(17 / 6)], atol=1e-12)
    on_line = fit.predict([0.2, 0.6])
    np.testing.assert_allclose(R.effective_robustness([0.2, 0.6], on_line, fit), [0.0, 0.0], atol=1e-12)


def test_relative_robustness_and_testbed_fits():
    np.testing.assert_allclose(R.relative_robustness([0.70, 0.60], [0.65, 0.62]), [0.05, -0.02], atol=1e-12)
    ida = np.array([0.4, 0.6, 0.8])
    tb = pd.DataFrame({"id": ida, "a": sp_expit(sp_logit(ida) - 1), "b": sp_expit(sp_logit(ida) - 3)})
    fits = R.testbed_fits(tb, "id", ["a", "b"])
    lr = stats.linregress(sp_logit(ida), sp_logit(tb[["a", "b"]].mean(axis=1)))
    assert fits["average"].slope == pytest.approx(lr.slope, rel=1e-10)
    assert fits["a"].intercept == pytest.approx(-1.0, abs=1e-10)


def test_effective_robustness_bad_input():
    fit = R.fit_baseline([0.5, 0.7], [0.4, 0.6])
    with pytest.raises(ValueError, match="divide by 100"): R.fit_baseline([76.2, 85.4], [70.1, 75.9])
    with pytest.raises(ValueError, match="at least 2"): R.fit_baseline([0.5], [0.5])
    with pytest.raises(ValueError, match="same ID accuracy"): R.fit_baseline([0.5, 0.5], [0.4, 0.6])
    with pytest.raises(ValueError, match="finite"): R.effective_robustness([np.nan], [0.5], fit)
    with pytest.raises(ValueError, match="same shape"): R.effective_robustness([0.5, 0.6], [0.5], fit)
    with pytest.raises(KeyError, match="no column"): R.testbed_fits(pd.DataFrame({"id": [0.1, 0.2]}), "id", ["x"])


# ---------- pooling rules ----------

def test_pool_logits_matches_numpy_reductions():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(50, 12))
    groups = [[0, 3, 5], [1], [2, 7, 8, 11], [4, 6]]  # classes 9, 10 belong to no target
    for op, npop in [("max", np.max), ("mean", np.mean), ("sum", np.sum)]:
        got = R.pool_logits(torch.tensor(z), groups, op).numpy()
        want = np.stack([npop(z[:, g], axis=1) for g in groups], 1)
        np.testing.assert_allclose(got, want, rtol=1e-12)


def test_max_pooling_equals_restrict_then_map():
    # argmax of max-pooled scores == the group of the argmax over the mapped source classes (ObjectNet scoring)
    rng = np.random.default_rng(2)
    z = torch.tensor(rng.normal(size=(200, 20)))
    groups = [[0, 1, 2], [5], [6, 9, 13], [17, 18]]
    src_to_tgt = {s: t for t, g in enumerate(groups) for s in g}
    mapped = sorted(src_to_tgt)
    restricted = z[:, mapped].argmax(1).numpy()
    via_restrict = np.array([src_to_tgt[mapped[i]] for i in restricted])
    np.testing.assert_array_equal(R.pool_logits(z, groups).argmax(1).numpy(), via_restrict)
    y = rng.integers(0, 4, 200)
    assert R.shift_accuracy(z, y, groups) == pytest.approx(float(np.mean(via_restrict == y)))


def test_class_subset_is_restricted_logits():
    names = [f"c{i}" for i in range(30)]
    subset = ["c29", "c3", "c17", "c8"]
    rng = np.random.default_rng(3)
    z = torch.tensor(rng.normal(size=(64, 30)))
    y = rng.integers(0, 4, 64)
    g = R.class_subset_groups(names, subset)
    idx = [names.index(s) for s in subset]
    assert R.shift_accuracy(z, y, g) == pytest.approx(float(np.mean(z[:, idx].argmax(1).numpy() == y)))


def test_class_map_groups_and_bad_input():
    src = ["tabby", "siamese", "sedan", "pickup", "oak", "baseball player", "groom"]
    m = {"cat": ["tabby", "siamese"], "car": ["sedan", "pickup"], "person": ["baseball player", "groom"]}
    assert R.class_map_groups(src, m, ["person", "cat", "car"]) == [[5, 6], [0, 1], [2, 3]]
    assert R.class_map_groups(src, {"tree": "oak"}) == [[4]]
    with pytest.raises(KeyError, match="unicorn"): R.class_subset_groups(src, ["tabby", "unicorn"])
    with pytest.raises(ValueError, match="twice"): R.class_subset_groups(src, ["tabby", "tabby"])
    with pytest.raises(ValueError, match="non-empty"): R.class_subset_groups(src, [])
    with pytest.raises(KeyError, match="unknown source"): R.class_map_groups(src, {"dog": ["beagle"]})
    with pytest.raises(KeyError, match="no entry"): R.class_map_groups(src, m, ["cat", "dog"])
    with pytest.raises(ValueError, match="many-to-one"): R.class_map_groups(src, {"a": ["oak"], "b": ["oak"]})
    with pytest.raises(ValueError, match="maps to no source"): R.class_map_groups(src, {"a": []})
    z = torch.zeros(3, 7)
    groups = R.class_map_groups(src, m)
    # an OOD set with a label outside the mapped classes
    with pytest.raises(ValueError, match="outside the 3 mapped classes"): R.shift_accuracy(z, [0, 1, 3], groups)
    with pytest.raises(ValueError, match="integer class indices"): R.shift_accuracy(z, [0.0, 1.0, 2.0], groups)
    with pytest.raises(ValueError, match="targets"): R.shift_accuracy(z, [0, 1], groups)
    with pytest.raises(IndexError, match="7 classes"): R.pool_logits(z, [[0, 7]])
    with pytest.raises(ValueError, match="reduce"): R.pool_logits(z, [[0]], "median")
    with pytest.raises(ValueError, match=r"\(N, classes\)"): R.pool_logits(torch.zeros(7), [[0]])


def test_compare_zero_shot_classifiers_with_zeroshot_module():
    from clip_repro.zeroshot import zero_shot_logits
    rng = np.random.default_rng(4)
    x = torch.tensor(rng.normal(size=(40, 16)), dtype=torch.float32)
    Ws = torch.nn.functional.normalize(torch.randn(16, 10, generator=torch.Generator().manual_seed(0)), dim=0)
    Wd = torch.nn.functional.normalize(torch.randn(16, 3, generator=torch.Generator().manual_seed(1)), dim=0)
    groups, y = [[0, 1, 2], [3, 4], [5, 6, 7, 8, 9]], rng.integers(0, 3, 40)
    r = R.compare_zero_shot_classifiers(x, y, Ws, groups, Wd)
    zs = zero_shot_logits(x, Ws).numpy()
    pooled = np.stack([zs[:, g].max(1) for g in groups], 1).argmax(1)
    assert r["pooled_source_classes"] == pytest.approx(float(np.mean(pooled == y)))
    assert r["dataset_specific"] == pytest.approx(float(np.mean(zero_shot_logits(x, Wd).argmax(1).numpy() == y)))
    assert r["change"] == pytest.approx(r["dataset_specific"] - r["pooled_source_classes"])
    with pytest.raises(ValueError, match="one column per shifted-set class"): R.compare_zero_shot_classifiers(x, y, Ws, groups[:2], Wd)


# ---------- PM-k ----------

def test_pm_k_hand_case_and_properties():
    # two videos of 7 frames; anchors at frames 3 of each
    vid, fr = [0] * 7 + [1] * 7, list(range(7)) * 2
    y = [0] * 7 + [1] * 7
    pred = [0, 0, 2, 0, 0, 0, 0] + [1] * 7        # video 0: frame 2 (distance 1 from the anchor) is wrong
    for k, want in [(0, 1.0), (1, 0.5), (3, 0.5)]:
        got = R.pm_k(pred, y, R.frame_neighbourhoods(vid, fr, [3, 10], k))
        assert got == {"pm0": 1.0, "pmk": want}
    # scores instead of predictions, multi-label frames
    scores = np.eye(3)[pred]
    multi = [[0, 2] if i == 2 else l for i, l in enumerate(y)]
    assert R.pm_k(scores, multi, R.frame_neighbourhoods(vid, fr, [3, 10], 3)) == {"pm0": 1.0, "pmk": 1.0}
    # pm-k is never above pm-0 and never increases with k
    rng = np.random.default_rng(5)
    vid = np.repeat(np.arange(20), 25); fr = np.tile(np.arange(25), 20)
    lab = np.repeat(rng.integers(0, 5, 20), 25); pr = np.where(rng.random(500) < 0.8, lab, (lab + 1) % 5)
    anchors = np.arange(20) * 25 + 12
    vals = [R.pm_k(pr, lab, R.frame_neighbourhoods(vid, fr, anchors, k)) for k in (0, 2, 5, 10)]
    assert all(v["pm0"] == vals[0]["pm0"] == float(np.mean(pr[anchors] == lab[anchors])) for v in vals)
    assert vals[0]["pmk"] == vals[0]["pm0"]
    pks = [v["pmk"] for v in vals]
    assert pks == sorted(pks, reverse=True) and pks[-1] < pks[0]


def test_pm_k_bad_input():
    with pytest.raises(ValueError, match="no label"): R.pm_k([0, 1], [0, []], {0: [1]})
    with pytest.raises(ValueError, match="frame labels"): R.pm_k([0, 1], [0], {0: [1]})
    with pytest.raises(IndexError, match="outside"): R.pm_k([0, 1], [0, 1], {0: [5]})
    with pytest.raises(ValueError, match="empty"): R.pm_k([0, 1], [0, 1], {})
    with pytest.raises(ValueError, match="k must be"): R.frame_neighbourhoods([0], [0], [0], -1)
    with pytest.raises(IndexError, match="anchor"): R.frame_neighbourhoods([0], [0], [3])


# ---------- adaptation, continuum, plot ----------

def _world(seed=0, C=5, D=10):
    g = np.random.default_rng(seed); mu = g.normal(0, 1.5, (C, D))
    def draw(n, noise=1.0, shift=0.0):
        y = np.repeat(np.arange(C), n); return mu[y] + shift + g.normal(0, noise, (len(y), D)), y
    return mu, draw


def test_few_shot_continuum_against_sklearn():
    from sklearn.linear_model import LogisticRegression
    from clip_repro.probe import lambda_to_C
    mu, draw = _world()
    Xtr, ytr = draw(30); Xte, yte = draw(20); Xs, ys = draw(20, noise=2.5, shift=0.5)
    shifts = [R.ShiftSet("noisy", Xs, ys), R.ShiftSet("super", Xs, (ys >= 2).astype(int), [[0, 1], [2, 3, 4]])]
    lam = 1e-2
    df = R.few_shot_continuum(Xtr, ytr, Xte, yte, shifts, shots=(1, 2, 8), zero_shot=lambda X: X @ mu.T, lam=lam, seeds=(0, 1))
    assert list(df.model) == ["zero-shot", "1-shot", "1-shot", "2-shot", "2-shot", "8-shot", "8-shot", "fully supervised"]
    clf = LogisticRegression(C=lambda_to_C(lam, len(ytr)), max_iter=1000).fit(Xtr, ytr)
    full = df.iloc[-1]
    assert full["id"] == pytest.approx(clf.score(Xte, yte), abs=1e-9)
    assert full["noisy"] == pytest.approx(clf.score(Xs, ys), abs=1e-9)
    P = clf.predict_proba(Xs)
    assert full["super"] == pytest.approx(float(np.mean((np.stack([P[:, :2].max(1), P[:, 2:].max(1)], 1).argmax(1)) == (ys >= 2))), abs=1e-9)
    assert full["avg_shift"] == pytest.approx((full["noisy"] + full["super"]) / 2)
    zs = df.iloc[0]
    assert zs["id"] == pytest.approx(float(np.mean((Xte @ mu.T).argmax(1) == yte)))
    with pytest.raises(ValueError, match="impossible"): R.few_shot_continuum(Xtr, ytr, Xte, yte, shifts, shots=(31,))


def test_place_on_plot_adaptation_deltas_and_plot():
    import matplotlib; matplotlib.use("Agg")
    fit = R.fit_baseline([0.3, 0.5, 0.7], sp_expit(sp_logit([0.3, 0.5, 0.7]) - 1.0))
    pts = pd.DataFrame({"model": ["zero-shot", "16-shot", "fully supervised"], "id": [0.6, 0.6, 0.8], "avg_shift": [0.55, 0.45, 0.6]})
    out = R.place_on_plot(pts, fit)
    np.testing.assert_allclose(out.predicted_ood, sp_expit(sp_logit(pts.id) - 1.0), atol=1e-12)
    np.testing.assert_allclose(out.effective_robustness, pts.avg_shift - sp_expit(sp_logit(pts.id) - 1.0), atol=1e-12)
    np.testing.assert_allclose(out.relative_robustness, [0.0, -0.10, 0.05], atol=1e-12)
    # equal ID accuracy: the zero-shot model is the more effectively robust one here
    assert out.effective_robustness[0] > out.effective_robustness[1]
    with pytest.raises(KeyError, match="reference model"): R.place_on_plot(pts, fit, reference="CLIP-1000")
    with pytest.raises(KeyError, match="no column"): R.place_on_plot(pts, fit, ood_col="ImageNet-R")
    acc = pd.DataFrame({"zero-shot": [0.7, 0.5, 0.9], "adapted": [0.8, 0.45, 0.9], "dataset-specific": [0.7, 0.52, 0.95]},
                       index=["ImageNetV2", "ObjectNet", "YouTube-BB"])
    d = R.adaptation_deltas(acc)
    assert list(d.columns) == ["adapted", "dataset-specific"]
    np.testing.assert_allclose(d.to_numpy(), [[0.1, 0.0], [-0.05, 0.02], [0.0, 0.05]], atol=1e-12)
    with pytest.raises(KeyError, match="reference column"): R.adaptation_deltas(acc, "linear probe")
    ax = R.plot_effective_robustness(out, fit, testbed=pd.DataFrame({"id": [0.3, 0.5], "avg_shift": [0.2, 0.3]}))
    assert ax.get_xscale() == ax.get_yscale() == "logit"
    assert ax.get_xlabel() and ax.get_ylabel() and "Figure" in ax.get_title()


def test_probe_score_fn_bad_classes():
    from clip_repro.probe import fit_logreg
    X = np.random.default_rng(0).normal(size=(20, 3)); y = np.repeat([0, 5], 10)
    p = fit_logreg(X, y, 1e-2)
    s = R.probe_score_fn(p, 6)(X)
    assert s.shape == (20, 6) and np.isneginf(s[:, 1:5]).all()
    with pytest.raises(ValueError, match="integer indices"): R.probe_score_fn(p, 5)


# ---------- Table 16 ----------

SEED = Path(__file__).resolve().parents[2] / "shared/seeds/000_518f872dfe4f7583.txt"


@pytest.mark.skipif(not SEED.exists(), reason="the paper text ../shared/seeds is not beside this checkout")
def test_table16_matches_paper_text():
    text = SEED.read_text()
    t = R.table16()
    block = text[text.index("\tIN Top-1\tIN-V2 Top-1"):text.index("Table 16. Detailed ImageNet robustness")]
    for model in t.index:
        line = next(l for l in block.splitlines() if l.startswith(model + "\t") or l.startswith(model + " <sup>"))
        nums = [float(v) for v in re.findall(r"\d+\.\d", re.sub(r"<sup>.*?</sup>", "", line))]
        np.testing.assert_allclose(t.loc[model].drop("ref").astype(float).to_numpy(), nums)
    # the bold cells of the paper are the column maxima
    assert t.drop(columns="ref").astype(float).idxmax().to_dict()["inr_top1"] == "Zero-Shot CLIP"
    assert R.sota_datasets(t) == ["ImageNet-R", "ObjectNet", "ImageNet-Sketch", "ImageNet-Vid", "YouTube-BB"]
    with pytest.raises(KeyError, match="no row"): R.sota_datasets(t, model="CLIP-1000")


def test_few_shot_continuum_a3_sweep_matches_linear_probe():
    "lam=None: the full probe is clip_repro.probe.linear_probe's A.3 sweep (validation split, refit); k-shot probes sweep on a disjoint draw."
    from clip_repro.probe import linear_probe, few_shot_indices
    mu, draw = _world()
    Xtr, ytr = draw(12); Xte, yte = draw(10); Xs, ys = draw(10, noise=2.5)
    df = R.few_shot_continuum(Xtr, ytr, Xte, yte, [R.ShiftSet("noisy", Xs, ys)], shots=(2,), lam=None, seeds=(0,))
    ref = linear_probe(Xtr, ytr, Xte, yte, val_fraction=0.2, seed=0, show_progress=False)
    full = df[df.model == "fully supervised"].iloc[0]
    assert full["lambda"] == ref.best_lambda and full["id"] == pytest.approx(ref.test_score, abs=1e-12)
    idx = few_shot_indices(ytr, 2, 0); va = few_shot_indices(ytr, 2, 10_000, exclude=idx)
    ref2 = linear_probe(Xtr[idx], ytr[idx], Xte, yte, Xtr[va], ytr[va], refit=False, show_progress=False)
    two = df[df.model == "2-shot"].iloc[0]
    assert two["lambda"] == ref2.best_lambda and two["id"] == pytest.approx(ref2.test_score, abs=1e-12)
    with pytest.raises(ValueError, match="keeps at least one"):
        R.few_shot_continuum(Xtr, ytr, Xte, yte, [], shots=(12,), lam=None)
