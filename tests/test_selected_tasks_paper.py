"""Appendix H at paper scale (`clip_repro.video.selected_tasks_suite`) on miniature downloads laid out like the real ones.

Flickr30k (Karpathy json), Rendered SST2 (class folders), UCF101 (extracted frames and the official lists), RareAct
(`rareact.csv` and videos decoded with PyAV) and IM2GPS (the test CSV and a reference CSV in the same format) are written
as tiny random images; MSCOCO and Kinetics-700 are absent and must be listed as missing with the registry's reason. A
random toy CLIP is saved as a local checkpoint and loaded with `clip_repro.load`; its image tower is swapped for a random
pooled-linear map so that embeddings vary from image to image. Every number is recomputed by hand: recall by ranking,
zero-shot by prompt embeddings and frame-averaged softmax, probes by scikit-learn, RareAct's scores by a transcription
of the selection in its release's `compute_score.py`, geolocation by the spherical law of cosines.
"""
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from clip_repro import video as V
from clip_repro.data import CardError, load, load_card, read_segment
from clip_repro.probe import lambda_to_C
from clip_repro.tokenizer import tokenize
from test_data_registry import build_ucf101
from test_data_video_sets import build_rareact
from test_robustness_paper import lin_clip, noise  # noqa: F401 (fixture: the random checkpoint with a pooled-linear image tower)
from test_suite import build_ucf101_folds, checkpoint, clip, run_paper_notebook  # noqa: F401 (fixtures: the random local checkpoint)

pytestmark = pytest.mark.usefixtures("one_torch_thread")
LAM = 0.5                                                        # fixed λ of the probes in the suite test
WORDS = ["red", "boat", "tree", "dog", "river", "sky", "cup", "hat", "car", "sun", "moon", "bird"]
REF = [(48.8584, 2.2945), (51.5007, -0.1246), (-33.8568, 151.2153), (40.6892, -74.0445), (35.6586, 139.7454)]
TEST = [(48.86, 2.35), (-33.87, 151.21), (55.75, 37.62)]


def build_flickr(root, n=6):
    "Karpathy-style dataset_flickr30k.json: one train image, `n` test images with 5 captions each."
    rng = np.random.default_rng(0); imgs = []
    for k in range(n + 1):
        noise(root / f"flickr30k/flickr30k-images/{k}.jpg", 300 + k, size=(12, 12))
        caps = [" ".join(rng.choice(WORDS, 3)) for _ in range(5)]
        imgs.append({"filename": f"{k}.jpg", "split": "train" if k == n else "test", "sentences": [{"raw": c} for c in caps]})
    (root / "flickr30k/dataset_flickr30k.json").write_text(json.dumps({"images": imgs, "dataset": "flickr30k"}))


def build_sst2(root):
    for sp, n in (("train", 4), ("valid", 2), ("test", 3)):
        for c, cls in enumerate(("negative", "positive")):
            for k in range(n): noise(root / f"rendered-sst2/{sp}/{cls}/{sp}_{cls}_{k}.png", 1000 * c + 10 * len(sp) + k, size=(12, 12))


def build_im2gps(root):
    for name, pts, base in (("im2gps_test.csv", TEST, "test"), ("reference.csv", REF, "ref")):
        for k in range(len(pts)): noise(root / f"im2gps/{base}/{k}.jpg", 700 + 10 * len(base) + k, size=(12, 12))
        (root / "im2gps" / name).write_text("image,lat,lon\n" + "".join(f"{base}/{k}.jpg,{la},{lo}\n" for k, (la, lo) in enumerate(pts)))


def randomise_ucf(root):
    "build_ucf101's frames are flat colours; give every frame random pixels so that frames of one clip differ."
    for k, p in enumerate(sorted((root / "ucf101/frames").glob("*/*/*.jpg"))): noise(p, 5000 + k, size=(12, 12))


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    build_flickr(root); build_sst2(root); build_ucf101(root); randomise_ucf(root); build_rareact(root); build_im2gps(root)
    return root


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("run")


@pytest.fixture(scope="module")
def suite(lin_clip, data_root, run_dir):
    model, preprocess = lin_clip
    return V.selected_tasks_suite(model, preprocess, data_root, run_dir, probe_lambda=LAM, backend="sklearn", batch_size=4,
                                  show_progress=False)


# ---------------------------------------------------------------- hand computations


def text_weights(model, names, templates):
    prompts = [t.format(n) for n in names for t in templates]
    with torch.no_grad(): e = F.normalize(model.encode_text(tokenize(prompts, context_length=model.context_length)).float(), dim=-1)
    return F.normalize(e.reshape(len(names), len(templates), -1).mean(1), dim=-1).T


