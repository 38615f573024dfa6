"""Table 16 at paper scale (`clip_repro.robustness.robustness_suite`) on miniature downloads laid out like the real ones.

ImageNet (val and train), ImageNetV2, ImageNet-R, ImageNet-A, ImageNet-Sketch, ObjectNet (with its `mappings/`),
ImageNet-Vid-Robust and YouTube-BB-Robust are written as tiny random images in the releases' layouts, and a randomly
initialised toy CLIP is saved as a local checkpoint and loaded with `clip_repro.load`, as a released model is. The suite's
numbers are checked against hand computations (prompt embeddings, cosine logits, class-subset restriction, ObjectNet's
max-pooling, the release's own PM-k loop, a scikit-learn probe) with the checkpoint's image tower swapped for a random
pooled-linear map, so that predictions vary from image to image; notebook D's paper branch is run with papermill on the
checkpoint itself.
"""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from PIL import Image

import clip_repro
from clip_repro import robustness as RB
from clip_repro.data import load, load_card
from clip_repro.tokenizer import tokenize
from test_data_video_sets import VID, YTBB, YTBB_INDEX, build_vid, build_ytbb, release_scores   # the registry's video-set builders
from test_suite import _sklearn_fit, checkpoint, clip, hand_features, run_paper_notebook  # noqa: F401 (fixtures: the random local checkpoint)

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_torch_thread")
TEMPLATES = ["a photo of a {}."]      # one template keeps the 1,000-class text side fast; the notebook test uses the card's path
LAM = 1.0                             # fixed λ of the adapted probe in the suite test (the sweep is exercised by notebook A's tests)


def noise(path, seed, size=(6, 6)):
    path = Path(path); path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path)


def build_imagenet(root, train_per_class=0):
    "ImageNet as torchvision reads it after its first use: meta.bin, val/<wnid>/ (one image each), train/<wnid>/ if asked."
    c = load_card("imagenet")["classes"]
    base = root / "imagenet"; base.mkdir(parents=True, exist_ok=True)
    torch.save(({w: (n,) for w, n in zip(c["ids"], c["names"])}, list(c["ids"])), base / "meta.bin")
    for k, w in enumerate(c["ids"]):
        noise(base / f"val/{w}/ILSVRC2012_val_{k + 1:08d}.JPEG", k)
        for j in range(train_per_class): noise(base / f"train/{w}/{w}_{j}.JPEG", 10_000 + 7 * k + j)


def build_folder_set(root, name, per_class=1, seed=0):
    "A class-folder set (ImageNetV2, -R, -A, -Sketch) with `per_class` images in each of its card's id folders."
    card = load_card(name)
    d = root / card["loader"]["images"]
    for k, w in enumerate(card["classes"]["ids"]):
        for j in range(per_class): noise(d / str(w) / f"{j}.jpg", seed + 13 * k + j)
    return card


ON_FOLDERS = [f"class_{i:03d}" for i in range(313)]
ON_MAP = {"class_000": [409, 530], "class_001": [703], "class_005": [1, 2, 3], "class_100": [999]}   # folder -> ImageNet indices


def build_objectnet(root):
    "313 class folders (2 images each, a 1-pixel border) and the release's four mapping files for the folders of ON_MAP."
    base = root / "objectnet/objectnet-1.0"
    for k, f in enumerate(ON_FOLDERS):
        for j in range(2 if f in ON_MAP else 1): noise(base / f"images/{f}/{j}.png", 50_000 + 3 * k + j, size=(8, 8))
    labels = [f"imagenet label {i + 1}" for i in range(1000)]              # line i names ILSVRC2012_ID i + 1
    pt = {str(k): (k * 7) % 1000 + 1 for k in range(1000)}                # a 1-based copy (the release itself is 0-based, as in notebook 16)
    m = base / "mappings"; m.mkdir(parents=True)
    (m / "imagenet_to_label_2012_v2").write_text("\n".join(labels) + "\n")
    (m / "pytorch_to_imagenet_2012_id.json").write_text(json.dumps(pt))
    (m / "folder_to_objectnet_label.json").write_text(json.dumps({f: f"Object {f}" for f in ON_FOLDERS}))
    (m / "objectnet_to_imagenet_1k.json").write_text(json.dumps(
        {f"Object {f}": "; ".join(labels[pt[str(i)] - 1] for i in ins) for f, ins in ON_MAP.items()}))


