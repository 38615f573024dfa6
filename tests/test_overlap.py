"""Appendix C overlap library against its peers: open_clip's ClipLoss, torchvision's resnet50, scipy.ndimage, faiss vs
NumPy brute force, scipy.stats binomtest / beta (Clopper–Pearson) and hand-computed cases; plus bad input."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import ndimage, stats

from clip_repro.overlap import (AugmentConfig, BlurPool2d, DETECTOR_CONFIGS, DetectorConfig, DuplicateDetector,
                                INTERPOLATIONS, MANIPULATIONS, NearDuplicateAugment, bonferroni, build_index,
                                choose_threshold, detection_scores, embed_images, inspection_sample, images_to_tensor, info_nce_loss,
                                nearest_neighbors, overlap_analysis, overlap_split, overlap_table, proxy_accuracy,
                                random_images, search, train_detector, hard_negative_batch, hard_negative_clusters, koleo_loss)
import clip_repro.overlap as overlap_mod

torch.set_num_threads(1)


# --- 1. augmentation -------------------------------------------------------------------------------------------------
def test_augment_is_deterministic_per_generator_and_varies_across_seeds():
    img = random_images(1, 48, seed=3)[0]
    aug = NearDuplicateAugment(40)
    a, ra = aug.sample(img, torch.Generator().manual_seed(11))
    b, rb = aug.sample(img, torch.Generator().manual_seed(11))
    assert np.array_equal(np.asarray(a), np.asarray(b)) and ra == rb
    assert a.size == (40, 40) and a.mode == "RGB"
    outs = {np.asarray(aug(img, torch.Generator().manual_seed(s))).tobytes() for s in range(10)}
    assert len(outs) == 10


def test_augment_draws_every_manipulation_and_filter():
    img = random_images(1, 32, seed=0)[0]
    aug, g = NearDuplicateAugment(32), torch.Generator().manual_seed(0)
    recs = [aug.sample(img, g)[1] for _ in range(300)]
    assert {s["op"] for r in recs for s in r} == set(MANIPULATIONS) | {"resize"}
    resampled = [s["interpolation"] for r in recs for s in r if s["op"] in ("crop_zoom", "aspect", "resize")]
    assert set(resampled) == {m.value for m in INTERPOLATIONS}
    # the final resize is drawn independently of the first resampling step of the chain
    pairs = {(r[0]["interpolation"], r[-1]["interpolation"]) for r in recs if r[0]["op"] == "crop_zoom"}
    assert len(pairs) > 6


def test_augment_with_nothing_applied_is_a_resize():
    img = random_images(1, 32, seed=0)[0]
    aug = NearDuplicateAugment(32, AugmentConfig(p=0.0))
    out, rec = aug.sample(img, torch.Generator().manual_seed(0))
    assert [s["op"] for s in rec] == ["resize"] and np.array_equal(np.asarray(out), img)  # same size: identity


def test_augment_bad_input():
    aug = NearDuplicateAugment(32)
    with pytest.raises(ValueError, match="uint8 \\(H, W, 3\\)"): aug(np.zeros((8, 8), np.uint8), torch.Generator())
    with pytest.raises(TypeError, match="PIL image"): aug([1, 2, 3], torch.Generator())
    with pytest.raises(ValueError, match=">= 8"): NearDuplicateAugment(4)


# --- 2. detector -----------------------------------------------------------------------------------------------------
def test_blurpool_equals_scipy_binomial_filter_then_subsample():
    x = torch.randn(2, 3, 11, 13, dtype=torch.float64)
    ours = BlurPool2d(3, filt_size=3, stride=2).double()(x)
    k = np.outer([1, 2, 1], [1, 2, 1]) / 16.0
    ref = np.stack([np.stack([ndimage.correlate(x[b, c].numpy(), k, mode="mirror")[::2, ::2] for c in range(3)])
                    for b in range(2)])
    np.testing.assert_allclose(ours.numpy(), ref, atol=1e-12)
    f4 = BlurPool2d(1, filt_size=4).filt[0, 0]
    np.testing.assert_allclose(f4.numpy(), np.outer([1, 3, 3, 1], [1, 3, 3, 1]) / 64.0)


def test_rn50_detector_has_resnet50_conv_shapes():
    from torchvision.models import resnet50
    ours = sorted(tuple(m.weight.shape) for m in DuplicateDetector("RN50").modules() if isinstance(m, torch.nn.Conv2d))
    ref = sorted(tuple(m.weight.shape) for m in resnet50().modules() if isinstance(m, torch.nn.Conv2d))
    assert ours == ref
    det = DuplicateDetector("RN50")
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in det.modules())
    assert all(hasattr(m, "parametrizations") for m in det.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)))
    assert sum(isinstance(m, BlurPool2d) for m in det.modules()) == 1 + 3 * 2  # stem + (main, shortcut) per strided stage


def test_small_blur_stem_halves_once_with_a_blur_pool_and_keeps_the_design():
    kw = dict(layers=(1, 1, 1, 1), width=8, embed_dim=16, resolution=32)
    plain, blur = DuplicateDetector(DetectorConfig(stem="small", **kw)), DuplicateDetector(DetectorConfig(stem="small_blur", **kw))
    x = torch.randn(3, 3, 32, 32)
    assert plain.stem(x).shape == (3, 8, 32, 32) and blur.stem(x).shape == (3, 8, 16, 16)
    assert isinstance(blur.stem[-1], BlurPool2d) and blur.stem[-1].stride == 2
    assert sum(isinstance(m, BlurPool2d) for m in blur.modules()) == sum(isinstance(m, BlurPool2d) for m in plain.modules()) + 1
    assert sum(p.numel() for p in blur.parameters()) == sum(p.numel() for p in plain.parameters())  # same weights, less compute
    with torch.no_grad(): torch.testing.assert_close(blur(x).norm(dim=-1), torch.ones(3))


@pytest.mark.parametrize("stem", ["imagenet", "small_blur", "small"])
def test_channels_last_layout_gives_the_nchw_numbers_and_gradients(stem):
    "The detector runs in NHWC (a training step 1.3x faster on 2 CPU cores); the same weights run in PyTorch's default NCHW agree."
    import copy
    torch.manual_seed(0)
    m = DuplicateDetector(DetectorConfig(layers=(1, 1, 1, 1), width=8, embed_dim=16, resolution=64, stem=stem))
    ref = copy.deepcopy(m).to(memory_format=torch.contiguous_format)
    v = m.stem[0].parametrizations.weight.original1
    assert v.is_contiguous(memory_format=torch.channels_last) and not v.is_contiguous()
    assert ref.stem[0].parametrizations.weight.original1.is_contiguous()
    x = torch.randn(4, 3, 64, 64)
    a = m(x)
    h = ref.blocks(ref.stem(x.contiguous()))
    assert h.is_contiguous()  # the reference really ran in NCHW
    b = F.normalize(ref.proj(h.mean(dim=(2, 3))), dim=-1)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    r = torch.randn(a.shape); (a * r).sum().backward(); (b * r).sum().backward()
    for (n, p), (_, q) in zip(m.named_parameters(), ref.named_parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-5, msg=lambda e: f"{n}: {e}")
    fresh = DuplicateDetector(m.config); fresh.load_state_dict(ref.state_dict())  # weights move across layouts
    with torch.no_grad(): torch.testing.assert_close(fresh(x), a.detach(), rtol=1e-5, atol=1e-5)


def test_detector_bad_config():
    with pytest.raises(KeyError, match="unknown detector config"): DuplicateDetector("RN101")
    with pytest.raises(ValueError, match="stem"): DetectorConfig(stem="cifar")
    with pytest.raises(ValueError, match="4 positive"): DetectorConfig(layers=(1, 1, 1))


def test_info_nce_equals_open_clip_cliploss_at_fixed_temperature():
    from open_clip.loss import ClipLoss
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(16, 32, generator=g), torch.randn(16, 32, generator=g)
    ref = ClipLoss()(F.normalize(a, dim=-1), F.normalize(b, dim=-1), torch.tensor(1 / 0.07))
    torch.testing.assert_close(info_nce_loss(a, b, 0.07), ref)
    ref2 = ClipLoss()(F.normalize(a, dim=-1), F.normalize(b, dim=-1), torch.tensor(1 / 0.5))
    torch.testing.assert_close(info_nce_loss(a, b, 0.5), ref2)
    assert proxy_accuracy(a, a) == 1.0


@pytest.fixture(scope="module")
def trained():
    "A tiny detector trained briefly on synthetic images, with held-out augmented copies (fresh seeds)."
    imgs = random_images(96, 32, seed=7)
    torch.manual_seed(0)
    det = DuplicateDetector(DetectorConfig(layers=(1, 1, 1, 1), width=8, embed_dim=32, resolution=16, stem="small"))
    g = torch.Generator().manual_seed(12345)
    copies = [NearDuplicateAugment(32)(im, g) for im in imgs]
    before = (embed_images(det, imgs), embed_images(det, copies))
    hist = train_detector(det, imgs, steps=40, batch_size=32, lr=2e-3, warmup=4, seed=1, show_progress=False)
    after = (embed_images(det, imgs), embed_images(det, copies))
    return dict(imgs=imgs, det=det, hist=hist, before=before, after=after)


def test_training_decreases_the_loss(trained):
    loss = [h["loss"] for h in trained["hist"]]
    assert np.mean(loss[-8:]) < 0.75 * np.mean(loss[:4])
    held = lambda e: info_nce_loss(torch.from_numpy(e[0]), torch.from_numpy(e[1])).item()
    assert held(trained["after"]) < held(trained["before"])  # also on copies never seen in training


def test_trained_detector_finds_the_augmented_copy(trained):
    corpus, queries = trained["after"]
    _, ids = nearest_neighbors(queries, corpus, k=1)
    top1 = (ids[:, 0] == np.arange(len(corpus))).mean()
    assert top1 >= 0.4, top1  # chance is 1/96
    # a copy is more similar to its own original than to the other images on average
    sims = queries @ corpus.T
    own, others = np.diag(sims), sims[~np.eye(len(sims), dtype=bool)]
    assert own.mean() > others.mean() + 0.2


def test_training_is_reproducible():
    imgs = random_images(16, 32, seed=1)
    cfg = DetectorConfig(layers=(1, 1, 1, 1), width=4, embed_dim=8, resolution=16, stem="small")
    runs = []
    for _ in range(2):
        torch.manual_seed(0); det = DuplicateDetector(cfg)
        runs.append([h["loss"] for h in train_detector(det, imgs, steps=3, batch_size=8, seed=5, show_progress=False)])
    assert runs[0] == runs[1]


def test_training_and_embedding_bad_input():
    det = DuplicateDetector(DetectorConfig(layers=(1, 1, 1, 1), width=4, embed_dim=8, resolution=16, stem="small"))
    with pytest.raises(ValueError, match="uint8 images"): train_detector(det, np.zeros((4, 16, 16, 3), np.float32), 1)
    with pytest.raises(ValueError, match="at least 2"): train_detector(det, np.zeros((1, 16, 16, 3), np.uint8), 1)
    with pytest.raises(ValueError, match="at least one image"): embed_images(det, [])
    with pytest.raises(ValueError, match="uint8 images"): images_to_tensor(np.zeros((2, 8, 8), np.uint8), 8)
    # one shared check (`_check_uint8_images`) behind every entry point: the channel count and the empty batch too
    with pytest.raises(ValueError, match=r"uint8 images \(N, H, W, 3\), got ndarray uint8 \(4, 16, 16, 1\)"): train_detector(det, np.zeros((4, 16, 16, 1), np.uint8), 1)
    with pytest.raises(ValueError, match="at least one image"): images_to_tensor(np.zeros((0, 8, 8, 3), np.uint8), 8)
    with pytest.raises(ValueError, match="at least one image"): hard_negative_clusters(np.zeros((0, 8, 8, 3), np.uint8), 1)


# --- 2b. hard-negative batches ---------------------------------------------------------------------------------------
def _backdrops(n_per=30, colours=((20, 40, 200), (200, 30, 30), (30, 180, 40), (230, 230, 230)), size=16, seed=0):
    "Images on a few backdrop colours with a random small object each; returns (images, backdrop id)."
    rng = np.random.default_rng(seed)
    imgs, ids = [], []
    for k, c in enumerate(colours):
        for _ in range(n_per):
            im = np.empty((size, size, 3), np.uint8); im[:] = c
            y, x = rng.integers(0, size - 4, 2); im[y:y + 4, x:x + 4] = rng.integers(0, 256, 3)
            imgs.append(np.clip(im.astype(np.int16) + rng.integers(-6, 7, (size, size, 1)), 0, 255).astype(np.uint8)); ids.append(k)
    return np.stack(imgs), np.array(ids)


def test_hard_negative_clusters_follow_the_backdrop():
    from sklearn.metrics import adjusted_rand_score
    imgs, ids = _backdrops()
    lab = hard_negative_clusters(imgs, 4, descriptor_size=4, seed=0)
    assert lab.shape == (len(imgs),) and adjusted_rand_score(ids, lab) == 1.0
    assert np.array_equal(lab, hard_negative_clusters(imgs, 4, descriptor_size=4, seed=0))  # seeded
    assert (hard_negative_clusters(imgs, 1) == 0).all()


def test_hard_negative_batches_are_drawn_within_one_cluster():
    lab = np.repeat(np.arange(10), [5, 5, 10, 10, 20, 20, 30, 30, 40, 30])  # 200 images, uneven clusters
    g = torch.Generator().manual_seed(3)
    seen = []
    for _ in range(300):
        b = hard_negative_batch(lab, 16, 0.5, g).numpy()
        assert len(b) == 16 and len(set(b)) == 16 and b.min() >= 0 and b.max() < 200
        c = lab[b[0]]
        k = min(8, int((lab == c).sum()))
        assert (lab[b[:k]] == c).all()  # the hard share: one cluster (all of it when the cluster is smaller than 8)
        seen.append(c)
    # a random image picks the cluster, so clusters come up in proportion to their size (30 of 200 images: 15 %)
    freq = np.bincount(seen, minlength=10) / len(seen)
    assert abs(freq[6] - 0.15) < 0.07 and freq[0] < 0.07
    # share 1: the whole batch from the cluster when it is large enough
    b = hard_negative_batch(lab, 16, 1.0, torch.Generator().manual_seed(0)).numpy()
    if (lab == lab[b[0]]).sum() >= 16: assert len(set(lab[b])) == 1
    # share 0 (or a share that rounds below 2 images) is the plain random batch
    assert hard_negative_batch(lab, 16, 0.0, torch.Generator().manual_seed(1)).tolist() == torch.randperm(200, generator=torch.Generator().manual_seed(1))[:16].tolist()


def test_train_detector_uses_hard_negative_batches(monkeypatch):
    imgs, ids = _backdrops(n_per=24)
    drawn = []
    orig = overlap_mod.hard_negative_batch
    monkeypatch.setattr(overlap_mod, "hard_negative_batch", lambda *a, **k: drawn.append(orig(*a, **k)) or drawn[-1])
    cfg = DetectorConfig(layers=(1, 1, 1, 1), width=4, embed_dim=8, resolution=16, stem="small")
    torch.manual_seed(0); det = DuplicateDetector(cfg)
    h1 = train_detector(det, imgs, steps=6, batch_size=16, seed=2, show_progress=False, hard_negatives=0.75, n_clusters=4, descriptor_size=4)
    assert len(drawn) == 6
    for b in drawn: assert len(set(ids[b[:12].numpy()])) == 1  # 12 of 16 share the backdrop: in-batch negatives look alike
    torch.manual_seed(0); det = DuplicateDetector(cfg)
    h2 = train_detector(det, imgs, steps=6, batch_size=16, seed=2, show_progress=False, hard_negatives=0.75, n_clusters=4, descriptor_size=4)
    assert [h["loss"] for h in h1] == [h["loss"] for h in h2]  # reproducible from the seed
    drawn.clear(); torch.manual_seed(0); det = DuplicateDetector(cfg)
    train_detector(det, imgs, steps=2, batch_size=16, seed=2, show_progress=False)
    assert drawn == []  # hard_negatives = 0: the plain random batch, as before


def test_hard_negative_bad_input():
    imgs, _ = _backdrops(n_per=5)
    det = DuplicateDetector(DetectorConfig(layers=(1, 1, 1, 1), width=4, embed_dim=8, resolution=16, stem="small"))
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="hard_negatives is a share of the batch"): train_detector(det, imgs, 1, batch_size=8, hard_negatives=bad)
    for bad in (0, 21):
        with pytest.raises(ValueError, match="n_clusters must be between 1"): train_detector(det, imgs, 1, batch_size=8, hard_negatives=0.5, n_clusters=bad)
    with pytest.raises(ValueError, match="descriptor_size"): hard_negative_clusters(imgs, 2, descriptor_size=0)
    with pytest.raises(ValueError, match="uint8 images"): hard_negative_clusters(imgs.astype(np.float32), 2)
    with pytest.raises(ValueError, match="share must be in"): hard_negative_batch(np.zeros(20, int), 8, 1.2, torch.Generator())
    with pytest.raises(ValueError, match="batch_size must be between 2"): hard_negative_batch(np.zeros(20, int), 30, 0.5, torch.Generator())
    with pytest.raises(ValueError, match="1-D"): hard_negative_batch(np.zeros((4, 5), int), 2, 0.5, torch.Generator())


# --- 2c. the KoLeo spreading term ------------------------------------------------------------------------------------
def test_koleo_equals_scipy_kdtree_nearest_other_image():
    from scipy.spatial import cKDTree
    g = torch.Generator().manual_seed(4)
    for B, D in ((2, 3), (7, 16), (33, 8)):
        a, b = (F.normalize(torch.randn(B, D, generator=g, dtype=torch.float64), dim=-1) for _ in range(2))
        b[0] = a[0]  # an exact copy: its zero distance is excluded (it is the same image)
        z = torch.cat([a, b]).numpy(); own = np.arange(2 * B) % B
        dist, idx = cKDTree(z).query(z, k=3)  # itself, its copy, then the nearest other image (at worst)
        nearest = np.array([next(d for d, j in zip(dist[i], idx[i]) if own[j] != own[i]) for i in range(2 * B)])
        assert float(koleo_loss(a, b, eps=0)) == pytest.approx(-np.log(nearest).mean(), rel=1e-5)


def test_koleo_gradient_spreads_and_stays_finite_on_coincident_images():
    a = F.normalize(torch.randn(6, 8), dim=-1); b = a.clone()
    a2 = a.clone(); a2[1] = a2[0]  # two *different* images at the same point: distance 0, the term is log(eps), no NaN
    x = a2.clone().requires_grad_(True)
    koleo_loss(x, b).backward()
    assert torch.isfinite(x.grad).all()
    # a gradient step on the term moves bunched embeddings apart
    z = F.normalize(torch.randn(1, 8) + 0.1 * torch.randn(8, 8), dim=-1).requires_grad_(True)
    before = koleo_loss(z, z.detach()).item()
    koleo_loss(z, z.detach()).backward()
    with torch.no_grad(): z2 = F.normalize(z - 0.05 * z.grad, dim=-1)
    assert koleo_loss(z2, z2).item() < before


def test_train_detector_with_koleo_records_it_and_keeps_the_plain_path():
    imgs = random_images(16, 32, seed=1)
    cfg = DetectorConfig(layers=(1, 1, 1, 1), width=4, embed_dim=8, resolution=16, stem="small")
    def run(**kw):
        torch.manual_seed(0); det = DuplicateDetector(cfg)
        return train_detector(det, imgs, steps=3, batch_size=8, seed=5, show_progress=False, **kw)
    plain, zero, spread = run(), run(koleo=0.0), run(koleo=1.0)
    assert plain == zero and all("koleo" not in h for h in plain)  # koleo = 0 is the paper's loss, step for step
    assert all(math.isfinite(h["koleo"]) for h in spread)
    assert spread[0]["loss"] == plain[0]["loss"] and spread[1]["loss"] != plain[1]["loss"]  # same start, then the term acts
    det = DuplicateDetector(cfg)
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="koleo is the weight"): train_detector(det, imgs, 1, batch_size=8, koleo=bad)
    with pytest.raises(ValueError, match="same shape"): koleo_loss(torch.zeros(3, 4), torch.zeros(3, 5))
    with pytest.raises(ValueError, match="at least 2 pairs"): koleo_loss(torch.ones(1, 4), torch.ones(1, 4))


# --- 3. search -------------------------------------------------------------------------------------------------------
def _unit(n, d, seed):
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_flat_search_equals_numpy_brute_force():
    corpus, q = _unit(500, 16, 0), _unit(60, 16, 1)
    D, I = search(build_index(corpus, kind="flat"), q, k=5, batch_size=7)
    full = q @ corpus.T
    ref_I = np.argsort(-full, axis=1)[:, :5]
    np.testing.assert_array_equal(I, ref_I)
    np.testing.assert_allclose(D, np.take_along_axis(full, ref_I, 1), atol=1e-5)


def test_ivf_with_all_cells_probed_equals_exact_search():
    corpus, q = _unit(3000, 24, 2), _unit(200, 24, 3)
    exact_D, exact_I = search(build_index(corpus, kind="flat"), q, k=3)
    ivf = build_index(corpus, kind="ivf", nlist=32)
    D, I = search(ivf, q, k=3, nprobe=32)
    np.testing.assert_array_equal(I, exact_I)
    np.testing.assert_allclose(D, exact_D, atol=1e-5)
    D1, I1 = search(ivf, q, k=3, nprobe=1)  # one cell: approximate, never better than exact
    assert (D1[:, 0] <= exact_D[:, 0] + 1e-6).all()
    import faiss
    assert faiss.extract_index_ivf(ivf).nprobe == 16  # a per-call nprobe does not change the index's default


def test_auto_index_switches_to_ivf_for_large_corpora():
    import faiss
    corpus = _unit(2000, 8, 4)
    assert isinstance(build_index(corpus, exact_max=10_000), faiss.IndexFlatIP)
    assert faiss.try_extract_index_ivf(build_index(corpus, exact_max=1000)) is not None


def test_search_bad_input():
    idx = build_index(_unit(10, 8, 0))
    with pytest.raises(ValueError, match="empty"): build_index(np.zeros((0, 8), np.float32))
    with pytest.raises(ValueError, match="dimension 4 but the index holds dimension 8"): search(idx, _unit(3, 4, 1))
    with pytest.raises(ValueError, match="2-D"): search(idx, np.ones(8))
    with pytest.raises(ValueError, match="NaN"): search(idx, np.full((1, 8), np.nan))
    with pytest.raises(ValueError, match="k must be between 1 and the corpus size 10"): search(idx, _unit(2, 8, 1), k=11)
    with pytest.raises(ValueError, match="empty"): search(idx, np.zeros((0, 8), np.float32))
    with pytest.raises(ValueError, match="nprobe must be between"):
        search(build_index(_unit(200, 8, 0), kind="ivf", nlist=4), _unit(2, 8, 1), nprobe=5)


def test_multi_view_search_equals_pil_views_and_numpy_brute_force():
    """Multi-crop and multi-scale querying against their peers: every view cropped (or downscaled and scaled back up) and
    resized by PIL one image at a time, embedded by a fixed random projection, and the best inner product over views and
    corpus found by NumPy."""
    from PIL import Image
    from clip_repro.overlap import crop_boxes, multi_view_search
    imgs = random_images(9, 24, seed=5)
    proj = np.random.default_rng(6).standard_normal((24 * 24 * 3, 32)).astype(np.float32)
    embed = lambda a: (lambda z: z / np.linalg.norm(z, axis=1, keepdims=True))(np.asarray(a, np.float32).reshape(len(a), -1) @ proj)
    corpus = embed(random_images(300, 24, seed=7))
    sides, grid, scales = (0.7, 0.9), 2, (0.5, 0.75)
    S, I, V = multi_view_search(build_index(corpus), embed, imgs, sides, grid, scales, chunk_size=4)
    views = [[im] + [np.asarray(Image.fromarray(im).crop((l, t, l + w, t + h)).resize((24, 24), Image.BILINEAR))
                     for t, l, h, w in crop_boxes(24, 24, sides, grid)]
             + [np.asarray(Image.fromarray(im).resize((round(24 * f),) * 2, Image.BILINEAR).resize((24, 24), Image.BILINEAR)) for f in scales]
             for im in imgs]
    sims = np.stack([embed(np.stack(v)) @ corpus.T for v in views])  # (N, views, corpus)
    best = sims.max(2)
    np.testing.assert_allclose(S, best.max(1), atol=1e-3)             # PIL and torchvision bilinear may differ by a level
    np.testing.assert_array_equal(V, best.argmax(1))                  # the same winning view
    np.testing.assert_array_equal(I, sims[np.arange(len(imgs)), V].argmax(1))
    S0, I0, V0 = multi_view_search(build_index(corpus), embed, imgs, sides=(), scales=())
    np.testing.assert_array_equal(I0, (embed(imgs) @ corpus.T).argmax(1)); assert (V0 == 0).all()



def test_two_nearest_views_equals_numpy_brute_force_and_search_views():
    from clip_repro.overlap import search_views, two_nearest_views
    corpus = _unit(400, 16, 8)
    views = _unit(30 * 5, 16, 9).reshape(30, 5, 16)
    corpus[7] = corpus[8] = views[3, 4]                      # example 3: two corpus copies of one view, so s2 = s1 = 1
    corpus[20] = views[4, 1]; corpus[21] = views[4, 3]       # example 4: its two nearest items are found by different views
    T, J = two_nearest_views(build_index(corpus), views)
    best = (views @ corpus.T).max(1)                         # (N, corpus): best over the views
    np.testing.assert_allclose(T, -np.sort(-best, 1)[:, :2], atol=1e-5)
    S1, J1, _ = search_views(build_index(corpus), views)
    np.testing.assert_allclose(T[:, 0], S1, atol=1e-6)
    np.testing.assert_array_equal(np.delete(J, 3), np.delete(J1, 3))  # example 3's two nearest are equal: faiss may return either
    assert J[3] in (7, 8) and T[3, 1] == pytest.approx(1.0, abs=1e-5) and T[4] == pytest.approx([1.0, 1.0], abs=1e-5)
    Ti, Ji = two_nearest_views(build_index(corpus, kind="ivf", nlist=8, nprobe=8), views)  # every cell probed: exact
    np.testing.assert_allclose(Ti, T, atol=1e-5)


def test_two_nearest_views_without_a_second_result_gives_minus_one(monkeypatch):
    from clip_repro.overlap import two_nearest_views
    idx = build_index(_unit(10, 8, 0))
    def one_result(index, q, k=1, **kw):  # an IVF search whose probed cells hold a single item marks the rest with id -1
        return np.tile([[0.8, -3.4e38]], (len(q), 1)).astype(np.float32), np.tile([[5, -1]], (len(q), 1))
    monkeypatch.setattr(overlap_mod, "search", one_result)
    T, J = two_nearest_views(idx, _unit(6, 8, 1).reshape(3, 2, 8))
    np.testing.assert_array_equal(J, [5, 5, 5]); np.testing.assert_allclose(T, [[0.8, -1.0]] * 3, atol=1e-6)


def _average_precision_by_hand(y, s):
    "Mean over duplicates of the precision among the examples ranked at or above it (no ties in `s`)."
    order = np.argsort(-s); y = np.asarray(y, bool)[order]
    return float(np.mean([y[:k + 1].mean() for k in np.flatnonzero(y)]))


def test_gap_score_and_choose_gap_beta_against_hand_computed_average_precision():
    from clip_repro.overlap import choose_gap_beta, choose_gap_threshold, gap_score
    rng = np.random.default_rng(4)
    betas = [0.0, 0.25, 0.5, 0.75, 1.0]
    for trial in range(30):
        y = rng.random(60) < 0.2; y[:2] = True
        s2 = rng.uniform(0.3, 0.6, 60)                                       # s1 stays below 1: no ties
        s1 = s2 + np.where(y, rng.uniform(0.05, 0.4, 60), rng.uniform(0.0, 0.3, 60))
        T = np.stack([s1, s2], 1)
        ap = [_average_precision_by_hand(y, gap_score(T, b)) for b in betas]
        b = choose_gap_beta(T, y, betas)
        assert ap[betas.index(b)] == pytest.approx(max(ap), abs=1e-12)
        assert all(a < max(ap) - 1e-12 for a in ap[:betas.index(b)])       # no earlier β is as good
        bb, thr = choose_gap_threshold(T, y, betas, min_precision=0.9)
        assert bb == b and thr == choose_threshold(gap_score(T, b), y, 0.9)
        np.testing.assert_allclose(gap_score(T, b), (s1 - b * s2) / (1 + b))
    T = np.array([[0.9, 0.2], [0.8, 0.1], [0.3, 0.2]])
    assert choose_gap_beta(T, [1, 1, 0]) == 0.0                             # every β ranks perfectly: the paper's score
    assert choose_gap_beta(T, [0, 0, 0], [0.5, 1.0]) == 0.5                 # nothing to rank: the first candidate
    assert choose_gap_threshold(T, [0, 0, 0]) == (0.0, math.inf)


def test_second_neighbour_bad_input():
    from clip_repro.overlap import choose_gap_beta, gap_score, join_embeddings, two_nearest_views
    idx, T = build_index(_unit(10, 8, 0)), np.array([[0.9, 0.5], [0.4, 0.3]])
    with pytest.raises(ValueError, match=r"\(N, V, D\)"): two_nearest_views(idx, _unit(3, 8, 1))
    with pytest.raises(ValueError, match="dimension 4 but the index holds dimension 8"): two_nearest_views(idx, _unit(6, 4, 1).reshape(3, 2, 4))
    with pytest.raises(ValueError, match="at least 2 items"): two_nearest_views(build_index(_unit(1, 8, 0)), _unit(2, 8, 1)[None])
    with pytest.raises(ValueError, match=r"\(n, 2\)"): gap_score(T[:, 0])
    with pytest.raises(ValueError, match=r"beta must be a weight in \[0, 1\]"): gap_score(T, -0.1)
    with pytest.raises(ValueError, match="cosine similarities"): gap_score(T * 3)
    with pytest.raises(ValueError, match="non-empty list of weights"): choose_gap_beta(T, [1, 0], [0.0, 2.0])
    with pytest.raises(ValueError, match="one per example"): choose_gap_beta(T, [1, 0, 0])
    with pytest.raises(ValueError, match="at least one detector"): join_embeddings([])
    with pytest.raises(ValueError, match="the same items"): join_embeddings([_unit(4, 8, 0), _unit(3, 8, 0)])


def test_join_embeddings_scores_pairs_by_the_members_mean_cosine():
    from clip_repro.overlap import join_embeddings
    a, b, c = _unit(20, 8, 1), _unit(20, 16, 2), _unit(20, 4, 3)
    J = join_embeddings([a, b, c])
    np.testing.assert_allclose(J @ J.T, (a @ a.T + b @ b.T + c @ c.T) / 3, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(J, axis=1), 1, atol=1e-6)
    V = join_embeddings([a.reshape(5, 4, 8), b.reshape(5, 4, 16)])         # views (N, V, D) join on the last axis
    assert V.shape == (5, 4, 24)

# --- 4. procedure and statistics -------------------------------------------------------------------------------------
def test_choose_threshold_equals_brute_force_search():
    rng = np.random.default_rng(0)
    for trial in range(20):
        s = rng.uniform(-1, 1, 50).round(2)
        y = rng.random(50) < (s + 1) / 2
        for target in (0.6, 0.8, 0.95):
            t = choose_threshold(s, y, target)
            ok = [c for c in np.unique(s) if y[s >= c].mean() >= target]
            assert t == (min(ok) if ok else math.inf)


def test_inspection_sample_is_uniform_and_a_threshold_set_on_it_generalises():
    # every example is equally likely to be inspected (counts over many seeds are flat within binomial noise)
    hits = sum(inspection_sample(20, 0.25, seed=k).astype(int) for k in range(4000))
    assert abs(hits.mean() - 1000) < 1e-9 and hits.min() > 900 and hits.max() < 1100
    assert (inspection_sample(20, 0.25, seed=1) != inspection_sample(20, 0.25, seed=2)).any()
    with pytest.raises(ValueError, match="between 1 and n"): inspection_sample(5, 6)
    with pytest.raises(ValueError, match="n must be"): inspection_sample(0)
    # separable scores: a threshold chosen on a random half for precision 1 keeps it on the other half and finds >= 90 %
    rng = np.random.default_rng(0)
    y = rng.random(400) < 0.1
    s = np.where(y, rng.uniform(0.9, 1.0, 400), rng.uniform(0.0, 0.85, 400))
    m = inspection_sample(400, 0.5, seed=3)
    t = choose_threshold(s[m], y[m], min_precision=1.0)
    assert 0.85 < t < 1.0
    d = detection_scores(overlap_split(s[~m], t), y[~m])
    assert d["precision"] == 1.0 and d["recall"] >= 0.9


def test_overlap_analysis_matches_scipy_binomtest_and_clopper_pearson():
    rng = np.random.default_rng(1)
    for trial in range(25):
        n = int(rng.integers(20, 400))
        s = rng.uniform(0, 1, n); correct = rng.random(n) < rng.uniform(0.2, 0.9)
        thr = float(rng.uniform(0.5, 0.98))
        r = overlap_analysis(correct, s, thr, f"d{trial}")
        ov = s >= thr
        k, m = int(correct[ov].sum()), int(ov.sum())
        acc_c = correct[~ov].mean()
        assert (r.n_overlap, r.n_clean, r.n_all) == (m, n - m, n)
        assert r.contamination == pytest.approx(m / n)
        assert r.all_minus_clean == pytest.approx(correct.mean() - acc_c)
        if m == 0: continue
        assert r.p_value == pytest.approx(stats.binomtest(k, m, p=acc_c, alternative="greater").pvalue, rel=1e-12)
        assert r.p_value == pytest.approx(stats.binom.sf(k - 1, m, acc_c), rel=1e-9, abs=1e-15)  # P(X >= k) by hand
        ci = stats.binomtest(k, m).proportion_ci(confidence_level=0.995, method="exact")
        assert (r.ci_low, r.ci_high) == pytest.approx((ci.low, ci.high))
        a = 0.005  # Clopper–Pearson from the beta distribution
        lo = 0.0 if k == 0 else stats.beta.ppf(a / 2, k, m - k + 1)
        hi = 1.0 if k == m else stats.beta.ppf(1 - a / 2, k + 1, m - k)
        assert (r.ci_low, r.ci_high) == pytest.approx((lo, hi), abs=1e-9)


def test_overlap_analysis_hand_computed():
    # 4 overlapping examples (3 right), 6 clean (3 right): P(X >= 3 | n=4, p=0.5) = 5/16
    r = overlap_analysis([1, 1, 1, 0, 1, 1, 1, 0, 0, 0], [.99, .95, .9, .85, .5, .4, .3, .2, .1, 0], 0.8)
    assert (r.acc_all, r.acc_overlap, r.acc_clean, r.contamination) == pytest.approx((0.6, 0.75, 0.5, 0.4))
    assert r.all_minus_clean == pytest.approx(0.1) and r.p_value == pytest.approx(5 / 16)
    # 2 of 2 overlap right, clean accuracy 0.5: p = 0.25; CI for 2/2 at 99.5%: [(0.0025)^(1/2), 1]
    r = overlap_analysis([1, 1, 1, 0], [0.9, 0.9, 0.1, 0.1], 0.5)
    assert r.p_value == pytest.approx(0.25)
    assert (r.ci_low, r.ci_high) == pytest.approx((0.0025 ** 0.5, 1.0))
    # threshold equal to a similarity: that example overlaps (>=)
    assert overlap_split([0.5, 0.4999], 0.5).tolist() == [True, False]


def test_all_overlap_or_no_overlap_edge_cases():
    r = overlap_analysis([1, 0, 1], [0.9, 0.95, 0.99], 0.5)  # everything overlaps: no Clean, no test
    assert r.n_clean == 0 and math.isnan(r.acc_clean) and math.isnan(r.p_value) and not math.isnan(r.ci_low)
    r = overlap_analysis([1, 0, 1], [0.1, 0.2, 0.3], 0.5)
    assert r.n_overlap == 0 and r.all_minus_clean == 0 and math.isnan(r.ci_low)


def test_bonferroni_and_table():
    np.testing.assert_allclose(bonferroni([0.001, 0.02, 0.5, np.nan]), [0.003, 0.06, 1.0, np.nan])
    rs = [overlap_analysis(*a) for a in [([1, 1, 1, 1, 0, 0, 0, 0], [.9, .9, .9, .9, .1, .1, .1, .1], 0.5, "a"),
                                         ([1, 0, 1, 0], [.1, .2, .3, .4], 0.5, "b"),
                                         ([1, 0, 1, 0, 1, 1], [.9, .9, .1, .1, .1, .1], 0.5, "c")]]
    t = overlap_table(rs)
    assert t.dataset.tolist() == ["a", "b", "c"]
    np.testing.assert_allclose(t.p_bonferroni, [min(1, 2 * rs[0].p_value), np.nan, min(1, 2 * rs[2].p_value)])
    assert rs[0].p_value == pytest.approx(0.0)
    np.testing.assert_allclose(t.diff_ci_low, t.ci_low - t.acc_clean)
    assert bool(t.ci_excludes_zero[0]) and not bool(t.ci_excludes_zero[2])


def test_procedure_bad_input():
    with pytest.raises(ValueError, match="empty"): overlap_analysis([], [], 0.5)
    with pytest.raises(ValueError, match="one per example"): overlap_analysis([1, 0], [0.1, 0.2, 0.3], 0.5)
    with pytest.raises(ValueError, match=r"\[-1, 1\]"): overlap_analysis([1, 0], [0.1, 0.2], 1.01)
    with pytest.raises(ValueError, match=r"\[-1, 1\]"): overlap_split([0.1], float("nan"))
    with pytest.raises(ValueError, match="cosine similarities"): overlap_split([3.0], 0.5)
    with pytest.raises(ValueError, match="booleans"): overlap_analysis([2, 0], [0.1, 0.2], 0.5)
    with pytest.raises(ValueError, match="confidence"): overlap_analysis([1, 0], [0.1, 0.2], 0.5, confidence=1.5)
    with pytest.raises(ValueError, match="min_precision"): choose_threshold([0.1], [1], 0)
    with pytest.raises(ValueError, match="no results"): overlap_table([])
    with pytest.raises(ValueError, match=r"\[0, 1\]"): bonferroni([-0.1])


def test_detection_scores_against_sklearn_and_hand():
    from sklearn.metrics import precision_score, recall_score
    rng = np.random.default_rng(2)
    f, t = rng.random(100) < 0.3, rng.random(100) < 0.3
    d = detection_scores(f, t)
    assert d["precision"] == pytest.approx(precision_score(t, f)) and d["recall"] == pytest.approx(recall_score(t, f))
    d = detection_scores([1, 1, 1, 0], [1, 1, 0, 0])
    assert (d["precision"], d["recall"]) == pytest.approx((2 / 3, 1.0))
    with pytest.raises(ValueError, match="one per example"): detection_scores([1], [1, 0])
    with pytest.raises(ValueError, match="empty"): detection_scores([], [])
