"A.3 linear probe: λ→C mapping, sweep, validation rules, torch backend vs scikit-learn, bad input."
import math
import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from clip_repro.probe import (lambda_to_C, C_to_lambda, lambda_grid, lambda_sweep, fit_logreg, linear_probe, probe_score,
                              validation_split, few_shot_indices, few_shot_probe, check_lambda, LinearProbe)


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # small tensors: one thread is faster



def blobs(n, k=5, d=16, noise=2.0, seed=0, centres_seed=123):
    c = np.random.default_rng(centres_seed).normal(size=(k, d))
    r = np.random.default_rng(seed)
    y = r.integers(0, k, n)
    return (c[y] + noise * r.normal(size=(n, d))).astype(np.float32), y


def mean_loss_objective_grad(X, y, coef, intercept, lam):
    "Gradient (w.r.t. W) of mean cross-entropy + lam*||W||^2 at the given solution, computed independently in float64."
    X = torch.tensor(X, dtype=torch.float64)
    W = torch.tensor(np.asarray(coef, np.float64), requires_grad=True); b = torch.tensor(np.asarray(intercept, np.float64))
    z = X @ W.T + b
    if W.shape[0] == 1:
        loss = torch.nn.functional.binary_cross_entropy_with_logits(z[:, 0], torch.tensor(y, dtype=torch.float64))
    else:
        loss = torch.nn.functional.cross_entropy(z, torch.tensor(np.unique(y, return_inverse=True)[1]))
    (loss + lam * (W ** 2).sum()).backward()
    return W.grad.abs().max().item()


@pytest.mark.parametrize("k", [2, 5])
def test_lambda_to_C_gives_the_mean_loss_optimum(k):
    X, y = blobs(400, k=k); X = X.astype(np.float64)
    lam = 3e-3
    clf = LogisticRegression(C=lambda_to_C(lam, len(X)), solver="lbfgs", max_iter=1000, tol=1e-10).fit(X, y)
    # sklearn's solution is a stationary point of OUR objective (mean loss + λ||w||²) ...
    assert mean_loss_objective_grad(X, y, clf.coef_, clf.intercept_, lam) < 1e-5
    # ... and not of the other common reading C = 1/λ
    clf2 = LogisticRegression(C=1 / lam, solver="lbfgs", max_iter=1000, tol=1e-10).fit(X, y)
    assert mean_loss_objective_grad(X, y, clf2.coef_, clf2.intercept_, lam) > 1e-3
    assert C_to_lambda(lambda_to_C(lam, 400), 400) == pytest.approx(lam)


def test_grid():
    g = lambda_grid()
    assert len(g) == 97 and g[0] == pytest.approx(1e-6) and g[-1] == pytest.approx(1e6)
    np.testing.assert_allclose(np.diff(np.log10(g)), 1 / 8)


@pytest.mark.parametrize("peak", np.linspace(-6, 6, 41))
def test_sweep_finds_the_grid_optimum_of_unimodal_scores(peak):
    for shape in (lambda u: -abs(u - peak), lambda u: -(u - peak) ** 2, lambda u: math.exp(-abs(u - peak) ** 0.5)):
        f = lambda lam: shape(math.log10(lam))
        s = lambda_sweep(f, show_progress=False); e = lambda_sweep(f, exhaustive=True, show_progress=False)
        assert s.best_lambda == e.best_lambda
        assert s.n_fits <= e.n_fits / 4 and e.n_fits == 97


def test_sweep_on_real_fits_matches_exhaustive_when_unimodal():
    # few, balanced, noisy training examples: weak λ overfits and strong λ underfits, so the validation
    # log-likelihood (a smooth criterion, unlike accuracy) rises and then falls along the grid
    rng = np.random.default_rng(0); c = rng.normal(size=(4, 8))
    ytr = np.repeat(np.arange(4), 10); Xtr = c[ytr] + 2.5 * rng.normal(size=(40, 8))
    yva = np.repeat(np.arange(4), 100); Xva = c[yva] + 2.5 * rng.normal(size=(400, 8))
    fitted, cache = {}, {}
    def score(lam):
        if lam not in cache:
            init = fitted[min(fitted, key=lambda l: abs(math.log(l / lam)))] if fitted else None
            p = fit_logreg(Xtr, ytr, lam, "torch", tol=1e-8, dtype="float64", init=init); fitted[lam] = p
            P = p.predict_proba(Xva); cache[lam] = float(np.log(P[np.arange(len(yva)), yva]).mean())
        return cache[lam]
    # 8 steps per decade over 10^-4 … 10^4 (65 points; the full 97-point range adds only flat tails here)
    e = lambda_sweep(score, lo=-4, hi=4, exhaustive=True, show_progress=False)
    vals = np.array([e.scores[l] for l in sorted(e.scores)])
    peak = int(np.argmax(vals)); d = np.diff(vals)
    assert 8 < peak < 56
    assert (d[:peak] >= 0).all() and (d[peak:] <= 0).all(), "criterion is not unimodal"
    s = lambda_sweep(score, lo=-4, hi=4, show_progress=False)
    assert s.best_lambda == e.best_lambda and s.n_fits <= e.n_fits / 4


