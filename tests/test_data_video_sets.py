"""The readers for the three video sets on miniature releases laid out like the real ones:

* ImageNet-Vid-Robust and YouTube-BB-Robust (Shankar et al. 2019, `imagenet_vid_ytbb_robust.tar.gz`): frames, `pmsets.json`
  (anchor -> neighbouring frames), `labels.json` (frame -> class numbers) and a class index. PM-0 / PM-k computed from
  `pmk_inputs` + `clip_repro.robustness.pm_k` are checked against a transcription of the release's own scoring loop.
* RareAct (Miech et al. 2020): `rareact.csv` and videos named by YouTube id, decoded per segment with PyAV. The rows each
  class is scored on (`rareact_targets`) are checked against a transcription of the selection in RareAct's `compute_score.py`.
"""
import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from clip_repro.data import (CardError, CorruptImageError, DatasetNotFoundError, load, load_card, pmk_inputs,
                             rareact_targets, verify)
from clip_repro.robustness import pm_k
from clip_repro.video import write_video

ROOT = Path(__file__).resolve().parents[1]
CARDS = ROOT / "data_cards"
VID = "imagenet_vid_ytbb_robust/imagenet-vid-robust"
YTBB = "imagenet_vid_ytbb_robust/ytbb-robust"


def card(name):
    return load_card(name, CARDS)


def frame(path, colour):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (6, 4), colour).save(path)


def write_json(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1))


# ---------------------------------------------------------------- ImageNet-Vid-Robust
# (video number, frame numbers, anchor frame, labels as release class numbers)
VIDEOS = [(0, range(432, 453), 442, [26]),                 # a turtle, anchor with +-10 neighbours (as in the release)
          (3001, [207, 208, 211, 213, 214, 215, 216, 217, 218, 219, 220, 221, 223, 224, 225, 226], 217, [8]),   # gaps: frames judged dissimilar
          (4000, range(77, 98), 87, [9, 17])]                # a domestic cat and a monkey in view


def vid_key(v, f):
    return f"val/ILSVRC2015_val_{v:08d}/{f:06d}.JPEG"


def build_vid(root, class_index=None):
    base = root / VID
    pmsets, labels = {}, {}
    for n, (v, frames, anchor, lab) in enumerate(VIDEOS):
        pmsets[vid_key(v, anchor)] = [vid_key(v, f) for f in frames if f != anchor]
        for f in frames:
            frame(base / vid_key(v, f), (n * 80, f % 256, 0)); labels[vid_key(v, f)] = lab
    c = card("imagenet_vid")["classes"]
    write_json(base / "metadata/pmsets.json", pmsets)
    write_json(base / "metadata/labels.json", labels)
    write_json(base / "misc/imagenet_vid_class_index.json",
               class_index or {str(i): [w, n.replace(" ", "_")] for i, (w, n) in enumerate(zip(c["ids"], c["names"]))})
    return base


def release_scores(preds, pmsets, labels):
    "PM-0 and PM-k as the release's evaluation script computes them, over frame keys (transcribed)."
    correct_anchor = correct_pmk = 0
    for anchor, pmset in pmsets.items():
        ok = sum(int(np.argmax(preds[e]) in labels[e]) for e in pmset)
        if np.argmax(preds[anchor]) in labels[anchor]:
            correct_anchor += 1; ok += 1
        correct_pmk += ok == len(pmset) + 1
    return correct_anchor / len(pmsets), correct_pmk / len(pmsets)


def test_vid_frames_sets_and_labels(tmp_path):
    build_vid(tmp_path)
    ds = load("imagenet_vid", "test", root=tmp_path, cards_dir=CARDS)
    assert len(ds) == 21 + 16 + 21
    assert sorted(ds.pm_sets) == [0, 21, 37] and ds.pm_sets[0] == list(range(1, 21)) and len(ds.pm_sets[21]) == 15
    assert ds.frame_keys[21] == vid_key(3001, 217)
    assert Path(ds.items[0][0]) == tmp_path / VID / vid_key(0, 442)            # each set starts with its anchor
    im, y = ds[37]
    assert im.size == (6, 4) and y.shape == (30,) and y.dtype == torch.float32
    assert [ds.classes[j] for j in y.nonzero().flatten().tolist()] == ["domestic cat", "monkey"]
    assert ds.classes[int(ds[21][1].argmax())] == "dog" and ds.classes[int(ds[0][1].argmax())] == "turtle"
    anchors = load("imagenet_vid", "anchors", root=tmp_path, cards_dir=CARDS)
    assert len(anchors) == 3 and anchors.pm_sets == {0: [], 1: [], 2: []}
    assert [Path(p).name for p, _ in anchors.items] == ["000442.JPEG", "000217.JPEG", "000087.JPEG"]