def embed(model, preprocess, ims):
    ims = [Image.open(p).convert("RGB") if not isinstance(p, Image.Image) else p for p in ims]
    with torch.no_grad(): return F.normalize(model.encode_image(torch.stack([preprocess(im) for im in ims])).float(), dim=-1)


def frame_avg_probs(model, preprocess, clips, W):
    s = float(model.logit_scale.detach().exp().clamp(max=100))
    return np.stack([(s * embed(model, preprocess, c) @ W).softmax(-1).mean(0).numpy() for c in clips])


def cell(suite, dataset, setting, column):
    row = suite[(suite.dataset == dataset) & (suite.setting == setting) & (suite.column == column)]
    assert len(row) == 1, (dataset, setting, column)
    return row.iloc[0].score, row.iloc[0].n_test


def sk_accuracy(Xtr, ytr, Xte, yte, lam):
    from sklearn.linear_model import LogisticRegression
    clf = LogisticRegression(C=lambda_to_C(lam, len(Xtr)), solver="lbfgs", max_iter=1000, tol=1e-4).fit(Xtr, ytr)
    return 100 * (clf.predict(Xte) == yte).mean()


# ---------------------------------------------------------------- the suite


def test_every_dataset_is_reported_and_missing_ones_are_named(suite):
    assert list(suite.columns) == V.SELECTED_COLUMNS
    miss = suite[suite.status != "ok"].set_index("dataset").status
    assert sorted(miss.index) == ["kinetics700", "mscoco"]
    assert miss.str.startswith("missing: ").all()
    assert "dataset_coco.json" in miss["mscoco"] and "kinetics700/frames" in miss["kinetics700"]   # the registry's reasons
    ok = suite[suite.status == "ok"]
    assert sorted(ok.dataset.unique()) == ["flickr30k", "im2gps", "rareact", "rendered_sst2", "ucf101"]
    assert len(ok) == 6 + 2 + 2 + 2 + 5 and ok.score.between(0, 100).all()


def test_retrieval_recall_by_hand(suite, lin_clip, data_root):
    "Text retrieval: an image hits at k if any of its 5 captions is in its top k; image retrieval: a caption's one image."
    model, preprocess = lin_clip
    meta = [im for im in json.loads((data_root / "flickr30k/dataset_flickr30k.json").read_text())["images"] if im["split"] == "test"]
    I = embed(model, preprocess, [data_root / "flickr30k/flickr30k-images" / im["filename"] for im in meta]).numpy()
    caps = ["a photo of " + s["raw"] for im in meta for s in im["sentences"]]
    owner = np.repeat(np.arange(len(meta)), 5)
    with torch.no_grad(): T = F.normalize(model.encode_text(tokenize(caps, context_length=model.context_length)).float(), dim=-1).numpy()
    S = I @ T.T
    for k in (1, 5, 10):
        i2t = np.mean([np.isin(np.argsort(-S[i], kind="stable")[:k], np.flatnonzero(owner == i)).any() for i in range(len(meta))])
        t2i = np.mean([owner[j] in np.argsort(-S[:, j], kind="stable")[:k] for j in range(len(caps))])
        assert cell(suite, "flickr30k", "zeroshot", f"text_flickr30k_r{k}") == (pytest.approx(100 * i2t), len(meta))
        assert cell(suite, "flickr30k", "zeroshot", f"image_flickr30k_r{k}")[0] == pytest.approx(100 * t2i)
    assert 0 < cell(suite, "flickr30k", "zeroshot", "image_flickr30k_r1")[0] < 100      # not trivially 0 or 100


def test_rendered_sst2_zero_shot_and_probe(suite, lin_clip, data_root):
    model, preprocess = lin_clip
    card = load_card("rendered_sst2")
    split = lambda sp: [(p, c) for c, cls in enumerate(("negative", "positive")) for p in sorted((data_root / f"rendered-sst2/{sp}/{cls}").glob("*.png"))]
    X = {sp: (embed(model, preprocess, [p for p, _ in split(sp)]).numpy(), np.array([c for _, c in split(sp)])) for sp in ("train", "valid", "test")}
    # the suite's probe features are image_features (= encode_image for a ResNet tower), not normalised
    with torch.no_grad():
        raw = {sp: model.image_features(torch.stack([preprocess(Image.open(p).convert("RGB")) for p, _ in split(sp)])).numpy() for sp in X}
    W = text_weights(model, card["zeroshot"]["classnames"], card["zeroshot"]["templates"])
    zs = 100 * ((torch.from_numpy(X["test"][0]) @ W).argmax(1).numpy() == X["test"][1]).mean()
    assert cell(suite, "rendered_sst2", "zeroshot", "sst2") == (pytest.approx(zs), 6)
    lin = sk_accuracy(np.concatenate([raw["train"], raw["valid"]]), np.concatenate([X["train"][1], X["valid"][1]]), raw["test"], X["test"][1], LAM)
    assert abs(cell(suite, "rendered_sst2", "linear", "sst2")[0] - lin) <= 100 / 6 + 1e-9     # at most one prediction apart


