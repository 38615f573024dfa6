"""The registry on miniature downloads of the torchvision-backed datasets, written in the exact on-disk formats that
torchvision 0.29 reads (pickled CIFAR batches, SVHN/Flowers/Cars `.mat` files, STL-10 binaries, FER2013 CSV, CelebA text
lists, PCam HDF5, ImageNet's `meta.bin`, class folders).

Integrity checks. torchvision md5-checks the *whole real file* for CIFAR-10/100, SVHN, STL-10, Flowers102 (`.mat`),
FER2013 and CelebA (text lists), which no miniature file can pass. For those datasets each test says which of two things
it does: it **trusts the md5** (`trust_md5` swaps torchvision's `check_integrity` for a plain existence check, so the
rest of torchvision's reading and all of the registry run on the exact format), and/or it checks that **our error
is clear** when torchvision rejects the file. ImageNet is built so that no md5 is needed (`meta.bin` and `val/` already
unpacked, as torchvision leaves them after the first use); PCam, Stanford Cars, FGVC Aircraft, Country211 and
Rendered SST2 only check that files exist.
"""
import importlib
import os
import pickle
import string
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from clip_repro.data import DatasetNotFoundError, _norm, load, load_card

ROOT = Path(__file__).resolve().parents[1]
CARDS = ROOT / "data_cards"


def card(name):
    return load_card(name, CARDS)


def names(name):
    return card(name)["classes"]["names"]


def img(path, colour=(0, 0, 0), size=(4, 4), fmt=None):
    path = Path(path); path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, tuple(int(c) % 256 for c in colour)).save(path, format=fmt)
    return path


def trust_md5(monkeypatch, module):
    "Stand in for torchvision's md5 check of the real files: a file passes if it exists."
    mod = importlib.import_module(f"torchvision.datasets.{module}")
    monkeypatch.setattr(mod, "check_integrity", lambda fpath, md5=None: os.path.isfile(fpath))


def labels_of(ds):
    return [int(ds[i][1]) for i in range(len(ds))]


# ---------------------------------------------------------------- CIFAR-10 / CIFAR-100 (pickled batches; md5)
CIFAR10_LABEL_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]  # batches.meta


def _cifar_batch(path, labels, key="labels", extra=None):
    data = np.zeros((len(labels), 3072), np.uint8)
    for i, y in enumerate(labels):
        data[i, :1024], data[i, 1024:2048] = 2 * y, i           # red plane = 2 * label, green plane = row
    entry = {"batch_label": path.name, key: list(labels), "data": data, "filenames": [f"{i}.png" for i in range(len(labels))]}
    path.write_bytes(pickle.dumps({**entry, **(extra or {})}, protocol=2))


def build_cifar10(root):
    base = root / "cifar-10-batches-py"; base.mkdir(parents=True)
    for b in range(1, 6): _cifar_batch(base / f"data_batch_{b}", [b, 9 - b])
    _cifar_batch(base / "test_batch", [0, 3, 9])
    (base / "batches.meta").write_bytes(pickle.dumps({"label_names": CIFAR10_LABEL_NAMES, "num_cases_per_batch": 2, "num_vis": 3072}, protocol=2))


def test_cifar10_batches(tmp_path, monkeypatch):
    "Trusts the md5 (see the module docstring)."
    build_cifar10(tmp_path)
    trust_md5(monkeypatch, "cifar")
    tr, te = (load("cifar10", s, root=tmp_path, cards_dir=CARDS) for s in ("train", "test"))
    assert names("cifar10") == CIFAR10_LABEL_NAMES and te.classes == names("cifar10")
    assert (len(tr), len(te)) == (10, 3)
    im, y = te[1]
    assert (im.size, im.mode, y, te.classes[y]) == ((32, 32), "RGB", 3, "cat") and im.getpixel((0, 0)) == (6, 1, 0)
    assert labels_of(tr) == [1, 8, 2, 7, 3, 6, 4, 5, 5, 4]