def vid_map():
    "ImageNet-Vid class WordNet id -> ImageNet WordNet ids, as the release's misc/rev_wnid_map.json (classes j: ImageNet 30j..30j+2)."
    ids = load_card("imagenet")["classes"]["ids"]
    return {w: ids[30 * j:30 * j + 3] for j, w in enumerate(load_card("imagenet_vid")["classes"]["ids"])}


YTBB_MAP = {str(i): [500 + 7 * i, 501 + 7 * i] for i, n in enumerate(YTBB_INDEX) if n != "none"}   # Taori et al.'s rev_class_idx_map.json


def write_video_maps(root):
    (root / VID / "misc/rev_wnid_map.json").write_text(json.dumps(vid_map()))
    (root / YTBB / "misc/rev_class_idx_map.json").write_text(json.dumps(YTBB_MAP))


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    build_imagenet(root, train_per_class=2)
    for i, n in enumerate(["imagenetv2", "imagenet_r", "imagenet_a", "imagenet_sketch"]):
        build_folder_set(root, n, per_class=2 if n in ("imagenet_r", "imagenet_a") else 1, seed=100_000 * (i + 1))
    build_objectnet(root); build_vid(root); build_ytbb(root); write_video_maps(root)
    return root


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("run")


class PooledLinear(torch.nn.Module):
    "An image tower whose output follows the image: a random 8x8-stride convolution, 2x2 average pooling, a random linear map."
    def __init__(self, dim):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 8, 8, stride=8); self.head = torch.nn.Linear(32, dim)
    def forward(self, x): return self.head(F.adaptive_avg_pool2d(self.conv1(x), 2).flatten(1))


@pytest.fixture(scope="module")
def lin_clip(clip):
    """The random checkpoint with its image tower swapped for `PooledLinear`: a random CLIP maps every image to nearly the
    same embedding (one predicted class for all), which would let a wrong restriction or pooling go unnoticed."""
    import copy
    model, preprocess = clip
    m = copy.deepcopy(model)
    torch.manual_seed(1); m.visual = PooledLinear(m.config.embed_dim)
    return m.eval(), preprocess


@pytest.fixture(scope="module")
def suite(lin_clip, data_root, run_dir):
    model, preprocess = lin_clip
    return RB.robustness_suite(model, preprocess, data_root, run_dir, templates=TEMPLATES, probe_lambda=LAM, backend="sklearn",
                               batch_size=256, show_progress=False)


# ---------------------------------------------------------------- hand computations


def text_weights(model, names):
    "Zero-shot weights (D, C) by hand: each prompt embedded, normalised, averaged over templates, renormalised."
    prompts = [t.format(n) for n in names for t in TEMPLATES]
    with torch.no_grad():
        e = torch.cat([model.encode_text(tokenize(prompts[i:i + 500], context_length=model.context_length)).float()
                       for i in range(0, len(prompts), 500)])
    e = F.normalize(e, dim=-1).reshape(len(names), len(TEMPLATES), -1)
    return F.normalize(e.mean(1), dim=-1).T


def embed_paths(model, preprocess, paths, crop=0):
    with torch.no_grad():
        ims = [Image.open(p).convert("RGB") for p in paths]
        if crop: ims = [im.crop((crop, crop, im.width - crop, im.height - crop)) for im in ims]
        return F.normalize(model.encode_image(torch.stack([preprocess(im) for im in ims])).float(), dim=-1)


@pytest.fixture(scope="module")
def W_imagenet(lin_clip):
    "ImageNet's 1,000 columns by hand; the duplicated names ('missile', 'sunglasses') simply get equal columns."
    return text_weights(lin_clip[0], load_card("imagenet")["zeroshot"]["classnames"])