def test_ucf101_all_frame_zero_shot_and_middle_frame_probe(suite, lin_clip, data_root):
    model, preprocess = lin_clip
    card = load_card("ucf101")
    te, tr = load("ucf101", "test", root=data_root), load("ucf101", "train", root=data_root)
    clips = [sorted(p.parent.glob("*.jpg")) for p, _ in te.items]
    assert all(len(c) == 5 for c in clips)
    P = frame_avg_probs(model, preprocess, clips, text_weights(model, card["zeroshot"]["classnames"], card["zeroshot"]["templates"]))
    y = np.array(te.targets())
    assert cell(suite, "ucf101", "zeroshot", "ucf101_top1") == (pytest.approx(100 * (P.argmax(1) == y).mean()), 3)
    mid = lambda ds: embed(model, preprocess, [p for p, _ in ds.items]).numpy()          # the loader's items are the middle frames
    raw = lambda ds: model.image_features(torch.stack([preprocess(Image.open(p).convert("RGB")) for p, _ in ds.items])).detach().numpy()
    assert mid(te).shape == (3, model.config.embed_dim)
    lin = sk_accuracy(raw(tr), np.array(tr.targets()), raw(te), y, LAM)
    assert abs(cell(suite, "ucf101", "linear", "ucf101_top1")[0] - lin) <= 100 / 3 + 1e-9


def release_selection(rows):
    "RareAct's compute_score.py, transcribed: per action (verb, noun), its positive, negative and hard-negative row indices."
    groups = {(r[5], r[6]): {"pos": [], "neg": [], "hneg": []} for r in rows}
    for i, (_, _, _, _, _, v, n, a) in enumerate(rows):
        if a == 0: groups[(v, n)]["neg"].append(i)
        elif a == 1:
            groups[(v, n)]["pos"].append(i)
            for (v2, n2), g in groups.items():
                if (v2 == v) != (n2 == n): g["hneg"].append(i)
                elif v2 != v and n2 != n: g["neg"].append(i)
        else: groups[(v, n)]["hneg"].append(i)
    return groups


def release_wap(scores, rows):
    "The release's default (mWAP): AP with each row weighted by 1 / its video's rows in its group; plain mean over actions."
    from sklearn.metrics import average_precision_score
    cid = {(r[5], r[6]): r[4] for r in rows}; vids = [r[1] for r in rows]
    aps = []
    for act, g in release_selection(rows).items():
        if not g["pos"]: continue
        order = g["pos"] + g["neg"] + g["hneg"]
        w = [1 / sum(vids[j] == vids[i] for j in g[k]) for k in ("pos", "neg", "hneg") for i in g[k]]
        lab = [1] * len(g["pos"]) + [0] * (len(order) - len(g["pos"]))
        aps.append(average_precision_score(lab, scores[order, cid[act]], sample_weight=w))
    return float(np.mean(aps))


def test_rareact_scores_equal_the_release_scorer(suite, lin_clip, data_root):
    from test_data_video_sets import ROWS
    model, preprocess = lin_clip
    ds = load("rareact", "test", root=data_root)
    W = text_weights(model, ds.classes, list(V.RAREACT_TEMPLATES))
    clips = [read_segment(data_root / "rareact/videos" / ds.items[i][0].path.name, r[2], r[3]) for i, r in enumerate(ROWS)]
    S = frame_avg_probs(model, preprocess, clips, W)                                 # (rows, classes)
    got, n = cell(suite, "rareact", "zeroshot", "rareact_mwap")
    assert n == len(ROWS) and got == pytest.approx(100 * release_wap(S, ROWS))
    # mWSAP: one row per video per group, drawn at random; bounded by the per-class extremes, and exactly the weighted AP
    # when no group holds two rows of one video (not the case here, so only bounds and determinism are checked)
    ws, _ = cell(suite, "rareact", "zeroshot", "rareact_mwsap")
    args = ([r[4] for r in ROWS], [r[5] for r in ROWS], [r[6] for r in ROWS], [r[7] for r in ROWS], [r[1] for r in ROWS])
    assert ws == pytest.approx(100 * V.rareact_map(S, *args, n_sampling=V.RAREACT_SAMPLING, seed=0)) and 0 < ws <= 100