def test_cifar10_md5_failure_and_missing_batch_are_reported(tmp_path):
    "Our error is clear: the miniature batches fail torchvision's md5 check; a missing batch is named before that."
    build_cifar10(tmp_path)
    with pytest.raises(DatasetNotFoundError, match=r"'cifar10' \(test\) not found or incomplete.*corrupted.*cifar-10-python\.tar\.gz"):
        load("cifar10", "test", root=tmp_path, cards_dir=CARDS)
    (tmp_path / "cifar-10-batches-py/data_batch_3").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"missing \S*cifar-10-batches-py/data_batch_3"):
        load("cifar10", "test", root=tmp_path, cards_dir=CARDS)


def test_cifar100_fine_labels(tmp_path, monkeypatch):
    "Trusts the md5. CIFAR-100's `meta` lists the fine labels alphabetically, with underscores; the card spells them with spaces."
    fine = [n.replace(" ", "_") for n in names("cifar100")]
    assert fine == sorted(fine) and len(fine) == 100
    base = tmp_path / "cifar-100-python"; base.mkdir()
    _cifar_batch(base / "train", [0, 1, 99], key="fine_labels", extra={"coarse_labels": [4, 1, 14]})
    _cifar_batch(base / "test", [1, 52], key="fine_labels", extra={"coarse_labels": [1, 17]})
    (base / "meta").write_bytes(pickle.dumps({"fine_label_names": fine, "coarse_label_names": [f"c{i}" for i in range(20)]}, protocol=2))
    trust_md5(monkeypatch, "cifar")
    te = load("cifar100", "test", root=tmp_path, cards_dir=CARDS)
    assert len(te) == 2 and labels_of(te) == [1, 52]
    assert te.classes[1] == "aquarium fish" and te.classes[52] == "oak tree" and te[1][0].size == (32, 32)
    assert len(load("cifar100", "train", root=tmp_path, cards_dir=CARDS)) == 3


# ---------------------------------------------------------------- SVHN (.mat; md5)
def build_svhn(root, split="test", digits=(1, 10, 7)):
    X = np.zeros((32, 32, 3, len(digits)), np.uint8)
    for i, d in enumerate(digits): X[..., 0, i] = 20 * d
    (root / "svhn").mkdir(exist_ok=True)
    scipy.io.savemat(root / f"svhn/{split}_32x32.mat", {"X": X, "y": np.array(digits, np.uint8)[:, None]})


def test_svhn_mat_and_the_label_10_for_zero(tmp_path, monkeypatch):
    "Trusts the md5. SVHN stores the digit 0 as label 10; the card's class '0' must receive it."
    build_svhn(tmp_path)
    trust_md5(monkeypatch, "svhn")
    ds = load("svhn", "test", root=tmp_path, cards_dir=CARDS)
    assert len(ds) == 3 and labels_of(ds) == [1, 0, 7]
    assert ds.classes[ds[1][1]] == "0" and ds[1][0].size == (32, 32) and ds[1][0].getpixel((0, 0))[0] == 200
    with pytest.raises(DatasetNotFoundError, match=r"missing \S*svhn/train_32x32\.mat"):      # only the test file was fetched
        load("svhn", "train", root=tmp_path, cards_dir=CARDS)


# ---------------------------------------------------------------- STL-10 (binaries; md5)
STL10_CLASS_NAMES = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]   # class_names.txt


def build_stl10(root, train=(1, 2, 3, 10), test=(10, 8)):
    base = root / "stl10_binary"; base.mkdir(parents=True)
    def write(stem, labels):
        x = np.zeros((len(labels), 3, 96, 96), np.uint8)         # (N, C, H, W)
        for i, y in enumerate(labels): x[i, 0] = 25 * y; x[i, 1, 0, :] = 255   # a green top row shows the orientation
        (base / f"{stem}_X.bin").write_bytes(x.transpose(0, 1, 3, 2).tobytes())   # stored column-major, as the release does
        if stem != "unlabeled": (base / f"{stem}_y.bin").write_bytes(np.array(labels, np.uint8).tobytes())   # 1-based
    write("train", train); write("test", test); write("unlabeled", (0,))
    (base / "fold_indices.txt").write_text("0 2\n" + "".join("1 3\n" for _ in range(9)))
    (base / "class_names.txt").write_text("\n".join(STL10_CLASS_NAMES) + "\n")