def score(suite, clf, col):
    row = suite[(suite.classifier == clf) & (suite.column == col)].iloc[0]
    assert row.status == "ok", row.status
    return row.score, row.n_test


# ---------------------------------------------------------------- the suite


def test_every_cell_is_reported(suite):
    assert len(suite) == 2 * 10 and list(suite.columns) == RB.ROBUSTNESS_COLUMNS
    assert (suite.status == "ok").all(), suite[suite.status != "ok"]       # the adapted probe too, on the video sets via the class maps


def test_video_class_maps(data_root, tmp_path):
    "Both map formats give, per card class, the ImageNet indices; without a map the adapted probe's video cells are missing, by name."
    in_card = load_card("imagenet")
    vid = RB.video_imagenet_groups(load_card("imagenet_vid"), data_root, in_card)
    assert vid == [[30 * j, 30 * j + 1, 30 * j + 2] for j in range(30)]
    yt_card = load_card("youtube_bb"); yt = RB.video_imagenet_groups(yt_card, data_root, in_card)
    assert len(yt) == len(yt_card["classes"]["names"]) == 23
    assert all(yt[yt_card["classes"]["names"].index(n)] == YTBB_MAP[str(i)] for i, n in enumerate(YTBB_INDEX) if n != "none")
    root = tmp_path / "d"; build_vid(root)
    with pytest.raises(FileNotFoundError, match="rev_wnid_map.json"): RB.video_imagenet_groups(load_card("imagenet_vid"), root, in_card)
    m = vid_map(); m.pop(next(iter(m)))                                   # a class with no ImageNet class
    (root / VID / "misc/rev_wnid_map.json").write_text(json.dumps(m))
    with pytest.raises(Exception, match="map to no ImageNet class"): RB.video_imagenet_groups(load_card("imagenet_vid"), root, in_card)


def test_subset_sets_restrict_the_logits(suite, lin_clip, data_root, W_imagenet):
    "ImageNet-R/-A: arg-max over the 200 subset columns only, labels from the folder's WordNet id (by hand)."
    model, preprocess = lin_clip
    in_ids = load_card("imagenet")["classes"]["ids"]
    for name, col in (("imagenet_r", "inr_top1"), ("imagenet_a", "ina_top1")):
        card = load_card(name); d = data_root / card["loader"]["images"]
        paths = sorted(d.glob("*/*.jpg"))
        sub = [in_ids.index(w) for w in card["classes"]["ids"]]                      # by WordNet id, not by the card's indices
        y = np.array([card["classes"]["ids"].index(p.parent.name) for p in paths])
        pred = (embed_paths(model, preprocess, paths) @ W_imagenet[:, sub]).argmax(1).numpy()
        got, n = score(suite, "Zero-Shot CLIP", col)
        assert n == len(paths) == 400 and got == pytest.approx(100 * (pred == y).mean(), abs=1e-9)
        full = (embed_paths(model, preprocess, paths) @ W_imagenet).argmax(1).numpy()
        assert not np.array_equal(full, np.array(sub)[pred])       # restricting matters here: some top classes lie outside the subset


def test_full_class_sets_and_imagenet(suite, lin_clip, data_root, W_imagenet):
    model, preprocess = lin_clip
    in_ids = load_card("imagenet")["classes"]["ids"]
    sets = [("imagenet", data_root / "imagenet/val", "*/*.JPEG", lambda f: in_ids.index(f), "in_top1"),
            ("imagenetv2", data_root / load_card("imagenetv2")["loader"]["images"], "*/*.jpg", int, "inv2_top1"),
            ("imagenet_sketch", data_root / load_card("imagenet_sketch")["loader"]["images"], "*/*.jpg", lambda f: in_ids.index(f), "insketch_top1")]
    for name, d, pattern, label, col in sets:
        paths = sorted(d.glob(pattern))
        y = np.array([label(p.parent.name) for p in paths])
        pred = (embed_paths(model, preprocess, paths) @ W_imagenet).argmax(1).numpy()
        got, n = score(suite, "Zero-Shot CLIP", col)
        assert n == 1000 and got == pytest.approx(100 * (pred == y).mean(), abs=1e-9), name