def great_circle_km(a, b):
    "Spherical law of cosines (a different formula from the library's haversine), Earth radius 6371.0088 km."
    (la1, lo1), (la2, lo2) = np.radians(a), np.radians(b)
    c = math.sin(la1) * math.sin(la2) + math.cos(la1) * math.cos(la2) * math.cos(lo2 - lo1)
    return 6371.0088 * math.acos(min(1.0, max(-1.0, c)))


def test_im2gps_nearest_neighbour_by_hand(suite, lin_clip, data_root):
    model, preprocess = lin_clip
    q = embed(model, preprocess, [data_root / f"im2gps/test/{k}.jpg" for k in range(len(TEST))]).numpy()
    r = embed(model, preprocess, [data_root / f"im2gps/ref/{k}.jpg" for k in range(len(REF))]).numpy()
    nn = (q @ r.T).argmax(1)
    d = [great_circle_km(TEST[i], REF[j]) for i, j in enumerate(nn)]
    assert great_circle_km(REF[0], REF[1]) == pytest.approx(341, abs=2)             # Eiffel Tower -> Westminster
    for rad in (1, 25, 200, 750, 2500):
        assert cell(suite, "im2gps", "nearest neighbour", f"acc_{rad}km") == (pytest.approx(100 * np.mean([x <= rad for x in d])), 3)


def test_rerun_reads_the_cache(suite, lin_clip, data_root, run_dir, monkeypatch):
    model, preprocess = lin_clip
    import clip_repro.suite as S
    boom = lambda *a, **k: (_ for _ in ()).throw(AssertionError("recomputed"))
    monkeypatch.setattr(S, "_features", boom); monkeypatch.setattr(V, "_embed_paths", boom); monkeypatch.setattr(V, "zero_shot_video_scores", boom)
    again = V.selected_tasks_suite(model, preprocess, data_root, run_dir, probe_lambda=LAM, backend="sklearn", batch_size=4, show_progress=False)
    assert again.fillna(-1).to_dict("records") == suite.fillna(-1).to_dict("records")


