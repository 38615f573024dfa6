"Appendix F metrics (clip_repro.human) against sklearn / scipy and independent brute-force implementations."
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import accuracy_score, balanced_accuracy_score

from clip_repro import human as H

RNG = np.random.default_rng(0)
CLASSES = [f"breed{i}" for i in range(6)]


def make_study(n_images=120, n_raters=5, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, len(CLASSES), n_images)
    images = [f"img{i}" for i in range(n_images)]
    ann = pd.concat([H.simulate_annotators(y, images, CLASSES, n_raters, p_know=0.35, idk_rate=0.5, condition="zero-shot", seed=seed),
                     H.simulate_annotators(y, images, CLASSES, n_raters, p_know=0.8, idk_rate=0.5, condition="one-shot", seed=seed + 1)])
    truth = pd.DataFrame({"image": images, "label": [CLASSES[i] for i in y]})
    return H.check_annotations(ann, truth, CLASSES, raters_per_image=n_raters), y, images


def brute_vote(answers):
    "Independent majority vote: None on ties."
    vals, counts = np.unique(np.asarray(answers), return_counts=True)
    top = counts.max()
    return None if (counts == top).sum() > 1 else vals[counts.argmax()]


def balanced(y, p):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return 100 * balanced_accuracy_score(y, p)


def test_table11_columns_match_sklearn_and_brute_force():
    a, y, images = make_study()
    t = H.human_metrics(a)
    for cond in ["zero-shot", "one-shot"]:
        c = a[a.condition == cond]
        assert t.loc[cond, "Accuracy"] == pytest.approx(balanced(c.y, c.pred))
        g = c[c.pred >= 0]
        assert t.loc[cond, "Accuracy on Guesses"] == pytest.approx(balanced(g.y, g.pred))
        for col, sub in [("Majority Vote on Full Dataset", c), ("Majority Vote Accuracy on Guesses", g)]:
            yy, vv, ties = [], [], 0
            for im, d in sub.groupby("image"):
                v = brute_vote(d.pred.values)
                if v is None: ties += 1; continue
                yy.append(d.y.iloc[0]); vv.append(v)
            assert t.loc[cond, col] == pytest.approx(balanced(yy, vv))
            assert ties == t.loc[cond, "ties_full" if sub is c else "ties_guesses"]
    flat = H.human_metrics(a, per_class=False)
    c = a[a.condition == "zero-shot"]
    assert flat.loc["zero-shot", "Accuracy"] == pytest.approx(100 * accuracy_score(c.y, c.pred))
    assert t.loc["one-shot", "Accuracy"] > t.loc["zero-shot", "Accuracy"]


def test_majority_vote_ties_by_hand():
    assert H.majority_vote(["x", "y", "x", "y", "z"]) is None
    assert H.majority_vote(["x", "y", "x", "I don't know", "I don't know", "I don't know"]) == "I don't know"
    assert H.majority_vote([3, 3, 1]) == 3
    for _ in range(200):
        v = list(RNG.integers(0, 4, RNG.integers(1, 7)))
        assert H.majority_vote(v) == brute_vote(v)


def test_model_rater_gives_four_equal_columns():
    a, y, images = make_study(n_images=60)
    pred = np.where(RNG.random(60) < 0.7, y, (y + 1) % len(CLASSES))
    truth = dict(zip(images, [CLASSES[i] for i in y]))
    m = H.human_metrics(H.check_annotations(H.model_annotations(pred, images, CLASSES), truth, CLASSES))
    row = m.loc["Zero-shot CLIP"]
    assert row.iloc[:4].tolist() == pytest.approx([balanced(y, pred)] * 4)
    with pytest.raises(ValueError, match="must index the 6 classes"):
        H.model_annotations([9], ["img0"], CLASSES)


