"""The registry `clip_repro.data.load` on miniature downloads laid out like the real ones, and on bad input.

Each builder writes a few tiny images plus the annotation files in the publisher's (or torchvision's) layout,
so the same code path reads the real dataset at paper scale.
"""
import json
import shutil
import struct
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from clip_repro import data as D
from clip_repro.data import CardError, CorruptImageError, DatasetNotFoundError, load, load_card, verify

ROOT = Path(__file__).resolve().parents[1]
CARDS = ROOT / "data_cards"


def card(name):
    return load_card(name, CARDS)


def img(path, colour=(0, 0, 0), size=(6, 5), fmt=None):
    path = Path(path); path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, tuple(int(c) % 256 for c in colour)).save(path, format=fmt)
    return path


def colour(im):
    return im.getpixel((0, 0))


# ---------------------------------------------------------------- torchvision layouts
def build_food101(root):
    names = card("food101")["classes"]["names"]
    pick = {0: "apple_pie", 2: "baklava", 100: "waffles"}
    assert all(names[i].replace(" ", "_") == n for i, n in pick.items())
    meta = {"train": {}, "test": {}}
    for i, n in pick.items():
        for sp, k in (("train", 0), ("test", 1)):
            img(root / f"food-101/images/{n}/{i}{k}.jpg", (i, k, 0))
            meta[sp][n] = [f"{n}/{i}{k}"]
    (root / "food-101/meta").mkdir(parents=True, exist_ok=True)
    for sp in meta: (root / f"food-101/meta/{sp}.json").write_text(json.dumps(meta[sp]))


def test_food101_uses_card_order(tmp_path):
    build_food101(tmp_path)
    ds = load("food101", "train", root=tmp_path, cards_dir=CARDS)
    got = sorted(ds[i][1] for i in range(len(ds)))
    assert got == [0, 2, 100]
    assert all(ds.classes[t] == ds.card["classes"]["names"][t] for t in got)
    im, t = next(ds[i] for i in range(len(ds)) if ds[i][1] == 100)
    assert colour(im)[0] in (99, 100, 101) and im.mode == "RGB"   # the waffles image (JPEG may shift a level)


def test_missing_annotation_file_is_named(tmp_path):
    build_food101(tmp_path)
    (tmp_path / "food-101/meta/test.json").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"food-101/meta/test\.json"):
        load("food101", "test", root=tmp_path, cards_dir=CARDS)


def test_torchvision_listed_image_missing_is_an_error(tmp_path):
    build_food101(tmp_path)
    (tmp_path / "food-101/images/baklava/20.jpg").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"1 of 3 files .*baklava/20\.jpg"):
        load("food101", "train", root=tmp_path, cards_dir=CARDS)


def build_dtd(root):
    names = card("dtd")["classes"]["names"]
    base = root / "dtd/dtd"
    lists = {"train": [], "val": [], "test": []}
    for i, n in enumerate(names):
        for k, sp in enumerate(lists):
            img(base / f"images/{n}/{n}_{k:04d}.jpg", (i * 5, k * 60, 0))
            lists[sp].append(f"{n}/{n}_{k:04d}.jpg")
    (base / "labels").mkdir(parents=True, exist_ok=True)
    for sp, l in lists.items(): (base / f"labels/{sp}1.txt").write_text("\n".join(l) + "\n")


def test_dtd_trainval_concatenates_and_keeps_order(tmp_path):
    build_dtd(tmp_path)
    tv = load("dtd", "trainval", root=tmp_path, cards_dir=CARDS)
    assert len(tv) == 2 * 47
    assert [tv[i][1] for i in (0, 46, 47, 93)] == [0, 46, 0, 46]
    assert tv.path_of(0).name == "banded_0000.jpg" and tv.path_of(93).name.endswith("_0001.jpg")   # train part, then val part