def test_stl10_binaries_and_the_fold(tmp_path, monkeypatch):
    "Trusts the md5. The card's train split is fold 0 of fold_indices.txt; labels are stored 1-based."
    assert names("stl10") == STL10_CLASS_NAMES
    build_stl10(tmp_path)
    trust_md5(monkeypatch, "stl10")
    tr = load("stl10", "train", root=tmp_path, cards_dir=CARDS)
    te = load("stl10", "test", root=tmp_path, cards_dir=CARDS)
    assert (len(tr), labels_of(tr)) == (2, [0, 2])                 # rows 0 and 2 of train (labels 1 and 3)
    assert (len(te), labels_of(te), te.classes[9]) == (2, [9, 7], "truck")
    im = te[0][0]
    assert im.size == (96, 96) and im.getpixel((50, 0)) == (250, 255, 0) and im.getpixel((0, 50)) == (250, 0, 0)
    assert labels_of(load("stl10", "train", root=tmp_path, cards_dir=CARDS, fold=1)) == [1, 9]


# ---------------------------------------------------------------- Flowers102 (.mat; md5 of the .mat files)
def build_flowers(root):
    base = root / "flowers-102"
    labels = [1, 2, 102, 77, 1, 102]                                # 1-based, image i has labels[i - 1]
    for i, y in enumerate(labels, 1): img(base / f"jpg/image_{i:05d}.jpg", (2 * y, 0, 0))
    scipy.io.savemat(base / "imagelabels.mat", {"labels": np.array([labels], np.uint8)})
    scipy.io.savemat(base / "setid.mat", {"trnid": np.array([[1, 2]], np.uint16), "valid": np.array([[3, 4]], np.uint16),
                                          "tstid": np.array([[5, 6]], np.uint16)})


def test_flowers102_setid_and_trainval(tmp_path, monkeypatch):
    "Trusts the md5."
    build_flowers(tmp_path)
    trust_md5(monkeypatch, "flowers102")
    from torchvision.datasets import Flowers102
    differ = [i for i, (a, b) in enumerate(zip(Flowers102.classes, names("flowers102"))) if _norm(a) != _norm(b)]
    assert len(Flowers102.classes) == 102 and differ == [59, 92]      # same order; two names spelled differently by torchvision
    tv = load("flowers102", "trainval", root=tmp_path, cards_dir=CARDS)
    assert len(tv) == 4 and labels_of(tv) == [0, 1, 101, 76]
    te = load("flowers102", "test", root=tmp_path, cards_dir=CARDS)
    im, y = te[1]
    assert (y, te.classes[y], im.size) == (101, names("flowers102")[101], (4, 4))
    assert str(tv.path_of(2)).endswith("jpg/image_00003.jpg")          # the val part follows the train part


def test_flowers102_md5_failure_is_reported(tmp_path):
    "Our error is clear: the miniature .mat files fail torchvision's md5 check."
    build_flowers(tmp_path)
    with pytest.raises(DatasetNotFoundError, match=r"'flowers102' \(train\) not found or incomplete.*corrupted"):
        load("flowers102", "train", root=tmp_path, cards_dir=CARDS)


# ---------------------------------------------------------------- FER2013 (CSV of pixels; md5)
def _fer_pixels(v):
    return " ".join(str((v + k) % 256) for k in range(48 * 48))