def test_torch_backend_matches_sklearn_within_0_2_points():
    Xtr, ytr = blobs(1500, k=10, d=24, noise=3.5, seed=3); Xte, yte = blobs(2000, k=10, d=24, noise=3.5, seed=4)
    for lam in (1e-4, 1e-2):
        a = fit_logreg(Xtr, ytr, lam, "sklearn"); b = fit_logreg(Xtr, ytr, lam, "torch")
        acc_a, acc_b = probe_score(a, Xte, yte), probe_score(b, Xte, yte)
        assert abs(acc_a - acc_b) * 100 <= 0.2, (lam, acc_a, acc_b)
        assert 0.3 < acc_a < 0.99  # the task is neither trivial nor hopeless


def test_binary_torch_uses_one_logit_like_sklearn():
    X, y = blobs(500, k=2, noise=2.0)
    a = fit_logreg(X, y, 1e-2, "sklearn"); b = fit_logreg(X, y, 1e-2, "torch", dtype="float64", tol=1e-8)
    assert a.coef.shape == b.coef.shape == (1, 16)
    np.testing.assert_allclose(a.coef, b.coef, atol=2e-3)
    assert (a.predict(X) == b.predict(X)).mean() > 0.99


def test_warm_start_saves_iterations():
    X, y = blobs(2000, k=8, d=32, noise=3.0)
    cold = fit_logreg(X, y, 1e-5, "torch")
    near = fit_logreg(X, y, 10 ** (-5 + 1 / 8), "torch")
    warm = fit_logreg(X, y, 1e-5, "torch", init=near)
    assert warm.n_iter < cold.n_iter
    np.testing.assert_allclose(warm.coef, cold.coef, atol=5e-2)


def test_validation_rules():
    Xtr, ytr = blobs(400, seed=5); Xva, yva = blobs(200, seed=6); Xte, yte = blobs(200, seed=7)
    r = linear_probe(Xtr, ytr, Xte, yte, Xva, yva, backend="torch", show_progress=False)
    assert r.val_source == "provided" and r.sweep.n_fits <= 15
    r2 = linear_probe(Xtr, ytr, Xte, yte, backend="torch", val_fraction=0.25, seed=3, show_progress=False)
    assert r2.val_source == "split:0.25"
    tr, va = validation_split(ytr, 0.25, 3)
    assert len(va) == 100 and not set(tr) & set(va)
    # stratified: class proportions preserved
    np.testing.assert_allclose(np.bincount(ytr[va]) / len(va), np.bincount(ytr) / len(ytr), atol=0.02)
    # deterministic in the seed
    np.testing.assert_array_equal(validation_split(ytr, 0.25, 3)[1], va)
    assert not np.array_equal(validation_split(ytr, 0.25, 4)[1], va)
    # the final probe is refit on train + validation
    assert r2.probe.lam == r2.best_lambda


def test_metric_is_applied():
    Xtr, ytr = blobs(300, k=2, seed=8); Xte, yte = blobs(300, k=2, seed=9)
    r = linear_probe(Xtr, ytr, Xte, yte, metric="roc_auc", backend="torch", show_progress=False)
    from sklearn.metrics import roc_auc_score
    assert r.test_score == pytest.approx(roc_auc_score(yte, r.probe.predict_proba(Xte)[:, 1]))


def test_few_shot():
    X, y = blobs(500); Xte, yte = blobs(200, seed=11)
    idx = few_shot_indices(y, 3, seed=0)
    assert np.all(np.bincount(y[idx]) == 3)
    assert not np.array_equal(idx, few_shot_indices(y, 3, seed=1))
    df = few_shot_probe(X, y, Xte, yte, k=3, seeds=(0, 1), backend="torch")
    assert list(df.seed) == [0, 1] and df.test_score.between(0, 1).all() and (df.n_fits <= 15).all()
    with pytest.raises(ValueError, match="expected at least k"): few_shot_indices(y, 1000)