def build_pets(root):
    names = card("oxford_pets")["classes"]["names"]
    lines = {"trainval": [], "test": []}
    for i, n in enumerate(names):
        stem = n.replace(" ", "_") if n[0].isupper() else n.lower().replace(" ", "_")
        for k, sp in enumerate(lines):
            img(root / f"oxford-iiit-pet/images/{stem}_{k + 1}.jpg", (i * 6, 0, 0))
            lines[sp].append(f"{stem}_{k + 1} {i + 1} {1 if n[0].isupper() else 2} 1")
    (root / "oxford-iiit-pet/annotations").mkdir(parents=True, exist_ok=True)
    for sp, l in lines.items(): (root / f"oxford-iiit-pet/annotations/{sp}.txt").write_text("\n".join(l) + "\n")


def test_oxford_pets_annotation_lists(tmp_path):
    build_pets(tmp_path)
    ds = load("oxford_pets", "test", root=tmp_path, cards_dir=CARDS)
    assert len(ds) == 37 and [ds[i][1] for i in range(37)] == list(range(37))


def build_eurosat(root):
    for i, f in enumerate(card("eurosat")["classes"]["ids"]):
        img(root / f"eurosat/2750/{f}/{f}_1.jpg", (i * 20, 0, 0))


def test_eurosat_folders_are_mapped_to_the_prompt_order(tmp_path):
    build_eurosat(tmp_path)
    ds = load("eurosat", "all", root=tmp_path, cards_dir=CARDS)
    by_name = {Path(ds.path_of(i)).parent.name: ds[i][1] for i in range(len(ds))}
    assert by_name["Forest"] == 0 and by_name["AnnualCrop"] == 7 and by_name["Highway"] == 9
    assert ds.classes[by_name["SeaLake"]] == "lake or sea"
    parts = D.random_split(ds, {"train": 6, "test": 3}, seed=0)
    assert len(parts["train"]) == 6 and not set(parts["train"].indices) & set(parts["test"].indices)


def build_gtsrb(root):
    base = root / "gtsrb/GTSRB"
    for c in range(43): img(base / f"Training/{c:05d}/00000_00000.ppm", (c, 0, 0), fmt="PPM")
    rows = ["Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId"]
    for k, c in enumerate((0, 42, 14)):
        img(base / f"Final_Test/Images/{k:05d}.ppm", (c, 0, 0), fmt="PPM")
        rows.append(f"{k:05d}.ppm;6;5;0;0;5;4;{c}")
    (root / "gtsrb/GT-final_test.csv").write_text("\n".join(rows) + "\n")


def test_gtsrb_csv_test_annotations(tmp_path):
    build_gtsrb(tmp_path)
    test = load("gtsrb", "test", root=tmp_path, cards_dir=CARDS)
    assert [test[i][1] for i in range(3)] == [0, 42, 14]
    assert test.classes[14] == "red and white octagonal stop sign" or "stop" in test.classes[14]
    train = load("gtsrb", "train", root=tmp_path, cards_dir=CARDS)
    assert len(train) == 43 and {train[i][1] for i in range(43)} == set(range(43))


def _idx(path, arr, magic):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in arr.shape) + arr.astype(np.uint8).tobytes())


def build_mnist(root):
    raw = root / "MNIST/raw"
    for pre, n in (("train", 5), ("t10k", 3)):
        x = np.stack([np.full((28, 28), 10 * i) for i in range(n)])
        _idx(raw / f"{pre}-images-idx3-ubyte", x, 0x00000803)
        _idx(raw / f"{pre}-labels-idx1-ubyte", np.arange(n) % 10, 0x00000801)


def test_mnist_idx_files(tmp_path):
    build_mnist(tmp_path)
    ds = load("mnist", "test", root=tmp_path, cards_dir=CARDS)
    im, y = ds[2]
    assert len(ds) == 3 and int(y) == 2 and im.mode == "RGB" and colour(im) == (20, 20, 20)


def build_clevr(root):
    base = root / "clevr/CLEVR_v1.0"
    scenes = []
    for k, n in enumerate((3, 10, 7)):
        img(base / f"images/val/CLEVR_val_{k:06d}.png", (n, 0, 0))
        scenes.append({"image_filename": f"CLEVR_val_{k:06d}.png", "objects": [{}] * n})
    (base / "scenes").mkdir(parents=True, exist_ok=True)
    (base / "scenes/CLEVR_val_scenes.json").write_text(json.dumps({"scenes": scenes}))