def test_bad_annotation_files(tmp_path):
    a, y, images = make_study(n_images=10, n_raters=3)
    raw = a[H.ANNOTATION_COLUMNS]
    truth = pd.DataFrame({"image": images, "label": [CLASSES[i] for i in y]})
    raw.to_csv(tmp_path / "ann.csv", index=False); truth.to_csv(tmp_path / "truth.csv", index=False)
    ok = H.read_annotations(tmp_path / "ann.csv", tmp_path / "truth.csv", CLASSES, raters_per_image=3)
    assert len(ok) == len(raw)
    bad = raw.copy(); bad.loc[bad.index[0], "answer"] = "Bengal tiger"
    with pytest.raises(ValueError, match="unknown answers \\['Bengal tiger'\\]"):
        H.check_annotations(bad, truth, CLASSES)
    with pytest.raises(ValueError, match="expected 3 raters per image"):
        H.check_annotations(raw.iloc[1:], truth, CLASSES, raters_per_image=3)
    with pytest.raises(ValueError, match="have no answers"):
        H.check_annotations(raw[raw.image != "img0"], truth, CLASSES)
    with pytest.raises(ValueError, match="empty cells"):
        b = raw.copy(); b["rater"] = b["rater"].astype(object); b.loc[b.index[2], "rater"] = None; H.check_annotations(b, truth, CLASSES)
    with pytest.raises(ValueError, match="answered the same image twice"):
        H.check_annotations(pd.concat([raw, raw.iloc[:1]]), truth, CLASSES)
    with pytest.raises(ValueError, match="no truth label"):
        H.check_annotations(raw, truth.iloc[1:], CLASSES)
    with pytest.raises(ValueError, match="not among the 6 classes"):
        H.check_annotations(raw, truth.replace("breed0", "cat"), CLASSES)
    with pytest.raises(FileNotFoundError, match="annotation file missing"):
        H.read_annotations(tmp_path / "nope.csv", tmp_path / "truth.csv", CLASSES)


def test_hardness_correlation_against_scipy_and_numpy():
    a, y, images = make_study(n_images=240)
    logits = RNG.normal(size=(240, len(CLASSES))); logits[np.arange(240), y] += RNG.uniform(0, 3, len(CLASSES))[y]
    P = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    h = H.class_hardness(P, images, a, CLASSES, "zero-shot")
    assert len(h) == len(CLASSES) and h.model_p_correct.is_monotonic_increasing
    c = a[a.condition == "zero-shot"]
    want_h = (c.pred == c.y).groupby(c.y).mean()
    for _, r in h.iterrows():
        k = CLASSES.index(r["class"])
        assert r.human_accuracy == pytest.approx(want_h[k])
        assert r.model_p_correct == pytest.approx(P[y == k, k].mean())
    cor = H.hardness_correlation(h)
    assert cor["pearson_r"] == pytest.approx(np.corrcoef(h.model_p_correct, h.human_accuracy)[0, 1])
    rk = np.corrcoef(stats.rankdata(h.model_p_correct), stats.rankdata(h.human_accuracy))[0, 1]
    assert cor["spearman_rho"] == pytest.approx(rk)
    with pytest.raises(ValueError, match="no annotations in condition"):
        H.class_hardness(P, images, a, CLASSES, "three-shot")
    with pytest.raises(ValueError, match="probs must be"):
        H.class_hardness(P[:, :3], images, a, CLASSES, "zero-shot")


def test_simulated_accuracy_matches_its_model():
    n, C = 4000, len(CLASSES)
    y = RNG.integers(0, C, n)
    s = H.simulate_annotators(y, range(n), CLASSES, n_raters=1, p_know=0.4, idk_rate=0.5, seed=7)
    assert s.rater.str.startswith("sim-").all()
    acc = (s.answer.values == np.array(CLASSES)[y]).mean()
    want = 0.4 + 0.6 * 0.5 / C
    assert acc == pytest.approx(want, abs=3 * np.sqrt(want * (1 - want) / n))
    assert (s.answer == H.IDK).mean() == pytest.approx(0.6 * 0.5, abs=0.03)


def test_gain_by_uncertainty_by_hand():
    classes = ["a", "b"]
    rows = [("1", "r1", "zero-shot", "I don't know"), ("1", "r2", "zero-shot", "I don't know"),
            ("1", "r1", "one-shot", "a"), ("1", "r2", "one-shot", "a"),
            ("2", "r1", "zero-shot", "b"), ("2", "r2", "zero-shot", "a"),
            ("2", "r1", "one-shot", "b"), ("2", "r2", "one-shot", "a")]
    a = H.check_annotations(pd.DataFrame(rows, columns=H.ANNOTATION_COLUMNS), {"1": "a", "2": "b"}, classes, raters_per_image=2)
    g = H.gain_by_uncertainty(a)
    assert g.loc["uncertain", "share_of_gain"] == 1.0 and g.loc["confident", "share_of_gain"] == 0.0
    assert g.loc["uncertain", ["accuracy_before", "accuracy_after"]].tolist() == [0.0, 1.0]
    with pytest.raises(ValueError, match="condition 'two-shot' not in"):
        H.gain_by_uncertainty(a, after="two-shot")


def test_paper_table11():
    t = H.paper_table11()
    assert list(t.columns) == ["Accuracy", "Majority Vote on Full Dataset", "Accuracy on Guesses", "Majority Vote Accuracy on Guesses"]
    assert t.loc["Zero-shot human", "Accuracy"] == 53.7