def test_vid_pm_k_matches_the_release_scoring(tmp_path):
    "Peer check: pm_k(**pmk_inputs(ds)) equals the release's own PM-0 / PM-10 loop on random predictions."
    base = build_vid(tmp_path)
    ds = load("imagenet_vid", "test", root=tmp_path, cards_dir=CARDS)
    pmsets = json.loads((base / "metadata/pmsets.json").read_text())
    labels = json.loads((base / "metadata/labels.json").read_text())
    gen = torch.Generator().manual_seed(0)
    for trial in range(20):
        truth = torch.stack([y for _, y in ds.items])                     # (N, 30) multi-hot
        scores = torch.rand(len(ds), 30, generator=gen) + (trial % 5) * 0.3 * truth   # right more often as trial % 5 grows
        got = pm_k(scores, **pmk_inputs(ds))
        by_key = {k: scores[i].numpy() for i, k in enumerate(ds.frame_keys)}
        assert (got["pm0"], got["pmk"]) == pytest.approx(release_scores(by_key, pmsets, labels))
    assert pm_k(truth, **pmk_inputs(ds)) == {"pm0": 1.0, "pmk": 1.0}


def test_vid_class_index_is_followed_not_assumed(tmp_path):
    "A release whose class numbers are in another order still gives targets in the card's order (matched by WordNet id)."
    c = card("imagenet_vid")["classes"]
    order = list(range(30)); random.Random(1).shuffle(order)
    build_vid(tmp_path, class_index={str(k): [c["ids"][i], c["names"][i]] for k, i in enumerate(order)})
    labels_path = tmp_path / VID / "metadata/labels.json"
    labels = json.loads(labels_path.read_text())
    write_json(labels_path, {k: [order.index(v) for v in vs] for k, vs in labels.items()})   # renumbered to match
    ds = load("imagenet_vid", "test", root=tmp_path, cards_dir=CARDS)
    assert [ds.classes[j] for j in ds[37][1].nonzero().flatten().tolist()] == ["domestic cat", "monkey"]
    assert ds.classes[int(ds[0][1].argmax())] == "turtle"


def test_vid_bad_inputs_are_named(tmp_path):
    base = build_vid(tmp_path)
    (tmp_path / "x").mkdir()
    with pytest.raises(DatasetNotFoundError, match=rf"folder missing: expected {tmp_path / 'x' / VID}"):
        load("imagenet_vid", "test", root=tmp_path / "x", cards_dir=CARDS)
    (base / vid_key(3001, 224)).unlink()                                     # a neighbour frame lost
    with pytest.raises(DatasetNotFoundError, match=r"1 of 58 files listed in \S*pmsets\.json are missing .*ILSVRC2015_val_00003001/000224\.JPEG"):
        load("imagenet_vid", "test", root=tmp_path, cards_dir=CARDS)
    assert len(load("imagenet_vid", "anchors", root=tmp_path, cards_dir=CARDS)) == 3     # the anchors alone are complete
    frame(base / vid_key(3001, 224), (0, 0, 0))
    labels = json.loads((base / "metadata/labels.json").read_text())
    write_json(base / "metadata/labels.json", {k: v for k, v in labels.items() if k != vid_key(4000, 90)})
    with pytest.raises(CardError, match=r"no label for frame 'val/ILSVRC2015_val_00004000/000090\.JPEG'"):
        load("imagenet_vid", "test", root=tmp_path, cards_dir=CARDS)
    write_json(base / "metadata/labels.json", {**labels, vid_key(0, 433): [30]})
    with pytest.raises(CardError, match=r"class numbers \[30\] outside 0\.\.29"):
        load("imagenet_vid", "test", root=tmp_path, cards_dir=CARDS)
    write_json(base / "metadata/labels.json", labels)
    (base / "metadata/pmsets.json").write_text('{"val/ILSVRC2015_val_00000000/000442.JPEG": [')
    with pytest.raises(CardError, match=r"pmsets\.json is not valid JSON"):
        load("imagenet_vid", "test", root=tmp_path, cards_dir=CARDS)
    (base / "misc/imagenet_vid_class_index.json").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"missing \S*misc/imagenet_vid_class_index\.json.*loader_options"):
        load("imagenet_vid", "anchors", root=tmp_path, cards_dir=CARDS)