def test_clevr_counts_follow_the_string_sorted_class_order(tmp_path):
    build_clevr(tmp_path)
    ds = load("clevr_counts", "val", root=tmp_path, cards_dir=CARDS)
    assert [ds.classes[ds[i][1]] for i in range(3)] == ["3", "10", "7"]
    assert [ds[i][1] for i in range(3)] == [1, 0, 5]


def build_sun397(root):
    names = card("sun397")["classes"]["names"]
    base = root / "SUN397"
    base.mkdir(parents=True, exist_ok=True)
    (base / "ClassName.txt").write_text("".join(f"/{n[0]}/{n.replace(' ', '_')}\n" for n in names))
    files = []
    for i in (0, 1, 396):
        n = names[i].replace(" ", "_")
        for k in range(2):
            img(base / n[0] / n / f"sun_{i}_{k}.jpg", (i % 256, k, 0)); files.append(f"/{n[0]}/{n}/sun_{i}_{k}.jpg")
    (base / "Partitions").mkdir()
    (base / "Partitions/Training_01.txt").write_text("\n".join(files[0::2]) + "\n")
    (base / "Partitions/Testing_01.txt").write_text("\n".join(files[1::2]) + "\n")


def test_sun397_official_partition(tmp_path):
    build_sun397(tmp_path)
    tr = load("sun397", "train", root=tmp_path, cards_dir=CARDS)
    te = load("sun397", "test", root=tmp_path, cards_dir=CARDS)
    assert len(tr) == len(te) == 3
    assert sorted(tr[i][1] for i in range(3)) == [0, 1, 396]
    assert all(str(te.path_of(i)).endswith("_1.jpg") for i in range(3))
    (tmp_path / "SUN397/Partitions/Testing_01.txt").write_text("/a/abbey/sun_missing.jpg\n")
    with pytest.raises(DatasetNotFoundError, match="sun_missing"):
        load("sun397", "test", root=tmp_path, cards_dir=CARDS)


# ---------------------------------------------------------------- multi-label VOC
def build_voc(root):
    base = root / "VOCdevkit/VOC2007"
    objs = {"000001": [("dog", 0), ("person", 0)], "000002": [("cat", 1)], "000003": [("car", 0), ("car", 1), ("bus", 1)]}
    for iid, os_ in objs.items():
        img(base / f"JPEGImages/{iid}.jpg", (1, 2, 3))
        xml = "".join(f"<object><name>{n}</name><difficult>{d}</difficult></object>" for n, d in os_)
        (base / "Annotations").mkdir(parents=True, exist_ok=True)
        (base / f"Annotations/{iid}.xml").write_text(f"<annotation><filename>{iid}.jpg</filename>{xml}</annotation>")
    (base / "ImageSets/Main").mkdir(parents=True, exist_ok=True)
    (base / "ImageSets/Main/test.txt").write_text("\n".join(objs) + "\n")


def test_voc_multilabel_targets(tmp_path):
    build_voc(tmp_path)
    ds = load("voc2007", "test", root=tmp_path, cards_dir=CARDS)
    names = ds.classes
    ys = [ds[i][1] for i in range(3)]
    assert all(y.shape == (20,) for y in ys)
    assert {names[j] for j in ys[0].nonzero().flatten().tolist()} == {"dog", "person"}
    assert ys[1].sum() == 0                                   # only a difficult cat
    assert {names[j] for j in ys[2].nonzero().flatten().tolist()} == {"car"}


# ---------------------------------------------------------------- class folders
def build_imagenet_r(root, skip=None):
    for i, w in enumerate(card("imagenet_r")["classes"]["ids"]):
        if w != skip: img(root / f"imagenet_r/imagenet-r/{w}/art_{i}.jpg", (i, 0, 0))


