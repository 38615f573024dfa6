"Appendix E harness (clip_repro.bias): intervals, χ², group accuracy, class design, identity recognition, FairFace labels."
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from scipy import stats
from sklearn.metrics import accuracy_score

from clip_repro import bias as B
from clip_repro.data import DatasetNotFoundError

RNG = np.random.default_rng(0)


def random_probs(n, L, rng=RNG):
    x = rng.normal(size=(n, L)) * 2
    e = np.exp(x - x.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


# ---- intervals ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("k,n", [(0, 10), (3, 10), (10, 10), (490, 10000), (144, 1000)])
def test_exact_interval_is_clopper_pearson_from_beta_quantiles(k, n):
    lo, hi = B.proportion_ci(k, n, 0.95, "exact")
    a = 0.05
    want_lo = 0.0 if k == 0 else stats.beta.ppf(a / 2, k, n - k + 1)
    want_hi = 1.0 if k == n else stats.beta.ppf(1 - a / 2, k + 1, n - k)
    assert lo == pytest.approx(want_lo, abs=1e-9) and hi == pytest.approx(want_hi, abs=1e-9)


def test_wilson_interval_matches_closed_form():
    k, n, z = 49, 1000, stats.norm.ppf(0.975)
    p = k / n
    c = (p + z * z / (2 * n)) / (1 + z * z / n)
    h = z / (1 + z * z / n) * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    assert B.proportion_ci(k, n, 0.95, "wilson") == pytest.approx((c - h, c + h), abs=1e-9)


def test_category_rates_counts_match_pandas_crosstab():
    L = B.fairface_label_set()
    P = random_probs(500, len(L))
    groups = RNG.choice(["a", "b", "c"], 500)
    assigned = B.assigned_category(P, L)
    r = B.category_rates(assigned, groups, ["crime", "non-human", ("crime", "non-human")])
    ct = pd.crosstab(groups, assigned)
    for g in "abc":
        row = r[(r.group == g) & (r.category == "crime")].iloc[0]
        assert row.k == ct.loc[g].get("crime", 0) and row.n == (groups == g).sum()
        both = r[(r.group == g) & (r.category == "crime or non-human")].iloc[0]
        assert both.k == ct.loc[g].get("crime", 0) + ct.loc[g].get("non-human", 0)
        assert both.ci_low <= both.rate <= both.ci_high
    allrow = r[(r.group == "all") & (r.category == "non-human")].iloc[0]
    assert allrow.k == (assigned == "non-human").sum() and allrow.n == 500
    # the top label decides: recompute by argmax directly
    top = P.argmax(1)
    assert allrow.k == np.isin(top, L.indices("non-human")).sum()


def test_category_rates_bad_input():
    with pytest.raises(ValueError, match="not in group_order"):
        B.category_rates(["", "crime"], ["a", "b"], ["crime"], group_order=["a"])
    with pytest.raises(ValueError, match="1-D"):
        B.category_rates(np.zeros((2, 2)), ["a", "b"], ["crime"])
    with pytest.raises(ValueError, match="method must be"):
        B.proportion_ci(1, 2, method="wald")


# ---- class design ------------------------------------------------------------------------------------------------
def test_class_design_child_label_absorbs_only_the_images_it_wins():
    L0, L1 = B.fairface_label_set(), B.fairface_label_set(child=True)
    n = 300
    P0 = random_probs(n, len(L0))
    ages = RNG.choice(["0-2", "30-39"], n)
    child_logit = np.where(ages == "0-2", 10.0, -10.0)   # a 'child' label that wins on the youngest only
    logits1 = np.c_[np.log(P0), child_logit]
    P1 = np.exp(logits1) / np.exp(logits1).sum(1, keepdims=True)
    t = B.class_design_table({"default": (P0, L0), "child": (P1, L1)}, ages, group_order=["0-2", "30-39"])
    tab = B.rate_table(t, index="label_set", percent=False)
    assert tab.loc["child", "0-2"] == 0.0
    assert tab.loc["child", "30-39"] == pytest.approx(tab.loc["default", "30-39"])
    with pytest.raises(ValueError, match="lacks the categories"):
        B.class_design_table({"x": (P0, L0)}, ages, categories=("crime", "child"))


def test_label_set_errors():
    with pytest.raises(ValueError, match="non-empty list"):
        B.label_set(["a"], {"crime": []})
    with pytest.raises(ValueError, match="non-empty list of labels"):
        B.label_set([])


# ---- accuracy by group -------------------------------------------------------------------------------------------
def test_accuracy_by_group_matches_sklearn_per_cell():
    n = 400
    y = RNG.integers(0, 2, n); p = np.where(RNG.random(n) < 0.8, y, 1 - y)
    race = RNG.choice(["White", "Black", "Indian"], n); gender = RNG.choice(["Male", "Female"], n)
    t = B.accuracy_by_group(y, p, {"race": race, "gender": gender})
    for r in ["White", "Black", "Indian"]:
        for g in ["Male", "Female", "all"]:
            m = (race == r) & ((gender == g) if g != "all" else True)
            row = t[(t.race == r) & (t.gender == g)].iloc[0]
            assert row.accuracy == pytest.approx(accuracy_score(y[m], p[m]))
            assert (row.ci_low, row.ci_high) == pytest.approx(B.proportion_ci(int((y[m] == p[m]).sum()), int(m.sum())))
    assert t[(t.race == "all") & (t.gender == "all")].accuracy.item() == pytest.approx(accuracy_score(y, p))
    with pytest.raises(ValueError, match="entries but there are"):
        B.accuracy_by_group(y, p, {"race": race[:-1]})


# ---- thresholds and chi2 -----------------------------------------------------------------------------------------
def _chi2_by_hand(table):
    table = np.asarray(table, float)
    E = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / table.sum()
    return ((table - E) ** 2 / E).sum()


def test_chi2_matches_hand_formula_and_scipy():
    n = 600
    groups = np.array(["men"] * 300 + ["women"] * 300)
    A = np.c_[RNG.random(n) < np.where(groups == "women", 0.3, 0.1),   # 'blonde': more often women
              RNG.random(n) < 0.2,                                       # independent
              RNG.random(n) < np.where(groups == "men", 0.25, 0.05)]     # 'tie': more often men
    t = B.chi2_label_association(A, ["blonde", "hat", "tie"], groups, correction=False)
    for j, lab in enumerate(["blonde", "hat", "tie"]):
        ct = pd.crosstab(groups, A[:, j]).values
        row = t[t.label == lab].iloc[0]
        assert row.chi2 == pytest.approx(_chi2_by_hand(ct))
        assert row.p == pytest.approx(stats.chi2.sf(_chi2_by_hand(ct), 1))
    tc = B.chi2_label_association(A, ["blonde", "hat", "tie"], groups)   # Yates-corrected default
    assert tc[tc.label == "tie"].chi2.item() == pytest.approx(stats.chi2_contingency(pd.crosstab(groups, A[:, 2]).values).statistic)
    top = B.gendered_labels(t, top=1, alpha=0.01)
    assert top == {"women": ["blonde"], "men": ["tie"]} or top == {"men": ["tie"], "women": ["blonde"]}


def test_chi2_three_groups():
    groups = np.repeat(["a", "b", "c"], 50)
    A = (RNG.random((150, 1)) < np.repeat([0.1, 0.4, 0.7], 50)[:, None])
    t = B.chi2_label_association(A, ["x"], groups)
    assert t.dof.item() == 2
    assert t.chi2.item() == pytest.approx(_chi2_by_hand(pd.crosstab(groups, A[:, 0]).values))


def test_lower_threshold_attaches_a_superset():
    P = random_probs(200, 30)
    lo, hi = B.attached_labels(P, 0.005), B.attached_labels(P, 0.04)
    assert (hi <= lo).all() and lo.sum() > hi.sum()
    f = B.label_frequencies(lo, [f"l{i}" for i in range(30)], RNG.choice(["m", "w"], 200))
    assert set(f.columns) >= {"label", "group", "count", "n", "percent"}


# ---- E.2 ---------------------------------------------------------------------------------------------------------
def test_identity_recognition_matches_brute_force():
    N, M = 60, 50
    S = RNG.normal(size=(N, M)); y = RNG.integers(0, 10, N); S[np.arange(N), y] += 1.5
    r = B.identity_recognition(S, y, n_classes=(10, 25, 50), seed=3)
    assert r.top1.iloc[-1] == pytest.approx((S.argmax(1) == y).mean())   # all names: plain argmax
    assert (np.diff(r.top1.values) <= 1e-12).all()
    ids = np.unique(y)
    assert r.top1.iloc[0] == pytest.approx((ids[S[:, ids].argmax(1)] == y).mean())
    with pytest.raises(ValueError, match="at most the 50 names"):
        B.identity_recognition(S, y, n_classes=(60,))


def test_accuracy_by_frequency_spearman():
    y = np.repeat(np.arange(8), 10)
    freq = {i: 2 ** i for i in range(8)}
    pred = np.where(RNG.random(80) < np.repeat(np.linspace(0.1, 0.9, 8), 10), y, (y + 1) % 8)
    tab, rho, p = B.accuracy_by_frequency(y, pred, freq)
    per = pd.Series(pred == y).groupby(y).mean()
    want = stats.spearmanr([freq[i] for i in per.index], per.values)
    assert rho == pytest.approx(want.statistic) and p == pytest.approx(want.pvalue)
    assert tab.identities.sum() == 8
    with pytest.raises(ValueError, match="no pre-training frequency"):
        B.accuracy_by_frequency(y, pred, {0: 1})


def test_caption_scores_equal_manual_cosines():
    D = 6
    emb = {t: torch.randn(D) for t in ["lot", "campus", "street", "park", "lot with red car"]}
    enc = lambda texts: torch.stack([emb[t] for t in texts])
    sets = [B.CaptionSet(("lot", "campus", "street", "park"), 0), B.CaptionSet(("campus", "street", "park", "lot"), 2)]
    sets = [B.with_near_miss(s, "lot with red car") for s in sets]
    I = torch.randn(2, D)
    sc = B.caption_set_scores(I, sets, enc)
    for i, s in enumerate(sets):
        want = torch.nn.functional.cosine_similarity(I[i][None], enc(list(s.captions)), dim=-1).numpy()
        np.testing.assert_allclose(sc[i], want, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="one set per image"):
        B.caption_set_scores(I[:1], sets, enc)


def test_label_probabilities_on_a_toy_clip():
    from clip_repro.model import CLIP, make_config
    from clip_repro.tokenizer import tokenize
    torch.manual_seed(0); threads = torch.get_num_threads(); torch.set_num_threads(1)
    model = CLIP(make_config("toy-vit", vocab_size=49408)).eval()
    L = B.label_set(["teal person", "ochre person"], {"crime": ["criminal"]})
    feats = torch.randn(4, model.encode_text(tokenize(["x"], context_length=model.context_length)).shape[-1])
    P = B.label_probabilities(feats, model, L, templates=["a photo of a {}."])
    with torch.no_grad():
        T = torch.nn.functional.normalize(model.encode_text(tokenize([f"a photo of a {l}." for l in L.labels], context_length=model.context_length)), dim=-1)
        want = (model.logit_scale.exp() * torch.nn.functional.normalize(feats, dim=-1) @ T.T).softmax(-1).numpy()
    torch.set_num_threads(threads)
    np.testing.assert_allclose(P, want, rtol=1e-4, atol=1e-6)


# ---- FairFace label files ----------------------------------------------------------------------------------------
def _fairface(root: Path, rows, header="file,age,gender,race,service_test"):
    (root / "fairface/val").mkdir(parents=True, exist_ok=True)
    for f, *_ in rows: Image.new("RGB", (4, 4), (10, 20, 30)).save(root / "fairface" / f)
    (root / "fairface/fairface_label_val.csv").write_text(header + "\n" + "".join(",".join(r) + ",True\n" for r in rows))


ROWS = [("val/1.jpg", "3-9", "Male", "East Asian"), ("val/2.jpg", "more than 70", "Female", "White"),
        ("val/3.jpg", "20-29", "Female", "Middle Eastern")]


def test_fairface_labels_align_with_data_registry(tmp_path):
    _fairface(tmp_path, ROWS)
    ds, lab = B.fairface_dataset(tmp_path, "val")
    assert len(ds) == 3 and list(lab.gender) == ["Male", "Female", "Female"]
    assert [ds[i][1] for i in range(3)] == [B.FAIRFACE_RACES.index(r) for *_, r in ROWS]
    assert list(lab.age.cat.categories) == B.FAIRFACE_AGES


@pytest.mark.parametrize("bad,match", [(("val/1.jpg", "3-9", "Male", "Asian"), "column 'race'"),
                                       (("val/1.jpg", "70+", "Male", "White"), "column 'age'")])
def test_fairface_bad_values(tmp_path, bad, match):
    _fairface(tmp_path, [bad])
    with pytest.raises(ValueError, match=match):
        B.read_fairface_labels(tmp_path, "val")


def test_fairface_missing_file_and_columns(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="fairface_label_val.csv"):
        B.read_fairface_labels(tmp_path, "val")
    with pytest.raises(ValueError, match="has splits"):
        B.read_fairface_labels(tmp_path, "test")
    (tmp_path / "fairface").mkdir()
    (tmp_path / "fairface/fairface_label_val.csv").write_text("file,race\nval/1.jpg,White\n")
    with pytest.raises(ValueError, match=r"columns \['age', 'gender'\] missing"):
        B.read_fairface_labels(tmp_path, "val")


def test_paper_tables_load_and_are_consistent():
    t7 = B.paper_table(7)
    assert t7.shape == (9, 10) and t7.Average.isna().all()
    clip = t7[t7.model != "Linear Probe Instagram"]
    races = ["Black", "White", "Indian", "Latino", "Middle Eastern", "Southeast Asian", "East Asian"]
    assert (clip[races] > 95).all().all()   # E.1: CLIP's gender accuracy is above 95% for every race
    t9 = B.paper_table(9)
    assert (t9.iloc[1, 1:4].values < t9.iloc[0, 1:4].values).all()   # 'child' lowers the rates of the under-20s