def test_vid_check_size_and_loader_options(tmp_path):
    build_vid(tmp_path)
    with pytest.raises(DatasetNotFoundError, match="has 3 items .* published split has 1109"):
        load("imagenet_vid", "anchors", root=tmp_path, cards_dir=CARDS, check_size=True)
    with pytest.raises(ValueError, match=r"loader_options \['pm_sets'\] are not options"):
        load("imagenet_vid", "test", root=tmp_path, cards_dir=CARDS, loader_options={"pm_sets": "x.json"})
    with pytest.raises(ValueError, match=r"splits \['test', 'anchors'\]"):
        load("imagenet_vid", "val", root=tmp_path, cards_dir=CARDS)
    # class_index None: the labels are taken to be in the card's order already (the release's order is the card's)
    ds = load("imagenet_vid", "test", root=tmp_path, cards_dir=CARDS, loader_options={"class_index": None})
    assert ds.classes[int(ds[0][1].argmax())] == "turtle"
    with pytest.raises(TypeError, match="has no pm-sets"):
        pmk_inputs(load("rareact", "test", root=build_rareact(tmp_path), cards_dir=CARDS))


# ---------------------------------------------------------------- YouTube-BB-Robust
YTBB_INDEX = ["person", "bird", "bicycle", "boat", "bus", "bear", "cow", "cat", "giraffe", "potted plant", "horse", "motorcycle",
              "knife", "airplane", "skateboard", "train", "truck", "zebra", "toilet", "dog", "elephant", "umbrella", "none", "car"]


def build_ytbb(root, anchor_label=(23,)):
    "Frames under ytbb_videos/<YouTube id>_<ms>/frame-<i>.jpg; keys relative to ytbb_videos; only anchors are labelled."
    base = root / YTBB
    pmsets, labels = {}, {}
    for n, (vid, ms, lab) in enumerate((("AAB6lO-XiKE", 233000, [0]), ("-0dGEzfmWPw", 17000, list(anchor_label)))):
        anchor = f"{vid}_{ms}/frame-10.jpg"
        pmsets[anchor] = [f"{vid}_{ms}/frame-{i}.jpg" for i in (8, 9, 11, 13)]
        labels[anchor] = lab
        for k in [anchor] + pmsets[anchor]: frame(base / "ytbb_videos" / k, (n * 90, 0, 0))
    write_json(base / "metadata/pmsets.json", pmsets)
    write_json(base / "metadata/labels.json", labels)
    write_json(base / "misc/ytbb_class_index.json", {str(i): n for i, n in enumerate(YTBB_INDEX)})
    return base


def test_ytbb_frames_inherit_anchor_labels_and_none_is_not_a_class(tmp_path):
    build_ytbb(tmp_path)
    ds = load("youtube_bb", "test", root=tmp_path, cards_dir=CARDS)
    assert len(ds) == 10 and ds.pm_sets == {0: [1, 2, 3, 4], 5: [6, 7, 8, 9]}
    assert str(ds.items[6][0]).endswith("ytbb-robust/ytbb_videos/-0dGEzfmWPw_17000/frame-8.jpg")
    assert ds.classes.index("car") == 22 and "none" not in ds.classes
    assert [int(ds[i][1].argmax()) for i in range(10)] == [0] * 5 + [22] * 5       # neighbours scored against the anchor's labels
    assert pm_k([0, 0, 0, 0, 0, 22, 22, 22, 7, 22], **pmk_inputs(ds)) == {"pm0": 1.0, "pmk": 0.5}
    # the same release with metadata elsewhere: file names are loader options
    (tmp_path / YTBB / "metadata/pmsets.json").rename(tmp_path / YTBB / "pmsets.json")
    with pytest.raises(DatasetNotFoundError, match=r"missing \S*ytbb-robust/metadata/pmsets\.json"):
        load("youtube_bb", "test", root=tmp_path, cards_dir=CARDS)
    assert len(load("youtube_bb", "test", root=tmp_path, cards_dir=CARDS, loader_options={"pmsets": "pmsets.json"})) == 10