def test_imagenet_r_wnid_folders(tmp_path):
    build_imagenet_r(tmp_path)
    ds = load("imagenet_r", "test", root=tmp_path, cards_dir=CARDS)
    assert len(ds) == 200 and [ds[i][1] for i in (0, 199)] == [0, 199]
    inet = card("imagenet")
    assert inet["classes"]["names"][ds.card["imagenet_indices"][3]] == ds.classes[3]


def test_partial_download_missing_class_folder(tmp_path):
    build_imagenet_r(tmp_path, skip=card("imagenet_r")["classes"]["ids"][10])
    with pytest.raises(DatasetNotFoundError, match="1 class folders missing"):
        load("imagenet_r", "test", root=tmp_path, cards_dir=CARDS)


def test_corrupt_image_names_the_file(tmp_path):
    build_imagenet_r(tmp_path)
    w = card("imagenet_r")["classes"]["ids"][4]
    (tmp_path / f"imagenet_r/imagenet-r/{w}/art_4.jpg").write_bytes(b"\xff\xd8 truncated")
    ds = load("imagenet_r", "test", root=tmp_path, cards_dir=CARDS)
    assert len(ds) == 200                                     # never silently dropped
    with pytest.raises(CorruptImageError, match=f"{w}/art_4.jpg"):
        ds[4]
    with pytest.raises(CorruptImageError, match="1 of 200 items"):
        verify(ds)


def test_corrupt_image_in_torchvision_dataset(tmp_path):
    build_eurosat(tmp_path)
    (tmp_path / "eurosat/2750/River/River_1.jpg").write_bytes(b"garbage")
    ds = load("eurosat", "all", root=tmp_path, cards_dir=CARDS)
    i = next(i for i in range(len(ds)) if "River" in str(ds.path_of(i)))
    with pytest.raises(CorruptImageError, match="River_1.jpg"):
        ds[i]


def build_resisc45(root):
    for i, n in enumerate(card("resisc45")["classes"]["names"]):
        img(root / f"resisc45/NWPU-RESISC45/{n.replace(' ', '_')}/{n.replace(' ', '_')}_001.jpg", (i, 0, 0))


def test_resisc45_sorted_folders(tmp_path):
    build_resisc45(tmp_path)
    ds = load("resisc45", "all", root=tmp_path, cards_dir=CARDS)
    assert [ds[i][1] for i in range(45)] == list(range(45))
    shutil.rmtree(tmp_path / "resisc45/NWPU-RESISC45/wetland")
    with pytest.raises(DatasetNotFoundError, match="found 44 class folders"):
        load("resisc45", "all", root=tmp_path, cards_dir=CARDS)


def test_per_class_split_is_seeded_and_disjoint(tmp_path):
    cards = tmp_path / "cards"; cards.mkdir()
    shutil.copy(CARDS / "schema.json", cards)
    c = card("caltech101")
    c["classes"] = {"count": 3, "names": ["background", "face", "leopard"], "source": "test"}
    c["zeroshot"]["classnames"] = c["classes"]["names"]
    c["loader"]["per_class_train"] = 2
    (cards / "mini_caltech.yaml").write_text(yaml.safe_dump({**c, "name": "mini_caltech"}))
    D.validate_card(load_card("mini_caltech", cards), D.load_schema(cards))
    for i, f in enumerate(("BACKGROUND_Google", "Faces", "Leopards")):
        for k in range(5): img(tmp_path / f"data/caltech101/101_ObjectCategories/{f}/image_{k:04d}.jpg", (i, k, 0))
    tr = load("mini_caltech", "train", root=tmp_path / "data", cards_dir=cards)
    te = load("mini_caltech", "test", root=tmp_path / "data", cards_dir=cards)
    assert len(tr) == 6 and len(te) == 9
    assert {str(p) for p, _ in tr.items}.isdisjoint({str(p) for p, _ in te.items})
    assert sorted(tr.targets()) == [0, 0, 1, 1, 2, 2]
    again = load("mini_caltech", "train", root=tmp_path / "data", cards_dir=cards)
    other = load("mini_caltech", "train", root=tmp_path / "data", cards_dir=cards, seed=1)
    assert again.items == tr.items and other.items != tr.items