def test_objectnet_pools_mapped_classes_by_max(suite, lin_clip, data_root, W_imagenet):
    "Only the mapped folders are scored; each class's score is the max over its ImageNet classes; the border is cropped."
    model, preprocess = lin_clip
    kept = sorted(ON_MAP)
    paths = [p for f in kept for p in sorted((data_root / f"objectnet/objectnet-1.0/images/{f}").glob("*.png"))]
    y = np.array([kept.index(p.parent.name) for p in paths])
    logits = embed_paths(model, preprocess, paths, crop=1) @ W_imagenet
    pooled = torch.stack([logits[:, ON_MAP[f]].max(1).values for f in kept], 1)
    got, n = score(suite, "Zero-Shot CLIP", "objectnet_top1")
    assert n == len(paths) == 8 and got == pytest.approx(100 * (pooled.argmax(1).numpy() == y).mean(), abs=1e-9)


@pytest.mark.parametrize("name,base,root_dir", [("imagenet_vid", VID, "."), ("youtube_bb", YTBB, "ytbb_videos")])
def test_video_sets_pm_k_equal_the_release_loop(suite, lin_clip, data_root, name, base, root_dir):
    "PM-0 / PM-10 with the set's own class names, by the release's scoring loop over frame keys."
    model, preprocess = lin_clip
    card = load_card(name); d = data_root / base
    pmsets = json.loads((d / "metadata/pmsets.json").read_text()); labels = json.loads((d / "metadata/labels.json").read_text())
    index = json.loads((d / card["loader"]["class_index"]).read_text())
    names = card["classes"]["names"]
    def to_card(v):                                       # release class number -> the card's class index (None: "none")
        e = index[str(v)]; e = e[1].replace("_", " ") if isinstance(e, list) else e
        return names.index(e) if e in names else None
    labels = {k: [to_card(v) for v in vs] for k, vs in labels.items()}
    labels.update({k: labels[a] for a, near in pmsets.items() for k in near if k not in labels})   # YTBB: frames take the anchor's labels
    keys = sorted({k for a, near in pmsets.items() for k in [a, *near]})
    logits = (embed_paths(model, preprocess, [d / root_dir / k for k in keys]) @ text_weights(model, names)).numpy()
    pm0, pmk = release_scores(dict(zip(keys, logits)), pmsets, labels)
    cols = RB.ROBUSTNESS_DATASETS[name]
    assert score(suite, "Zero-Shot CLIP", cols[0]) == (pytest.approx(100 * pm0, abs=1e-9), len(pmsets))
    assert score(suite, "Zero-Shot CLIP", cols[1])[0] == pytest.approx(100 * pmk, abs=1e-9)


def test_adapted_probe_equals_sklearn(suite, lin_clip, data_root, run_dir):
    "Linear Probe CLIP: scikit-learn's logistic regression (C = 1/(2nλ)) on ImageNet-train pre-projection features, on each set."
    model, preprocess = lin_clip
    Xtr, ytr = hand_features(model.image_features, preprocess, load("imagenet", "train", root=data_root))
    clf = _sklearn_fit(Xtr, ytr, LAM)
    for name, col in (("imagenet", "in_top1"), ("imagenet_r", "inr_top1")):
        ds = load(name, "test", root=data_root)
        X, y = hand_features(model.image_features, preprocess, ds)
        z = X.astype(np.float64) @ clf.coef_.T + clf.intercept_                          # (N, 1000)
        if name == "imagenet_r": z = z[:, load_card(name)["imagenet_indices"]]
        got, n = score(suite, "Linear Probe CLIP", col)
        assert n == len(y) and abs(got - 100 * (z.argmax(1) == y).mean()) <= 100 / len(y) + 1e-9   # at most one prediction apart (solver tolerance)