def build_fer(root, rows=((0, "Training"), (3, "Training"), (6, "Training"), (4, "PublicTest"), (1, "PrivateTest"))):
    (root / "fer2013").mkdir()
    lines = ["emotion,pixels,Usage"] + [f"{e},{_fer_pixels(10 * i)},{u}" for i, (e, u) in enumerate(rows)]
    (root / "fer2013/fer2013.csv").write_text("\n".join(lines) + "\n")


def test_fer2013_csv_splits(tmp_path, monkeypatch):
    "Trusts the md5. fer2013.csv holds every split; the test split is PublicTest + PrivateTest; images are 48x48 grey."
    build_fer(tmp_path)
    trust_md5(monkeypatch, "fer2013")
    tr, te = (load("fer2013", s, root=tmp_path, cards_dir=CARDS) for s in ("train", "test"))
    assert (len(tr), labels_of(tr)) == (3, [0, 3, 6]) and (len(te), labels_of(te)) == (2, [4, 1])
    im, y = tr[1]
    assert (im.size, im.mode, im.getpixel((1, 0)), tr.classes[y]) == ((48, 48), "RGB", (11, 11, 11), "happy")


def test_fer2013_without_test_labels_is_an_error(tmp_path, monkeypatch):
    "Trusts the md5. With only the challenge's train.csv and test.csv, the test split has no labels: an error, not None targets."
    (tmp_path / "fer2013").mkdir()
    (tmp_path / "fer2013/train.csv").write_text(f"emotion,pixels\n2,{_fer_pixels(0)}\n")
    (tmp_path / "fer2013/test.csv").write_text(f"pixels\n{_fer_pixels(5)}\n")
    trust_md5(monkeypatch, "fer2013")
    assert labels_of(load("fer2013", "train", root=tmp_path, cards_dir=CARDS)) == [2]
    with pytest.raises(DatasetNotFoundError, match=r"carry no labels for this split.*fer2013\.csv"):
        load("fer2013", "test", root=tmp_path, cards_dir=CARDS)


def test_fer2013_md5_failure_and_missing_file_are_reported(tmp_path):
    "Our error is clear, for a file that fails the md5 and for no file at all."
    with pytest.raises(DatasetNotFoundError, match=r"missing \S*fer2013/fer2013\.csv or \S*icml_face_data\.csv or \S*fer2013/test\.csv"):
        load("fer2013", "test", root=tmp_path, cards_dir=CARDS)
    build_fer(tmp_path)
    with pytest.raises(DatasetNotFoundError, match=r"fer2013\.csv not found in \S+ or corrupted"):
        load("fer2013", "test", root=tmp_path, cards_dir=CARDS)


# ---------------------------------------------------------------- CelebA (text lists; md5)
ATTRS = ["5_o_Clock_Shadow", "Arched_Eyebrows"] + [f"attr_{k}" for k in range(38)]


def build_celeba(root, identities=(2880, 1, 10177, 2880, 5, 7), partition=(0, 0, 2, 1, 2, 1)):
    base = root / "celeba"
    files = [f"{i + 1:06d}.jpg" for i in range(len(identities))]
    for i, f in enumerate(files): img(base / "img_align_celeba" / f, (i, 0, 0), size=(178, 218))
    n = len(files)
    (base / "list_eval_partition.txt").write_text("".join(f"{f} {p}\n" for f, p in zip(files, partition)))
    (base / "identity_CelebA.txt").write_text("".join(f"{f} {k}\n" for f, k in zip(files, identities)))
    (base / "list_attr_celeba.txt").write_text(f"{n}\n" + " ".join(ATTRS) + " \n"
                                               + "".join(f"{f} " + " ".join("1" if k % 2 else "-1" for k in range(40)) + "\n" for f in files))
    (base / "list_bbox_celeba.txt").write_text(f"{n}\nimage_id x_1 y_1 width height\n" + "".join(f"{f}    95   71  226  313\n" for f in files))
    (base / "list_landmarks_align_celeba.txt").write_text(
        f"{n}\nlefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x leftmouth_y rightmouth_x rightmouth_y\n"
        + "".join(f"{f} 69  109  106  113   77  142   73  152  108  154\n" for f in files))