# ---------------------------------------------------------------- annotation files
def build_hateful(root):
    rows = {"train": [(0, 0), (1, 1), (2, 0)], "dev": [(3, 1)]}
    for sp, r in rows.items():
        for i, _ in r: img(root / f"hateful_memes/img/{i:05d}.png", (i, 0, 0))
        (root / f"hateful_memes/{sp}.jsonl").write_text(
            "\n".join(json.dumps({"id": i, "img": f"img/{i:05d}.png", "label": y, "text": "some text"}) for i, y in r) + "\n")


def test_hateful_memes_jsonl(tmp_path):
    build_hateful(tmp_path)
    ds = load("hateful_memes", "dev", root=tmp_path, cards_dir=CARDS)
    assert len(ds) == 1 and ds[0][1] == 1 and ds.classes[1] == "hatespeech meme"


def test_listed_but_missing_image_is_an_error(tmp_path):
    build_hateful(tmp_path)
    (tmp_path / "hateful_memes/img/00001.png").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"1 of 3 files .*00001\.png"):
        load("hateful_memes", "train", root=tmp_path, cards_dir=CARDS)


def build_fairface(root):
    races = card("fairface")["classes"]["ids"]
    lines = ["file,age,gender,race,service_test"]
    for i, r in enumerate(races):
        img(root / f"fairface/val/{i + 1}.jpg", (i, 0, 0)); lines.append(f"val/{i + 1}.jpg,20-29,Female,{r},True")
    (root / "fairface/fairface_label_val.csv").write_text("\n".join(lines) + "\n")


def test_fairface_csv_race_labels(tmp_path):
    build_fairface(tmp_path)
    ds = load("fairface", "val", root=tmp_path, cards_dir=CARDS)
    assert [ds[i][1] for i in range(7)] == list(range(7)) and ds.classes[6] == "Latino_Hispanic"
    p = tmp_path / "fairface/fairface_label_val.csv"
    p.write_text(p.read_text().replace("Indian", "Martian"))
    with pytest.raises(CardError, match="'Martian'"):
        load("fairface", "val", root=tmp_path, cards_dir=CARDS)


def build_im2gps(root):
    img(root / "im2gps/images/a.jpg"); img(root / "im2gps/images/b.jpg")
    (root / "im2gps/im2gps_test.csv").write_text("image,lat,lon\nimages/a.jpg,48.8584,2.2945\nimages/b.jpg,-33.8568,151.2153\n")


def test_im2gps_coordinates(tmp_path):
    build_im2gps(tmp_path)
    ds = load("im2gps", "test", root=tmp_path, cards_dir=CARDS)
    assert torch.allclose(ds[1][1], torch.tensor([-33.8568, 151.2153]))
    (tmp_path / "im2gps/im2gps_test.csv").write_text("image,lat,lon\nimages/a.jpg,148.0,2.0\n")
    with pytest.raises(CardError, match="latitude"):
        load("im2gps", "test", root=tmp_path, cards_dir=CARDS)


def build_iiit5k(root):
    import scipy.io
    base = root / "iiit5k/IIIT5K"
    rec = np.zeros((1, 2), dtype=[("ImgName", "O"), ("GroundTruth", "O"), ("smallLexi", "O"), ("mediumLexi", "O")])
    for k, w in enumerate(("PRIVATE", "SALE")):
        img(base / f"test/{k}_1.png")
        rec[0, k] = (f"test/{k}_1.png", w, np.array([w, "OTHER"], dtype=object), np.array([w] * 3, dtype=object))
    scipy.io.savemat(base / "testdata.mat", {"testdata": rec})


def test_iiit5k_mat_annotations(tmp_path):
    build_iiit5k(tmp_path)
    ds = load("iiit5k", "test", root=tmp_path, cards_dir=CARDS)
    assert [ds[i][1] for i in range(2)] == ["PRIVATE", "SALE"] and ds.classes is None