@pytest.mark.parametrize("name,base,root_dir", [("imagenet_vid", VID, "."), ("youtube_bb", YTBB, "ytbb_videos")])
def test_adapted_probe_on_video_sets_pools_by_max(suite, lin_clip, data_root, name, base, root_dir):
    "Linear Probe CLIP on the video sets: the probe's 1,000 scores max-pooled into the set's classes by the map, then the release's PM loop."
    model, preprocess = lin_clip
    clf = _sklearn_fit(*hand_features(model.image_features, preprocess, load("imagenet", "train", root=data_root)), LAM)
    ds = load(name, "test", root=data_root)
    X, Y = hand_features(model.image_features, preprocess, ds)
    z = torch.from_numpy(X.astype(np.float64) @ clf.coef_.T + clf.intercept_)
    groups = RB.video_imagenet_groups(load_card(name), data_root, load_card("imagenet"))
    pooled = torch.stack([z[:, g].max(1).values for g in groups], 1).numpy()
    labels = [np.flatnonzero(y).tolist() for y in Y]
    keys = list(range(len(ds)))
    pmsets = {str(a): [str(i) for i in near] for a, near in ds.pm_sets.items()}
    pm0, pmk = release_scores({str(k): pooled[k] for k in keys}, pmsets, {str(k): labels[k] for k in keys})
    cols = RB.ROBUSTNESS_DATASETS[name]
    got0, n = score(suite, "Linear Probe CLIP", cols[0]); gotk, _ = score(suite, "Linear Probe CLIP", cols[1])
    assert n == len(ds.pm_sets)
    assert abs(got0 - 100 * pm0) <= 100 / n + 1e-9 and abs(gotk - 100 * pmk) <= 100 / n + 1e-9   # solver tolerance: at most one anchor apart


def test_rerun_reads_the_cache_and_missing_data_is_named(suite, lin_clip, data_root, run_dir, tmp_path, monkeypatch):
    model, preprocess = lin_clip
    import clip_repro.suite as S
    monkeypatch.setattr(S, "_features", lambda *a, **k: (_ for _ in ()).throw(AssertionError("recomputed")))
    again = RB.robustness_suite(model, preprocess, data_root, run_dir, templates=TEMPLATES, probe_lambda=LAM, backend="sklearn",
                                show_progress=False)
    assert again.fillna(-1).to_dict("records") == suite.fillna(-1).to_dict("records")
    monkeypatch.undo()
    empty = tmp_path / "empty"; empty.mkdir()
    none = RB.robustness_suite(model, preprocess, empty, tmp_path / "run", templates=TEMPLATES, datasets=["imagenet_r", "objectnet"],
                               show_progress=False)
    assert none.score.isna().all() and none.status.str.startswith("missing: ").all()
    assert "imagenet_r/imagenet-r" in none.status[0]                                  # the registry's reason names the expected folder
    t = RB.beside_table16(suite)
    assert t.loc[("run", "Zero-Shot CLIP"), "inr_top1"] == score(suite, "Zero-Shot CLIP", "inr_top1")[0]
    assert t.loc[("run", "Linear Probe CLIP"), "invid_pm0"] == score(suite, "Linear Probe CLIP", "invid_pm0")[0]


# ---------------------------------------------------------------- the few-shot continuum and the testbed on the real sets


@pytest.fixture(scope="module")
def continuum(lin_clip, data_root, run_dir, suite):
    model, preprocess = lin_clip
    return RB.robustness_continuum(model, preprocess, data_root, run_dir, shots=(1, 2), probe_lambda=LAM, backend="sklearn",
                                   templates=TEMPLATES, show_progress=False)


