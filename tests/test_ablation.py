"Appendix G: Table 12 as data, the deltas/averages/wins table and the mixture-correlation helpers (hand cases, scipy)."
import math
import numpy as np
import pytest
from scipy import stats

from clip_repro import world as Wd
from clip_repro.ablation import (AVERAGE, WINS, ablation_table, density_log_ratio, grouped_scores, mix_correlation,
                                 paper_table12, table12_errata, table12_shape, task_supercategories)


def test_paper_table12_as_printed():
    t = paper_table12()
    assert list(t.index) == ["Birdsnap", "Country211", "Flowers102", "GTSRB", "UCF101", "Stanford Cars", "ImageNet", AVERAGE, WINS]
    assert t.loc[AVERAGE].tolist() == [65.5, 66.6, -1.1, 29.6, 30.0, -0.4]
    assert t.loc[WINS].tolist() == [10, 15, -5, 19, 18, 1]
    # the aggregate rows are internally consistent; only Country211's zero-shot delta is misprinted
    e = table12_errata()
    assert e.to_dict("records") == [{"dataset": "Country211", "setting": "zeroshot", "printed_delta": 0.1, "yfcc_minus_wit": -0.1}]


def test_ablation_table_hand_case():
    a = {"p": 70.0, "q": 10.0, "r": 33.0, "s": 50.0}
    b = {"p": 60.0, "q": 30.0, "r": 33.0, "s": 49.0}
    t = ablation_table(a, b, names=("A", "B"))
    assert list(t.columns) == ["A", "B", "Δ"]
    assert t["Δ"].iloc[:4].tolist() == [10.0, -20.0, 0.0, 1.0]
    assert t.loc[AVERAGE].tolist() == pytest.approx([40.75, 43.0, -2.25])
    assert t.loc[WINS].tolist() == [2, 1, 1]  # the tie on r counts for neither
    assert ablation_table(a, b, tie_tol=1.0).loc[WINS].tolist() == [1, 1, 0]  # |Δ| ≤ 1 is a tie


def test_ablation_table_bad_input():
    with pytest.raises(ValueError, match="same datasets"): ablation_table({"x": 1.0, "y": 2.0}, {"x": 1.0})
    with pytest.raises(ValueError, match="finite"): ablation_table({"x": np.inf}, {"x": 1.0})
    with pytest.raises(ValueError, match="at least one"): ablation_table({}, {})
    with pytest.raises(TypeError, match="mappings"): ablation_table([1.0], [2.0])
    with pytest.raises(ValueError, match="reserved"): ablation_table({AVERAGE: 1.0}, {AVERAGE: 2.0})


def test_table12_shape_columns():
    t = table12_shape(({"x": 2.0, "y": 1.0}, {"x": 1.0, "y": 1.0}), ({"x": 0.0, "y": 3.0}, {"x": 1.0, "y": 1.0}))
    assert list(t.columns) == [(s, c) for s in ("Linear Classifier", "Zero Shot") for c in ("YFCC", "WIT", "Δ")]
    assert t.loc[WINS, ("Zero Shot", "Δ")] == 0 and t.loc[WINS, ("Linear Classifier", "Δ")] == 1


def test_density_log_ratio():
    wit, yfcc = Wd.variant_mixture("wit"), Wd.variant_mixture("yfcc")
    assert sum(yfcc.values()) == pytest.approx(1.0, abs=1e-5)
    for sup in Wd.SUPERCATEGORIES:  # one super-category: log(w_yfcc / (1/12))
        assert density_log_ratio([sup], yfcc, wit) == pytest.approx(math.log(yfcc[sup] * 12), abs=1e-4)
    # two super-categories weigh by class count: 3 of s1 and 1 of s2
    s1, s2 = Wd.SUPERCATEGORIES[:2]
    want = math.log((3 * yfcc[s1] + yfcc[s2]) / 4 / (1 / 12))
    assert density_log_ratio([s1, s1, s1, s2], yfcc, wit) == pytest.approx(want, abs=1e-4)
    assert density_log_ratio(task_supercategories("toy/objects"), yfcc, wit) == pytest.approx(0.0, abs=1e-5)
    assert density_log_ratio([], yfcc, wit) == 0.0
    with pytest.raises(KeyError, match="unicorn"): density_log_ratio(["unicorn"], yfcc, wit)


def test_task_supercategories_match_the_world():
    for name in Wd.task_names():
        sups = task_supercategories(name)
        names = Wd.get_task(name).classnames
        if name in ("toy/mammals", "toy/birds", "toy/flowers", "toy/vehicles", "toy/machines"):
            assert len(set(sups)) == 1 and len(sups) == len(names)
            assert set(names) == {c.name for c in Wd.CATEGORIES if c.supercategory == sups[0]}
        elif name == "toy/textures":
            assert sups == []


def test_mix_correlation_matches_scipy():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=9), rng.normal(size=9)
    keys = [f"t{i}" for i in range(9)]
    c = mix_correlation(dict(zip(keys, y)), dict(zip(keys, x)))
    assert c["n"] == 9
    assert c["pearson_r"] == pytest.approx(np.corrcoef(x, y)[0, 1])
    assert c["pearson_p"] == pytest.approx(stats.pearsonr(x, y).pvalue)
    assert c["spearman_rho"] == pytest.approx(stats.spearmanr(x, y).statistic)
    # tasks missing a shift are dropped, not guessed
    assert mix_correlation({**dict(zip(keys, y)), "extra": 5.0}, dict(zip(keys, x)))["n"] == 9
    with pytest.raises(ValueError, match="undefined"): mix_correlation(dict(zip(keys, y)), dict.fromkeys(keys, 0.0))


def test_grouped_scores():
    y = [0, 1, 2, 2, 1, 0]
    s = np.eye(3)[[0, 1, 2, 0, 0, 0]]
    assert grouped_scores(y, s, ["a", "a", "b", "b", "c", "c"]) == {"a": 1.0, "b": 0.5, "c": 0.5}
    assert grouped_scores(y, s, ["a", "a", "b", "b", "b", "b"], metric="mean_per_class") == {"a": 1.0, "b": pytest.approx((1 + 0.5 + 0) / 3)}
    with pytest.raises(ValueError, match="one label"): grouped_scores(y, s, ["a"])


def test_mcnemar_p_against_scipy():
    from clip_repro.ablation import mcnemar_p
    rng = np.random.default_rng(1)
    a, b = rng.random(200) < 0.6, rng.random(200) < 0.5
    n10, n01 = int((a & ~b).sum()), int((~a & b).sum())
    assert mcnemar_p(a, b) == pytest.approx(stats.binomtest(n10, n10 + n01, 0.5).pvalue)
    assert mcnemar_p(a, b) == pytest.approx(mcnemar_p(b, a))  # symmetric
    assert mcnemar_p([True, False, True, True], [False, True, True, True]) == pytest.approx(1.0)  # 1 vs 1 discordant