# ---------------------------------------------------------------- video frames
def build_ucf101(root):
    names = card("ucf101")["classes"]["names"]
    folders = [n.replace(" ", "") for n in names]
    lst = root / "ucf101/ucfTrainTestlist"; lst.mkdir(parents=True)
    (lst / "classInd.txt").write_text("".join(f"{i + 1} {f}\n" for i, f in enumerate(folders)))
    train, test = [], []
    for c in (0, 57, 100):
        f = folders[c]
        for g, dest in ((8, train), (1, test)):
            clip = f"v_{f}_g{g:02d}_c01"
            for k in range(5): img(root / f"ucf101/frames/{f}/{clip}/{k + 1:05d}.jpg", (c, 40 * k, 0))
            dest.append(f"{f}/{clip}.avi" + (f" {c + 1}" if dest is train else ""))
    (lst / "trainlist01.txt").write_text("\n".join(train) + "\n")
    (lst / "testlist01.txt").write_text("\n".join(test) + "\n")


def test_ucf101_middle_frame_and_class_index(tmp_path):
    build_ucf101(tmp_path)
    ds = load("ucf101", "test", root=tmp_path, cards_dir=CARDS)
    assert [ds[i][1] for i in range(3)] == [0, 57, 100]
    assert abs(colour(ds[1][0])[1] - 80) <= 3          # frame 3 of 5: the middle one (green = 40 * 2)
    assert str(ds.items[1][0]).endswith("00003.jpg")
    shutil.rmtree(tmp_path / f"ucf101/frames/{ds.items[2][0].parent.parent.name}")
    with pytest.raises(DatasetNotFoundError, match="1 of 3 files listed"):
        load("ucf101", "test", root=tmp_path, cards_dir=CARDS)


def test_kinetics_frames_by_class_name(tmp_path):
    names = card("kinetics700")["classes"]["names"]
    for c in (0, 699):
        for k in range(3): img(tmp_path / f"kinetics700/frames/val/{names[c].replace(' ', '_')}/clip{c}/{k:04d}.jpg", (c % 256, k, 0))
    ds = load("kinetics700", "val", root=tmp_path, cards_dir=CARDS)
    assert [ds[i][1] for i in range(2)] == [0, 699] and str(ds.items[0][0]).endswith("0001.jpg")


# ---------------------------------------------------------------- retrieval captions
def build_retrieval(root, folder, images_dir, json_name, coco=False):
    imgs = []
    for k, sp in enumerate(("train", "restval", "val", "test", "test")):
        fp = ("val2014" if sp != "train" else "train2014") if coco else ""
        img(root / folder / images_dir / fp / f"{k}.jpg", (k, 0, 0))
        imgs.append({"filename": f"{k}.jpg", "filepath": fp, "split": sp,
                     "sentences": [{"raw": f"caption {k}.{j}"} for j in range(5)]})
    (root / folder / json_name).write_text(json.dumps({"images": imgs, "dataset": folder}))


def test_flickr30k_and_coco_karpathy_splits(tmp_path):
    build_retrieval(tmp_path, "flickr30k", "flickr30k-images", "dataset_flickr30k.json")
    build_retrieval(tmp_path, "mscoco", "", "dataset_coco.json", coco=True)
    f = load("flickr30k", "test", root=tmp_path, cards_dir=CARDS)
    assert len(f) == 2 and f[0][1] == [f"caption 3.{j}" for j in range(5)]
    c = load("mscoco", "train", root=tmp_path, cards_dir=CARDS)
    assert len(c) == 2                                   # train + restval (Karpathy)
    assert "val2014" in str(c.items[1][0])
    (tmp_path / "flickr30k/flickr30k-images/4.jpg").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"4\.jpg"):
        load("flickr30k", "test", root=tmp_path, cards_dir=CARDS)