def test_bad_input():
    X, y = blobs(100)
    Xn = X.copy(); Xn[7, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"): fit_logreg(Xn, y, 1e-3)
    with pytest.raises(ValueError, match="at least 2"): fit_logreg(X, np.zeros(100, int), 1e-3)
    with pytest.raises(ValueError, match="one label per row"): fit_logreg(X, y[:-1], 1e-3)
    with pytest.raises(ValueError, match="outside"): fit_logreg(X, y, 1e7)
    with pytest.raises(ValueError, match="positive"): fit_logreg(X, y, 0.0)
    with pytest.raises(ValueError, match="positive"): check_lambda(float("nan"))
    with pytest.raises(ValueError, match="backend"): fit_logreg(X, y, 1e-3, backend="adamw")
    with pytest.raises(ValueError, match="never occur"):
        probe_score(fit_logreg(X, y, 1e-3), X[:3], np.array([0, 1, 99]))
    with pytest.raises(ValueError, match="dims"): linear_probe(X, y, X[:, :5], y, show_progress=False)
    with pytest.raises(ValueError, match="finite"): lambda_sweep(lambda l: float("nan"), show_progress=False)
    assert fit_logreg(X, y, 1e7, bounds=None).lam == 1e7


@pytest.mark.parametrize("k,onednn", [(2, False), (2, True), (5, False), (5, True)])  # the oneDNN path is float32, CPU only
def test_hand_written_gradient_matches_autograd(k, onednn):
    from clip_repro.probe import logreg_loss_grad
    assert not onednn or torch.backends.mkldnn.is_available(), "the pinned CPU torch build ships oneDNN"
    dt = torch.float32 if onednn else torch.float64
    g = torch.Generator().manual_seed(k)
    X = torch.randn(257, 9, generator=g, dtype=dt); y = torch.randint(0, k, (257,), generator=g)
    K = 1 if k == 2 else k
    W = torch.randn(9, K, generator=g, dtype=dt); b = torch.randn(K, generator=g, dtype=dt)
    loss, dW, db = logreg_loss_grad(X, y, 0.02, K, onednn)(W, b)
    W2, b2 = W.clone().requires_grad_(True), b.clone().requires_grad_(True)
    z = X @ W2 + b2
    ref = (torch.nn.functional.binary_cross_entropy_with_logits(z[:, 0], y.to(dt)) if K == 1
           else torch.nn.functional.cross_entropy(z, y)) + 0.02 * (W2 ** 2).sum()
    ref.backward()
    tol = 1e-12 if dt == torch.float64 else 1e-5
    assert loss.item() == pytest.approx(ref.item(), rel=tol)
    torch.testing.assert_close(dW, W2.grad, rtol=tol, atol=tol); torch.testing.assert_close(db, b2.grad, rtol=tol, atol=tol)


def test_onednn_and_plain_products_reach_the_same_fit():
    # 2,000 x 64 x 40 = 5.1M multiply-adds per product: above the size at which the CPU float32 fit uses oneDNN
    from clip_repro.probe import _fit_torch_impl
    X, y = blobs(2000, k=40, d=64, noise=3.0, seed=2)
    Xte, yte = blobs(2000, k=40, d=64, noise=3.0, seed=12)
    p = fit_logreg(X, y, 1e-4, "torch")
    coef, intercept, classes, *_ = _fit_torch_impl(X, y, 1e-4, 1000, 1e-4, None, "cpu", torch.float64, 20, 0.0)
    q = LinearProbe(coef, intercept, classes, 1e-4, "torch")
    assert abs(probe_score(p, Xte, yte) - probe_score(q, Xte, yte)) <= 0.002
    assert mean_loss_objective_grad(X, y, p.coef, p.intercept, 1e-4) < 2e-4  # the float32 fit met tol=1e-4 (up to rounding)


def test_dtype_is_honoured():
    X, y = blobs(400, k=4, d=8, noise=2.0, seed=1)
    # float64 arithmetic reaches a stationary point far below what float32 arithmetic can resolve ...
    p64 = fit_logreg(X, y, 1e-3, "torch", dtype="float64", tol=1e-8)
    assert p64.converged and mean_loss_objective_grad(X, y, p64.coef, p64.intercept, 1e-3) < 2e-8
    # ... float32 cannot: a float32 W is off the optimum by ~1e-8 per entry, so its exact gradient stays far above 1e-10
    p32 = fit_logreg(X, y, 1e-3, "torch", dtype="float32", tol=1e-10, max_iter=200)
    assert mean_loss_objective_grad(X, y, p32.coef, p32.intercept, 1e-3) > 1e-10
    assert not p32.converged  # and says so, though L-BFGS stopped (stalled) before max_iter
    np.testing.assert_allclose(p32.coef, p64.coef, atol=1e-3)
    # scikit-learn: dtype casts the features (scikit-learn keeps float32 for L-BFGS otherwise)
    a = fit_logreg(X, y, 1e-3, "sklearn", dtype="float64")
    b = LogisticRegression(C=lambda_to_C(1e-3, len(X)), max_iter=1000, tol=1e-4).fit(X.astype(np.float64), y)
    np.testing.assert_array_equal(a.coef, b.coef_)
    with pytest.raises(ValueError, match="dtype"): fit_logreg(X, y, 1e-3, "torch", dtype="float16")



@pytest.mark.parametrize("k,pW", [(2, 1.0), (6, 1.0), (2, 0.01), (6, 0.3)])
def test_cold_start_scale_uses_the_exact_curvature_at_zero(k, pW):
    from clip_repro.probe import logreg_loss_grad, _cold_start_scale
    X, y = blobs(300, k=k, d=7, noise=2.0, seed=4); lam = 1e-3
    Xt, yt = torch.tensor(X, dtype=torch.float64), torch.tensor(y)
    K = 1 if k == 2 else k
    lg = logreg_loss_grad(Xt, yt, lam, K)
    f0, gW, gb = lg(torch.zeros(7, K, dtype=torch.float64), torch.zeros(K, dtype=torch.float64))
    # reference curvature along L-BFGS's first direction in (V, c) = (W / (s pW), b / s), which is d = -(pW² ∇W, ∇b)
    # in (W, b), by autograd (Hessian-vector product of the same objective)
    def f(W, b):
        z = Xt @ W + b
        return (torch.nn.functional.binary_cross_entropy_with_logits(z[:, 0], yt.double()) if K == 1
                else torch.nn.functional.cross_entropy(z, yt)) + lam * (W ** 2).sum()
    zeros = (torch.zeros(7, K, dtype=torch.float64), torch.zeros(K, dtype=torch.float64))
    dW, db = -pW ** 2 * gW, -gb
    _, (hW, hb) = torch.autograd.functional.hvp(f, zeros, (dW, db))
    dHd = (dW * hW).sum() + (db * hb).sum()
    t = (-(gW * dW).sum() - (gb * db).sum()) / dHd
    g1 = (pW * gW.abs().sum() + gb.abs().sum()).item()
    expect = t.item() * g1 if t.item() * g1 ** 2 >= 1 else math.sqrt(t.item())
    assert _cold_start_scale(lg, lam, K, len(X), f0, gW, gb, pW=pW) == pytest.approx(expect, rel=1e-10)


@pytest.mark.parametrize("k", [2, 5])
def test_strong_lambda_fits_converge_fast_and_match_sklearn(k):
    # At λ >> the data's curvature the weights' curvature (2λ) dwarfs the intercepts' (~1/K); without the λ-aware
    # weight scale a float32 cold fit at λ = 1e6 ran hundreds of L-BFGS iterations and still missed tol.
    X, y = blobs(3000, k=k, d=32, noise=3.0, seed=5)
    for lam in (1e2, 1e4, 1e6):
        t = fit_logreg(X, y, lam, "torch")
        s = fit_logreg(X, y, lam, "sklearn", dtype="float64")
        assert t.converged and t.n_iter <= 15, (lam, t.n_iter)
        assert mean_loss_objective_grad(X, y, t.coef, t.intercept, lam) <= 1.5e-4  # the A.3 test, recomputed in float64
        np.testing.assert_allclose(t.coef, s.coef, rtol=0.05, atol=1e-3 / lam)
        # the intercepts fit the class priors; a softmax is unchanged by a common shift of all of them
        shift = lambda b: b - b.mean() if k > 2 else b
        np.testing.assert_allclose(shift(t.intercept), shift(s.intercept), atol=2e-3)


def test_few_shot_split_is_shared_by_the_probe_and_the_continuum():
    from clip_repro.probe import few_shot_split
    from clip_repro.robustness import few_shot_continuum
    X, y = blobs(5 * 12, k=5, d=8, seed=9)                       # blobs draws labels at random: counts differ by class
    n = np.bincount(y).min()
    for k in (1, 2, n // 2 + 1, n - 1):
        tr, va = few_shot_split(y, k, seed=3)
        assert np.bincount(y[tr]).tolist() == [k] * 5
        assert np.bincount(y[va]).tolist() == [min(k, n - k)] * 5  # as many as k while the smallest class allows
        assert not set(tr) & set(va)
        np.testing.assert_array_equal(tr, few_shot_indices(y, k, 3))
    with pytest.raises(ValueError, match="smallest class"): few_shot_split(y, n, 0)
    # both users draw the same examples: same λ chosen and same test accuracy for k = n - 1 (validation of one per class)
    k = n - 1
    fs = few_shot_probe(X, y, X, y, k, seeds=(0,), backend="torch")
    cont = few_shot_continuum(X, y, X, y, [], shots=[k], full=False, lam=None, backend="torch")
    assert fs.lam[0] == pytest.approx(cont["lambda"].iloc[0])
    assert fs.test_score[0] == pytest.approx(cont["id"].iloc[0], abs=1e-12)