def test_celeba_identities_become_classes_0_to_10176(tmp_path, monkeypatch):
    "Trusts the md5. identity_CelebA.txt numbers people 1..10177; torchvision passes them on; the card shifts them by -1."
    build_celeba(tmp_path)
    trust_md5(monkeypatch, "celeba")
    tr = load("celeba", "train", root=tmp_path, cards_dir=CARDS)
    te = load("celeba", "test", root=tmp_path, cards_dir=CARDS)
    assert (len(tr), labels_of(tr), card("celeba")["classes"]["count"]) == (2, [2879, 0], 10177)
    assert labels_of(te) == [10176, 4]
    im, y = te[0]
    assert (y, im.size, im.mode) == (10176, (178, 218), "RGB") and abs(im.getpixel((0, 0))[0] - 2) <= 2   # the third image (JPEG)
    assert isinstance(y, int)
    (tmp_path / "celeba/img_align_celeba/000002.jpg").unlink()      # listed in list_eval_partition.txt, absent on disk
    with pytest.raises(DatasetNotFoundError, match=r"1 of 2 files .*img_align_celeba/000002\.jpg"):
        load("celeba", "train", root=tmp_path, cards_dir=CARDS)


def test_celeba_md5_failure_and_missing_list_are_reported(tmp_path):
    "Our error is clear: a missing list file is named; present but miniature lists fail torchvision's md5 check."
    build_celeba(tmp_path)
    with pytest.raises(DatasetNotFoundError, match=r"'celeba' \(train\) not found or incomplete.*corrupted"):
        load("celeba", "train", root=tmp_path, cards_dir=CARDS)
    (tmp_path / "celeba/list_bbox_celeba.txt").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"missing \S*celeba/list_bbox_celeba\.txt"):
        load("celeba", "train", root=tmp_path, cards_dir=CARDS)


# ---------------------------------------------------------------- PCam (HDF5; existence only)
def test_pcam_without_h5py_says_so(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "h5py", None)                  # as if h5py were not installed
    with pytest.raises(ImportError, match=r"'pcam' needs the Python package 'h5py'.*pip install h5py"):
        load("pcam", "test", root=tmp_path, cards_dir=CARDS)


def test_pcam_h5_files(tmp_path):
    h5py = pytest.importorskip("h5py", reason="PCam's HDF5 files need h5py (see the pcam card)")
    (tmp_path / "pcam").mkdir()
    ys = [1, 0, 1]
    x = np.zeros((3, 96, 96, 3), np.uint8)
    for i in range(3): x[i, ..., 1] = 50 * (i + 1)
    with h5py.File(tmp_path / "pcam/camelyonpatch_level_2_split_test_x.h5", "w") as f: f["x"] = x
    with h5py.File(tmp_path / "pcam/camelyonpatch_level_2_split_test_y.h5", "w") as f: f["y"] = np.array(ys, np.uint8).reshape(3, 1, 1, 1)
    ds = load("pcam", "test", root=tmp_path, cards_dir=CARDS)
    im, y = ds[2]
    assert (len(ds), labels_of(ds), im.size, im.getpixel((0, 0))) == (3, ys, (96, 96), (0, 150, 0))
    assert ds.classes[1] == "lymph node containing metastatic tumor tissue"
    with pytest.raises(DatasetNotFoundError, match=r"missing \S*camelyonpatch_level_2_split_valid_x\.h5"):
        load("pcam", "val", root=tmp_path, cards_dir=CARDS)