def test_continuum_agrees_with_the_suite(continuum, suite):
    "Zero-shot's ImageNet accuracy and the fully supervised probe's scores are the suite's (same features, same λ); avg_shift is the mean."
    assert list(continuum.model) == ["zero-shot", "1-shot", "2-shot", "fully supervised"] and continuum.attrs["missing"] == {}
    full = continuum.set_index("model").loc["fully supervised"]
    assert 100 * continuum.set_index("model").loc["zero-shot", "id"] == pytest.approx(score(suite, "Zero-Shot CLIP", "in_top1")[0])
    for col in ["inr_top1", "objectnet_top1", "invid_pm0", "ytbb_pm10"]:
        assert 100 * full[col] == pytest.approx(score(suite, "Linear Probe CLIP", col)[0]), col
    assert 100 * full["id"] == pytest.approx(score(suite, "Linear Probe CLIP", "in_top1")[0])
    for _, r in continuum.iterrows(): assert r.avg_shift == pytest.approx(np.mean([r[c] for c in RB.TABLE16_SHIFTS]))


def test_continuum_resumes_and_needs_imagenet_train(continuum, lin_clip, data_root, run_dir, tmp_path, monkeypatch):
    import clip_repro.probe as P
    model, preprocess = lin_clip
    monkeypatch.setattr(P, "fit_logreg", lambda *a, **k: (_ for _ in ()).throw(AssertionError("refitted")))
    again = RB.robustness_continuum(model, preprocess, data_root, run_dir, shots=(1, 2), probe_lambda=LAM, backend="sklearn",
                                    templates=TEMPLATES, show_progress=False)
    assert again.fillna(-1).to_dict("records") == continuum.fillna(-1).to_dict("records")
    monkeypatch.undo()
    with pytest.raises(ValueError, match="impossible"):
        RB.robustness_continuum(model, preprocess, data_root, run_dir, shots=(3,), probe_lambda=LAM, templates=TEMPLATES, show_progress=False)
    root = tmp_path / "d"; build_folder_set(root, "imagenet_r")
    with pytest.raises(FileNotFoundError, match="needs ImageNet's train split"):
        RB.robustness_continuum(model, preprocess, root, tmp_path / "run", shots=(1,), templates=TEMPLATES, show_progress=False)


class TinyClassifier(torch.nn.Module):
    "A random ImageNet 'classifier' for the testbed: 4x4 average pooling and a linear map to 1,000 scores."
    def __init__(self, seed):
        super().__init__(); torch.manual_seed(seed); self.head = torch.nn.Linear(48, 1000)
    def forward(self, x): return self.head(F.adaptive_avg_pool2d(x, 4).flatten(1))


def test_testbed_scores_by_hand(lin_clip, data_root, run_dir):
    "Each testbed model is scored like the suite (by hand here for ImageNet, ImageNet-R and ImageNet-Vid); no model loads without ImageNet val."
    _, preprocess = lin_clip
    nets = {f"tiny{i}": TinyClassifier(i).eval() for i in range(3)}
    tb = RB.imagenet_testbed(list(nets), data_root, run_dir, loader=lambda n: (nets[n], preprocess, f"tiny:{n}"), show_progress=False)
    assert list(tb.model) == list(nets) and tb.attrs["missing"] == {}
    in_ids = load_card("imagenet")["classes"]["ids"]
    for n, net in nets.items():
        row = tb.set_index("model").loc[n]
        X, y = hand_features(net, preprocess, load("imagenet", "test", root=data_root))
        assert row["id"] == pytest.approx((X.argmax(1) == y).mean())
        X, y = hand_features(net, preprocess, load("imagenet_r", "test", root=data_root))
        sub = [in_ids.index(w) for w in load_card("imagenet_r")["classes"]["ids"]]
        assert row["inr_top1"] == pytest.approx((X[:, sub].argmax(1) == y).mean())
        ds = load("imagenet_vid", "test", root=data_root); X, Y = hand_features(net, preprocess, ds)
        pooled = np.stack([X[:, [30 * j, 30 * j + 1, 30 * j + 2]].max(1) for j in range(30)], 1)
        assert row["invid_pm0"] == pytest.approx(np.mean([Y[a, pooled[a].argmax()] > 0 for a in ds.pm_sets]))
        assert row["avg_shift"] == pytest.approx(np.mean([row[c] for c in RB.TABLE16_SHIFTS]))
    with pytest.raises(FileNotFoundError, match="testbed is fitted on ImageNet val"):
        RB.imagenet_testbed(["resnet18"], run_dir / "nowhere", run_dir, loader=lambda n: pytest.fail("loaded a model"), show_progress=False)