# ---------------------------------------------------------------- bad input and dispatch
def test_wrong_root_and_wrong_split(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="does not exist"):
        load("food101", "train", root=tmp_path / "nope", cards_dir=CARDS)
    with pytest.raises(DatasetNotFoundError, match=r"missing .*food-101/meta/train\.json"):
        load("food101", "train", root=tmp_path, cards_dir=CARDS)
    build_food101(tmp_path)
    with pytest.raises(ValueError, match=r"splits \['test', 'train'\]"):
        load("food101", "validation", root=tmp_path, cards_dir=CARDS)
    with pytest.raises(CardError, match="No data card named 'food-101'"):
        load("food101".replace("101", "-101"), "train", root=tmp_path, cards_dir=CARDS)


def test_check_size_catches_a_short_split(tmp_path):
    build_hateful(tmp_path)
    with pytest.raises(DatasetNotFoundError, match="published split has 8,?500|has 8500"):
        load("hateful_memes", "train", root=tmp_path, cards_dir=CARDS, check_size=True)


def test_no_download_without_permission(tmp_path, monkeypatch):
    import torchvision.datasets as tvd
    monkeypatch.setattr(tvd.Food101, "_download", lambda self: (_ for _ in ()).throw(AssertionError("downloaded")))
    with pytest.raises(DatasetNotFoundError):
        load("food101", "train", root=tmp_path, cards_dir=CARDS)          # download=False: never touches the network
    with pytest.raises(AssertionError, match="downloaded"):
        load("food101", "train", root=tmp_path, cards_dir=CARDS, download=True)
    with pytest.raises(ValueError, match="cannot be downloaded automatically"):
        load("resisc45", "all", root=tmp_path, cards_dir=CARDS, download=True)


def test_datasets_without_a_loader_say_so(tmp_path):
    cards = tmp_path / "cards"; cards.mkdir()
    c = card("rareact")
    c["loader"] = {"kind": "none", "reason": "clips not extracted"}
    (cards / "no_loader.yaml").write_text(yaml.safe_dump({**c, "name": "no_loader"}))
    with pytest.raises(NotImplementedError, match=r"no automatic loader \(clips not extracted\)"):
        load("no_loader", "test", root=tmp_path, cards_dir=cards)


def test_the_video_sets_say_where_their_files_belong(tmp_path):
    for name, where in (("imagenet_vid", "imagenet_vid_ytbb_robust/imagenet-vid-robust"),
                        ("youtube_bb", "imagenet_vid_ytbb_robust/ytbb-robust"), ("rareact", "rareact/rareact.csv")):
        with pytest.raises(DatasetNotFoundError, match=where):
            load(name, "test", root=tmp_path, cards_dir=CARDS)
        with pytest.raises(ValueError, match="cannot be downloaded automatically"):
            load(name, "test", root=tmp_path, cards_dir=CARDS, download=True)


def test_toy_names_dispatch_to_world(tmp_path, monkeypatch):
    calls = []
    fake = types.ModuleType("clip_repro.world")
    fake.load_task = lambda name, split, root, **kw: calls.append((name, split, root, kw)) or ["item"]
    monkeypatch.setitem(sys.modules, "clip_repro.world", fake)
    assert load("toy/objects", "test", root=tmp_path) == ["item"]
    assert load("toy/objects", "train", root=None) == ["item"]
    assert calls == [("toy/objects", "test", tmp_path, {}), ("toy/objects", "train", None, {})]


def test_every_paper_card_has_a_loader_the_registry_knows():
    for n in D.card_names(CARDS, toy=False):
        kind = card(n)["loader"]["kind"]
        assert kind == "none" or kind == "torchvision" or kind in D.READERS, (n, kind)
        if kind == "torchvision":
            import torchvision.datasets as tvd
            assert hasattr(tvd, card(n)["loader"]["class"]), n


def test_toy_task_through_the_real_world_module():
    import clip_repro.world  # noqa: F401
    toy = load_card("toy/counts", CARDS)
    ds = load("toy/counts", "test", root=None)                # generated on the fly
    x, y = ds[0]
    assert isinstance(x, Image.Image) and 0 <= y < toy["classes"]["count"]
    assert list(ds.classes) == toy["classes"]["names"]
