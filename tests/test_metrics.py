"Metrics of Table 2 against scikit-learn and an independent VOC 2007 devkit transcription."
import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.metrics.pairwise import haversine_distances

from clip_repro.metrics import (METRICS, accuracy, mean_per_class, map_11point, roc_auc, mean_top1_top5, topk_accuracy,
                                recall_at_k, geolocation_km, haversine_km, mwap, mwsap, get_metric)

rng = np.random.default_rng(0)


def _scores(n=300, c=7, seed=0):
    r = np.random.default_rng(seed)
    y = r.integers(0, c, n)
    s = r.normal(size=(n, c)); s[np.arange(n), y] += 1.0
    return y, s


def test_registry_names():
    for name in ["accuracy", "mean_per_class", "map_11point", "roc_auc", "mean_top1_top5", "recall_at_k",
                 "geolocation_km", "mwap", "mwsap"]:
        assert name in METRICS
    with pytest.raises(KeyError, match="expected one of"): get_metric("nope")


@pytest.mark.parametrize("seed", range(3))
def test_accuracy_and_mean_per_class_match_sklearn(seed):
    y, s = _scores(seed=seed)
    y[:5] = 0  # unbalanced classes so the two differ
    assert accuracy(y, s) == pytest.approx(skm.accuracy_score(y, s.argmax(1)))
    assert mean_per_class(y, s) == pytest.approx(skm.balanced_accuracy_score(y, s.argmax(1)))
    assert mean_per_class(y, s) != pytest.approx(accuracy(y, s))


def test_topk_matches_sklearn():
    y, s = _scores(c=20)
    for k in (1, 5):
        assert topk_accuracy(y, s, k) == pytest.approx(skm.top_k_accuracy_score(y, s, k=k, labels=np.arange(20)))
    assert mean_top1_top5(y, s) == pytest.approx((skm.top_k_accuracy_score(y, s, k=1) + skm.top_k_accuracy_score(y, s, k=5)) / 2)


def test_roc_auc_matches_sklearn():
    y = rng.integers(0, 2, 200); s = rng.normal(size=200) + y
    assert roc_auc(y, s) == pytest.approx(skm.roc_auc_score(y, s))
    assert roc_auc(y, np.stack([-s, s], 1)) == pytest.approx(skm.roc_auc_score(y, s))
    with pytest.raises(ValueError, match="both classes"): roc_auc(np.zeros(5), np.arange(5.0))


def _voc07_devkit_ap(rec, prec):
    # independent transcription of the VOC 2007 devkit's 11-point rule (VOCevalcls.m): max precision at recall >= t
    ap = 0.0
    for t in np.arange(0.0, 1.1, 0.1):
        p = np.max(prec[rec >= t]) if np.sum(rec >= t) > 0 else 0
        ap += p / 11.0
    return ap


@pytest.mark.parametrize("seed", range(5))
def test_map_11point_matches_devkit_and_differs_from_ap(seed):
    r = np.random.default_rng(seed)
    Y = (r.random((120, 20)) < 0.15).astype(int); Y[0] = 1
    S = r.normal(size=Y.shape) + 1.2 * Y
    ref = []
    for c in range(20):
        o = np.argsort(-S[:, c], kind="stable"); tp = np.cumsum(Y[o, c]); fp = np.cumsum(1 - Y[o, c])
        ref.append(_voc07_devkit_ap(tp / Y[:, c].sum(), tp / (tp + fp)))
    assert map_11point(Y, S) == pytest.approx(np.mean(ref), abs=1e-12)
    ap = skm.average_precision_score(Y, S, average="macro")
    assert abs(map_11point(Y, S) - ap) > 1e-4  # 11-point interpolated mAP is not AP


def test_map_11point_perfect_and_ignore():
    Y = np.eye(4, dtype=int); S = np.eye(4) + 0.01
    assert map_11point(Y, S) == pytest.approx(1.0)
    # a 'difficult' example that would hurt the ranking is ignored
    Y2 = np.array([[1], [0], [1]]); S2 = np.array([[0.9], [0.95], [0.8]])
    assert map_11point(Y2, S2) < 1.0
    assert map_11point(Y2, S2, ignore=np.array([[0], [1], [0]])) == pytest.approx(1.0)


def test_recall_at_k_brute_force_multi_caption():
    n_img, per = 30, 5
    S = rng.normal(size=(n_img, n_img * per))
    pos = [list(range(i * per, (i + 1) * per)) for i in range(n_img)]
    got = recall_at_k(S, pos, (1, 5, 10))
    for k, v in got.items():
        top = np.argsort(-S, 1)[:, :k]
        assert v == pytest.approx(np.mean([len(set(top[i]) & set(pos[i])) > 0 for i in range(n_img)]))
    t2i = recall_at_k(S.T, np.repeat(np.arange(n_img), per), 1)
    assert t2i == pytest.approx(np.mean(S.T.argmax(1) == np.repeat(np.arange(n_img), per)))
    with pytest.raises(ValueError, match="positive sets"): recall_at_k(S, pos[:-1], 1)


def test_geolocation_matches_sklearn_haversine():
    a = np.c_[rng.uniform(-80, 80, 50), rng.uniform(-180, 180, 50)]
    b = np.c_[rng.uniform(-80, 80, 50), rng.uniform(-180, 180, 50)]
    ref = np.diag(haversine_distances(np.radians(a), np.radians(b))) * 6371.0088
    np.testing.assert_allclose(haversine_km(a[:, 0], a[:, 1], b[:, 0], b[:, 1]), ref, rtol=1e-9)
    for r in (1, 25, 200, 750, 2500, 8000):
        assert geolocation_km(a, b, r) == pytest.approx(np.mean(ref <= r))
    with pytest.raises(ValueError, match="lat, lon"): geolocation_km(a, b[:, :1])
    with pytest.raises(ValueError, match="latitude"): geolocation_km(a[:, ::-1] * [1, 3], b)


def test_rareact_weighted_ap_matches_sklearn_weighted_average():
    Y = (rng.random((80, 12)) < 0.2).astype(int); Y[0] = 1
    S = rng.normal(size=Y.shape) + Y
    assert mwap(Y, S) == pytest.approx(skm.average_precision_score(Y, S, average="weighted"))
    keep = Y.sum(1) > 0
    assert mwsap(Y, S) == pytest.approx(skm.average_precision_score(Y[keep].T, S[keep].T, average="weighted"))


@pytest.mark.parametrize("f", [accuracy, mean_per_class, mean_top1_top5])
def test_bad_input(f):
    y, s = _scores()
    with pytest.raises(ValueError, match="one score row per example"): f(y[:-1], s)
    s[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"): f(y, s)