# ---------------------------------------------------------------- Stanford Cars (.mat; existence only)
def _cars_annos(path, rows):
    rec = np.zeros((1, len(rows)), dtype=[(k, "O") for k in ("bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "fname")])
    for i, (cls, fname) in enumerate(rows): rec[0, i] = (np.uint8(1), np.uint8(1), np.uint8(3), np.uint8(3), np.uint8(cls), fname)
    scipy.io.savemat(path, {"annotations": rec})


def build_cars(root):
    base = root / "stanford_cars"; (base / "devkit").mkdir(parents=True)
    scipy.io.savemat(base / "devkit/cars_meta.mat", {"class_names": np.array([names("stanford_cars")], dtype=object)})
    train, test = [(1, "00001.jpg"), (196, "00002.jpg")], [(14, "00001.jpg"), (1, "00002.jpg"), (196, "00003.jpg")]
    for c, f in train: img(base / "cars_train" / f, (c, 0, 0))
    for c, f in test: img(base / "cars_test" / f, (c, 0, 0))
    _cars_annos(base / "devkit/cars_train_annos.mat", train)
    _cars_annos(base / "cars_test_annos_withlabels.mat", test)


def test_stanford_cars_devkit_mat_files(tmp_path):
    build_cars(tmp_path)
    te = load("stanford_cars", "test", root=tmp_path, cards_dir=CARDS)
    assert te.classes == names("stanford_cars") and len(te) == 3 and labels_of(te) == [13, 0, 195]
    im, y = te[2]
    assert (im.size, im.getpixel((0, 0))[0], te.classes[y]) == ((4, 4), 196, names("stanford_cars")[195])
    assert len(load("stanford_cars", "train", root=tmp_path, cards_dir=CARDS)) == 2
    (tmp_path / "stanford_cars/devkit/cars_meta.mat").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"missing \S*stanford_cars/devkit/cars_meta\.mat"):
        load("stanford_cars", "test", root=tmp_path, cards_dir=CARDS)


# ---------------------------------------------------------------- FGVC Aircraft (text lists; existence only)
def build_aircraft(root):
    data = root / "fgvc-aircraft-2013b/data"
    (data / "images").mkdir(parents=True)
    (data / "variants.txt").write_text("\n".join(names("fgvc_aircraft")) + "\n")
    lists = {"train": [("1025794", 0)], "val": [("1340192", 99)], "test": [("0056978", 0), ("0062765", 7), ("2180780", 99)]}
    lists["trainval"] = lists["train"] + lists["val"]
    for sp, rows in lists.items():
        (data / f"images_variant_{sp}.txt").write_text("".join(f"{i} {names('fgvc_aircraft')[c]}\n" for i, c in rows))
        for i, c in rows: img(data / f"images/{i}.jpg", (c, 0, 0), size=(8, 6))


def test_fgvc_aircraft_variant_lists(tmp_path):
    build_aircraft(tmp_path)
    assert any(" " in n for n in names("fgvc_aircraft"))            # e.g. 'Falcon 2000': the list splits at the first space only
    te = load("fgvc_aircraft", "test", root=tmp_path, cards_dir=CARDS)
    assert te.classes == names("fgvc_aircraft") and (len(te), labels_of(te)) == (3, [0, 7, 99])
    assert te[2][0].size == (8, 6)
    assert labels_of(load("fgvc_aircraft", "trainval", root=tmp_path, cards_dir=CARDS)) == [0, 99]
    (tmp_path / "fgvc-aircraft-2013b/data/images_variant_val.txt").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"'fgvc_aircraft' \(val\) not found or incomplete.*images_variant_val\.txt"):
        load("fgvc_aircraft", "val", root=tmp_path, cards_dir=CARDS)


# ---------------------------------------------------------------- ImageNet (meta.bin + val/<wnid>/; no md5 needed)
def build_imagenet_val(root, skip=()):
    ids, nm = card("imagenet")["classes"]["ids"], names("imagenet")
    base = root / "imagenet"; base.mkdir(parents=True)
    wnid_to_classes = {w: (n, f"synonym of {n}") for w, n in zip(ids, nm)}
    torch.save((wnid_to_classes, list(ids)), base / "meta.bin")    # what torchvision writes after parsing the devkit
    for k, w in enumerate(ids):
        if w not in skip: img(base / f"val/{w}/ILSVRC2012_val_{k + 1:08d}.JPEG", (k % 256, k // 256, 0), size=(2, 2))


def test_imagenet_val_after_first_use(tmp_path):
    build_imagenet_val(tmp_path)
    ds = load("imagenet", "test", root=tmp_path, cards_dir=CARDS)   # the card's test split is ILSVRC2012 val
    assert len(ds) == 1000 and ds.classes == names("imagenet")
    for k in (0, 1, 500, 999):
        im, y = ds[k]
        assert y == k and im.size == (2, 2) and Path(ds.path_of(k)).parent.name == card("imagenet")["classes"]["ids"][k]


def test_imagenet_missing_class_folder_and_missing_meta(tmp_path):
    w = card("imagenet")["classes"]["ids"][123]
    build_imagenet_val(tmp_path, skip=(w,))
    with pytest.raises(DatasetNotFoundError, match=rf"only 999 of 1000 class folders .*'{w}'"):
        load("imagenet", "val", root=tmp_path, cards_dir=CARDS)
    (tmp_path / "imagenet/meta.bin").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"missing \S*imagenet/meta\.bin or \S*ILSVRC2012_devkit_t12\.tar\.gz"):
        load("imagenet", "val", root=tmp_path, cards_dir=CARDS)


# ---------------------------------------------------------------- Country211 (class folders named by ISO code)
def country_codes():
    "211 folder names in sorted order: the five real codes that come first (AD, AE, AF, AG, AI), then stand-ins."
    rest = [a + b for a in "BCDEFGHIJ" for b in string.ascii_uppercase]
    return ["AD", "AE", "AF", "AG", "AI"] + rest[:206]


def build_country211(root, split="test", skip=()):
    for k, code in enumerate(country_codes()):
        if code not in skip: img(root / f"country211/{split}/{code}/{1000 + k}.jpg", (k, 0, 0))


def test_country211_folders_follow_the_card_order(tmp_path):
    codes = country_codes()
    assert codes == sorted(codes) and len(codes) == 211
    build_country211(tmp_path)
    ds = load("country211", "test", root=tmp_path, cards_dir=CARDS)
    assert len(ds) == 211 and ds.classes == names("country211")
    assert [ds.classes[ds[i][1]] for i in range(5)] == ["Andorra", "United Arab Emirates", "Afghanistan", "Antigua and Barbuda", "Anguilla"]
    assert labels_of(ds) == list(range(211))


def test_country211_missing_country_is_a_partial_download(tmp_path):
    build_country211(tmp_path, skip=("AF",))
    with pytest.raises(DatasetNotFoundError, match="only 210 of 211 class folders"):
        load("country211", "test", root=tmp_path, cards_dir=CARDS)


# ---------------------------------------------------------------- Rendered SST2 (PNG class folders)
def build_sst2(root):
    for sp, n in (("train", 2), ("valid", 1), ("test", 2)):
        for c in ("negative", "positive"):
            for k in range(n): img(root / f"rendered-sst2/{sp}/{c}/{sp}_{c}_{k}.png", (255 * (c == "positive"), k, 0), size=(6, 3))


def test_rendered_sst2_splits(tmp_path):
    build_sst2(tmp_path)
    va = load("rendered_sst2", "valid", root=tmp_path, cards_dir=CARDS)   # torchvision's split 'val', folder valid/
    assert va.classes == ["negative", "positive"] and labels_of(va) == [0, 1]
    im, y = va[1]
    assert (im.size, im.getpixel((0, 0)), y) == ((6, 3), (255, 0, 0), 1)
    assert len(load("rendered_sst2", "trainval", root=tmp_path, cards_dir=CARDS)) == 6
    with pytest.raises(ValueError, match=r"splits \['test', 'train', 'trainval', 'valid'\]"):
        load("rendered_sst2", "val", root=tmp_path, cards_dir=CARDS)