def test_ytbb_bad_labels_and_frames(tmp_path):
    build_ytbb(tmp_path, anchor_label=(22,))                                 # an anchor labelled only "none"
    with pytest.raises(CardError, match=r"frame '-0dGEzfmWPw_17000/frame-10\.jpg' has no class of the card"):
        load("youtube_bb", "test", root=tmp_path, cards_dir=CARDS)
    build_ytbb(tmp_path)
    write_json(tmp_path / YTBB / "misc/ytbb_class_index.json", {str(i): n for i, n in enumerate(YTBB_INDEX[:-1] + ["lorry"])})
    with pytest.raises(CardError, match=r"source classes \['lorry'\] are not classes of the card"):
        load("youtube_bb", "test", root=tmp_path, cards_dir=CARDS)
    build_ytbb(tmp_path)
    with pytest.raises(DatasetNotFoundError, match=r"first anchor frame 'AAB6lO-XiKE_233000/frame-10\.jpg' .* is not under"):
        load("youtube_bb", "test", root=tmp_path, cards_dir=CARDS, loader_options={"key_roots": ["."]})


# ---------------------------------------------------------------- RareAct
FPS, SECONDS = 8, 4


def clip(seed, n=FPS * SECONDS):
    "Frame i has red = 5 * i (the frame number can be read back) and green = `seed`."
    return np.stack([np.full((8, 8, 3), (5 * i, seed, 0), np.uint8) for i in range(n)])


ROWS = [  # id, video_id, start, end, class_id, verb, noun, annotation
    (0, "7frRY7aGwMU", 1, 2, 0, "shake", "tomato", 0), (1, "-VOpTWzqM5A", 0, 4, 1, "cut", "towel", 1),
    (2, "7frRY7aGwMU", 2, 4, 2, "cut", "tomato", 1), (3, "QaMW4kKYbNM", 0, 1, 0, "shake", "tomato", 1),
    (4, "QaMW4kKYbNM", 1, 3, 1, "cut", "towel", 3), (5, "-VOpTWzqM5A", 0, 4, 3, "shake", "towel", 2),
    (6, "7frRY7aGwMU", 3, 4, 2, "cut", "tomato", 0), (7, "QaMW4kKYbNM", 3, 4, 3, "shake", "towel", 4)]


def build_rareact(root, rows=ROWS):
    vdir = root / "rareact/videos"
    write_video(vdir / "7frRY7aGwMU.mkv", clip(1), fps=FPS)                 # lossless FFV1
    write_video(vdir / "-VOpTWzqM5A.mp4", clip(2), fps=FPS, lossless=False)   # MPEG-4 part 2
    write_video(vdir / "QaMW4kKYbNM.mkv", clip(3), fps=FPS)
    (root / "rareact/rareact.csv").write_text("id,video_id,start,end,class_id,verb,noun,annotation\n"
                                              + "".join(",".join(map(str, r)) + "\n" for r in rows))
    return root


def test_rareact_rows_segments_and_classes(tmp_path):
    build_rareact(tmp_path)
    ds = load("rareact", "test", root=tmp_path, cards_dir=CARDS)
    assert len(ds) == 8 and ds.classes == ["shake tomato", "cut towel", "cut tomato", "shake towel"]
    assert ds.video_ids[:3] == ["7frRY7aGwMU", "-VOpTWzqM5A", "7frRY7aGwMU"]
    frames, y = ds[0]                                                        # seconds [1, 2) of a lossless video
    assert y == {"class": 0, "annotation": 0} and len(frames) == FPS
    assert [f.getpixel((0, 0)) for f in (frames[0], frames[-1])] == [(40, 1, 0), (75, 1, 0)]
    frames, y = ds[1]                                                        # the whole MPEG-4 video
    assert y == {"class": 1, "annotation": 1} and len(frames) == FPS * SECONDS and frames[0].size == (8, 8)
    assert abs(frames[16].getpixel((4, 4))[0] - 80) <= 6                     # lossy, but the right frame
    mid = load("rareact", "test", root=tmp_path, cards_dir=CARDS, loader_options={"returns": "middle_frame"})
    assert mid[2][0].getpixel((0, 0)) == (5 * 24, 1, 0)                      # [2, 4) s = frames 16..31, middle 24
    few = load("rareact", "test", root=tmp_path, cards_dir=CARDS, loader_options={"clip_frames": 3})
    assert [f.getpixel((0, 0))[0] for f in few[2][0]] == [5 * 18, 5 * 24, 5 * 29]   # centres of three equal spans
    import torchvision.transforms as T
    tens = load("rareact", "test", root=tmp_path, cards_dir=CARDS, transform=T.ToTensor())
    assert tens[3][0].shape == (FPS, 3, 8, 8)                                # (T, C, H, W): the transform applies per frame
    assert verify(ds) == 8