def test_partial_run_resumes_where_it_stopped(lin_clip, data_root, tmp_path, monkeypatch):
    "An interruption in UCF101 keeps Flickr30k's finished result; the rerun computes only what was left."
    model, preprocess = lin_clip
    real = V.zero_shot_video_scores
    monkeypatch.setattr(V, "zero_shot_video_scores", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        V.selected_tasks_suite(model, preprocess, data_root, tmp_path, datasets=["flickr30k", "ucf101"], probe_lambda=LAM,
                               backend="sklearn", show_progress=False)
    monkeypatch.setattr(V, "zero_shot_video_scores", real)
    monkeypatch.setattr(V, "_embed_paths", lambda *a, **k: (_ for _ in ()).throw(AssertionError("flickr30k recomputed")))
    out = V.selected_tasks_suite(model, preprocess, data_root, tmp_path, datasets=["flickr30k", "ucf101"], probe_lambda=LAM,
                                 backend="sklearn", show_progress=False)
    assert (out.status == "ok").all() and set(out.dataset) == {"flickr30k", "ucf101"}


def test_bad_input_is_named(lin_clip, data_root, tmp_path):
    model, preprocess = lin_clip
    with pytest.raises(ValueError, match=r"unknown dataset\(s\) \['imagenet'\]"):
        V.selected_tasks_suite(model, preprocess, data_root, tmp_path, datasets=["imagenet"])
    with pytest.raises(TypeError, match="expected a CLIP model"):
        V.selected_tasks_suite(torch.nn.Linear(2, 2), preprocess, data_root, tmp_path)
    with pytest.raises(ValueError, match="max_frames must be"):
        V.selected_tasks_suite(model, preprocess, data_root, tmp_path, max_frames=0)
    bad = tmp_path / "bad"; build_im2gps(bad)
    (bad / "im2gps/reference.csv").write_text("image,lat,lon\nref/0.jpg,2.29,148.85\nref/1.jpg,95.0,0.0\n")   # latitude 95
    with pytest.raises(CardError, match=r"\(95\.0, 0\.0\) is not a latitude/longitude"):
        V.selected_tasks_suite(model, preprocess, bad, tmp_path / "run", datasets=["im2gps"], show_progress=False)
    (bad / "im2gps/reference.csv").unlink()
    out = V.selected_tasks_suite(model, preprocess, bad, tmp_path / "run", datasets=["im2gps"], show_progress=False)
    assert out.status[0].startswith("missing: ") and "reference.csv" in out.status[0]


def test_rareact_map_hand_cases_and_errors():
    "Unweighted mean over classes (the release), unlike metrics.mwap's positive-weighted mean."
    from clip_repro.metrics import mwap
    S = np.array([[0.9, 0.2], [0.8, 0.1], [0.1, 0.9]])               # class 0 has two positives, class 1 one
    rows = dict(class_id=[0, 0, 1], verb=["cut", "cut", "peel"], noun=["egg", "egg", "pear"], annotation=[1, 1, 1])
    S[2, 0] = 0.85                                                    # class 0: pos 0.9, neg 0.85, pos 0.8 -> AP (1 + 2/3) / 2
    assert V.rareact_map(S, **rows) == pytest.approx(((1 + 2 / 3) / 2 + 1) / 2)
    assert mwap(np.array([[1, 0], [1, 0], [0, 1]], bool), S) == pytest.approx((2 * (1 + 2 / 3) / 2 + 1) / 3)   # weights 2 and 1
    assert V.rareact_map(S, **rows, n_sampling=10) == pytest.approx(V.rareact_map(S, **rows))   # one row per video: draws change nothing
    with pytest.raises(ValueError, match="annotated as both"):
        V.rareact_map(S, [0, 0, 1], ["cut", "peel", "peel"], ["egg", "egg", "pear"], [1, 1, 1])
    with pytest.raises(ValueError, match="one entry per row"):
        V.rareact_map(S[:2], [0, 0], ["cut"] * 2, ["egg"], [1, 1])
    with pytest.raises(ValueError, match="no class has a positive"):
        V.rareact_map(S, **{**rows, "annotation": [0, 0, 2]})


def test_beside_paper_tables(suite):
    t15 = V.beside_paper(suite, 15, "run")
    assert t15.loc[("paper", "zeroshot"), "rareact_mwap"] == 40.7
    assert t15.loc[("run", "zeroshot"), "rareact_mwap"] == cell(suite, "rareact", "zeroshot", "rareact_mwap")[0]
    assert np.isnan(t15.loc[("run", "zeroshot"), "k700_avg"])                       # Kinetics-700 is missing
    t13, t17 = V.beside_paper(suite, 13, "run"), V.beside_paper(suite, 17, "run")
    assert t13.loc[("paper", "zeroshot"), "text_flickr30k_r1"] == 88.0 and np.isnan(t13.loc[("run", "zeroshot"), "text_mscoco_r1"])
    assert t17.loc[("paper", "nearest neighbour"), "acc_2500km"] == 79.3
    assert list(V.beside_paper(suite, 14, "run").index) == [("paper", "linear"), ("paper", "zeroshot"), ("run", "linear"), ("run", "zeroshot")]


# ---------------------------------------------------------------- notebook H at paper scale


def test_notebook_H_paper_branch_runs_with_papermill(tmp_path, checkpoint):
    """Notebook H at scale 'paper' on miniature Flickr30k, UCF101 and RareAct (the rest absent) and the random local
    checkpoint: it finishes, names every missing set, and replaces the toy claims by paper-scale ones."""
    root = tmp_path / "data"
    build_flickr(root); build_ucf101_folds(root); build_rareact(root)   # 4 training clips per class: the A.3 sweep splits off validation
    run, text = run_paper_notebook("27_H_selected_tasks", tmp_path, checkpoint, root)
    line = next(l for l in text.splitlines() if "cells measured; missing:" in l)
    assert sorted(line.split("missing: ", 1)[1].split(", ")) == ["im2gps", "kinetics700", "mscoco", "rendered_sst2"]
    claims = json.loads((run / "claims/27_H_selected_tasks.json").read_text())
    claims = claims["claims"] if isinstance(claims, dict) else claims
    assert {c["scale"] for c in claims} == {"paper"} and len(claims) == 9
    by = {c["claim"]: c for c in claims}
    assert by[next(k for k in by if "Rendered SST2" in k or "rendered reviews" in k)]["measured"].startswith("not measured")
    assert not any(c["measured"].startswith("not measured") for c in claims if "UCF101" in c["claim"])
    for t in (13, 15):
        assert "run: " in (run / f"tables/table{t}.csv").read_text()