def test_torchvision_classifier_resolves_released_weights_without_downloading(monkeypatch):
    "Weights come from torchvision's enums (here the loader of the state dict is replaced, so nothing is downloaded)."
    import torchvision.models as tvm
    from torchvision.models._api import WeightsEnum
    random_sd = tvm.get_model("resnet18").state_dict()
    monkeypatch.setattr(WeightsEnum, "get_state_dict", lambda self, *a, **k: random_sd)
    net, tf, key = RB.torchvision_classifier("resnet18")
    assert key == "torchvision:resnet18:ResNet18_Weights.IMAGENET1K_V1" and not net.training
    assert tuple(tf(Image.new("RGB", (300, 260))).shape) == (3, 224, 224)
    assert RB.torchvision_classifier("resnet18", "ResNet18_Weights.IMAGENET1K_V1")[2] == key
    with pytest.raises(ValueError, match="unknown torchvision model"): RB.torchvision_classifier("resnet_nonexistent")
    with pytest.raises(ValueError, match="has no member"): RB.torchvision_classifier("resnet18", "IMAGENET9K")


# ---------------------------------------------------------------- notebook D at paper scale


def test_notebook_D_paper_branch_runs_with_papermill(tmp_path, checkpoint, monkeypatch):
    """Notebook D at scale 'paper' on miniature ImageNet-R, ImageNet-A, ObjectNet and ImageNet-Vid (the others absent) and the
    random local checkpoint: it finishes, names every missing set with its reason, and replaces the toy claims. The cards
    are a copy whose ImageNet card keeps two of the 80 templates, so the 1,000-class text side stays fast on a CPU."""
    root = tmp_path / "data"
    build_folder_set(root, "imagenet_r"); build_folder_set(root, "imagenet_a", seed=7); build_objectnet(root); build_vid(root)
    cards = tmp_path / "cards"; shutil.copytree(ROOT / "data_cards", cards)
    c = yaml.safe_load((cards / "imagenet.yaml").read_text()); c["zeroshot"]["templates"] = c["zeroshot"]["templates"][:2]
    (cards / "imagenet.yaml").write_text(yaml.safe_dump(c, sort_keys=False))
    monkeypatch.setenv("CLIP_REPRO_CARDS", str(cards))                                 # the kernel inherits the environment
    run, text = run_paper_notebook("23_D_robustness", tmp_path, checkpoint, root, html=True)
    line = next(l for l in text.splitlines() if "Table 16 cells measured; missing:" in l)
    assert "5 of 20 Table 16 cells measured" in line                                    # zero-shot: R, A, ObjectNet, Vid PM-0 and PM-10
    listed = line.split("missing: ", 1)[1].split(", ")
    assert sorted(listed) == sorted([f"{d} (Zero-Shot CLIP)" for d in ("imagenet", "imagenetv2", "imagenet_sketch", "youtube_bb")]
                                    + [f"{d} (Linear Probe CLIP)" for d in RB.ROBUSTNESS_DATASETS])
    assert "the adapted probe needs ImageNet&#x27;s train split" in text or "the adapted probe needs ImageNet's train split" in text
    claims = json.loads((run / "claims/23_D_robustness.json").read_text())
    claims = claims["claims"] if isinstance(claims, dict) else claims
    assert {c["scale"] for c in claims} == {"paper"} and len(claims) == 7
    assert all(not c["held"] and c["measured"].startswith("not measured at paper scale") for c in claims if c["section"] == "D")
    table = (run / "tables/table16.csv").read_text()
    assert "run: " in table and "paper (ViT-L/14@336px)" in table