def test_rareact_targets_select_rows_as_compute_score_does(tmp_path):
    "Peer check: the rows each class is scored on, transcribed from RareAct's compute_score.py (positive / negative / hard negative)."
    build_rareact(tmp_path)
    ds = load("rareact", "test", root=tmp_path, cards_dir=CARDS)
    t = rareact_targets(ds)
    assert t["y_true"].shape == t["ignore"].shape == (8, 4)
    sets = {}
    for i, (_, _, _, _, _, v, n, a) in enumerate(ROWS):
        sets.setdefault((v, n), {"positive": [], "negative": [], "hard negative": []})
    for i, (_, _, _, _, _, v, n, a) in enumerate(ROWS):
        if a == 0: sets[(v, n)]["negative"].append(i)
        elif a == 1:
            sets[(v, n)]["positive"].append(i)
            for act in sets:
                if (act[0] == v) != (act[1] == n): sets[act]["hard negative"].append(i)
                elif act[0] != v and act[1] != n: sets[act]["negative"].append(i)
        else: sets[(v, n)]["hard negative"].append(i)
    for c, name in enumerate(ds.classes):
        s = sets[tuple(name.split(" "))]
        assert sorted(np.flatnonzero(~t["ignore"][:, c]).tolist()) == sorted(s["positive"] + s["negative"] + s["hard negative"]), name
        assert np.flatnonzero(t["y_true"][:, c]).tolist() == s["positive"], name
    from clip_repro.metrics import mwap
    perfect = t["y_true"].astype(float)
    assert mwap(y_score=perfect, **t) == 1.0


def test_rareact_bad_inputs_are_named(tmp_path):
    build_rareact(tmp_path)
    (tmp_path / "rareact/videos/QaMW4kKYbNM.mkv").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"1 of 3 videos listed in \S*rareact\.csv are missing .*\['QaMW4kKYbNM'\]"):
        load("rareact", "test", root=tmp_path, cards_dir=CARDS)
    (tmp_path / "rareact/videos/QaMW4kKYbNM.mkv").write_bytes(b"\x1aE\xdf\xa3 not a video")
    ds = load("rareact", "test", root=tmp_path, cards_dir=CARDS)
    with pytest.raises(CorruptImageError, match=r"Cannot decode video \S*QaMW4kKYbNM\.mkv"):
        ds[3]
    with pytest.raises(CorruptImageError, match="3 of 8 items are unreadable"):
        verify(ds)
    build_rareact(tmp_path, rows=ROWS + [(8, "QaMW4kKYbNM", 10, 20, 0, "shake", "tomato", 0)])
    with pytest.raises(CorruptImageError, match=r"QaMW4kKYbNM\.mkv has no frames in \[10\.0, 20\.0\) s"):
        load("rareact", "test", root=tmp_path, cards_dir=CARDS)[8]
    build_rareact(tmp_path, rows=ROWS + [(8, "QaMW4kKYbNM", 0, 1, 0, "cut", "laptop", 1)])
    with pytest.raises(CardError, match=r"row 10: class_id 0 is \('cut', 'laptop'\) here but \('shake', 'tomato'\) above"):
        load("rareact", "test", root=tmp_path, cards_dir=CARDS)
    (tmp_path / "rareact/rareact.csv").write_text("id,video_id,start,end,class_id,verb,noun\n0,7frRY7aGwMU,1,2,0,shake,tomato\n")
    with pytest.raises(CardError, match=r"columns \['annotation'\] missing"):
        load("rareact", "test", root=tmp_path, cards_dir=CARDS)
    build_rareact(tmp_path)
    with pytest.raises(ValueError, match="returns must be 'clip' or 'middle_frame'"):
        load("rareact", "test", root=tmp_path, cards_dir=CARDS, loader_options={"returns": "frames"})
