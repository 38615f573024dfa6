"""Data cards: every card validates, names an implemented metric, and agrees with the reference facts and the paper."""
import ast
import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from clip_repro.data import (CardError, card_names, cards_table, errata_table, load_card, load_schema,
                             render_cards_markdown, validate_card)

ROOT = Path(__file__).resolve().parents[1]
CARDS = ROOT / "data_cards"
REF = ROOT.parent / "shared" / "reference"
SEED = ROOT.parent / "shared" / "seeds" / "000_518f872dfe4f7583.txt"
ALL = card_names(CARDS)
PAPER = [n for n in ALL if not n.startswith("toy/")]

# Issue 12: the 27 of Table 2 plus the datasets of Tables 13-17 and Appendix E.
REQUIRED = ["food101", "cifar10", "cifar100", "birdsnap", "sun397", "stanford_cars", "fgvc_aircraft", "voc2007", "dtd",
            "oxford_pets", "caltech101", "flowers102", "mnist", "fer2013", "stl10", "eurosat", "resisc45", "gtsrb", "kitti",
            "country211", "pcam", "ucf101", "kinetics700", "clevr_counts", "hateful_memes", "rendered_sst2", "imagenet",
            "imagenetv2", "imagenet_r", "imagenet_sketch", "imagenet_a", "objectnet", "imagenet_vid", "youtube_bb",
            "flickr30k", "mscoco", "iiit5k", "svhn", "rareact", "im2gps", "fairface", "celeba"]


def test_schema_is_valid_json_schema():
    jsonschema.Draft202012Validator.check_schema(load_schema(CARDS))


def test_every_required_dataset_has_a_card():
    assert set(REQUIRED) <= set(PAPER), sorted(set(REQUIRED) - set(PAPER))


@pytest.mark.parametrize("name", ALL)
def test_card_validates(name):
    card = validate_card(load_card(name, CARDS), load_schema(CARDS))
    assert card["name"] == name


def test_every_metric_is_implemented():
    from clip_repro.metrics import METRICS
    for name in ALL:
        card = load_card(name, CARDS)
        validate_card(card, load_schema(CARDS), metrics=METRICS)
        for extra in (card["splits"].get("paper") or {}).get("also", []):   # RareAct also reports mWSAP
            assert extra in METRICS, (name, extra)


def test_validate_reports_every_problem():
    card = load_card("cifar10", CARDS)
    bad = {**card, "classes": {**card["classes"], "count": 9}, "metric": "top7"}
    with pytest.raises(CardError, match="classes/count is 9"):
        validate_card(bad, load_schema(CARDS))
    with pytest.raises(CardError, match="top7"):
        validate_card({**card, "metric": "top7"}, load_schema(CARDS), metrics=["accuracy"])
    with pytest.raises(CardError, match="templates"):
        validate_card({**card, "zeroshot": {**card["zeroshot"], "templates": ["no placeholder"]}}, load_schema(CARDS))
    with pytest.raises(CardError, match="loader"):
        validate_card({k: v for k, v in card.items() if k != "loader"}, load_schema(CARDS))


def _table2():
    "Rows of Table 2 from the seed text: name -> (classes, train, test, metric)."
    text = SEED.read_text()
    block = text[text.index("Dataset\tClasses\tTrain size"):text.index("Table 2. Datasets examined")]
    rows = {}
    for line in block.strip().splitlines()[1:]:
        name, c, tr, te, m = line.split("\t")
        rows[name] = (int(c), int(tr.replace(",", "")), int(te.replace(",", "")), m)
    return rows


T2_NAMES = {"Food-101": "food101", "CIFAR-10": "cifar10", "CIFAR-100": "cifar100", "Birdsnap": "birdsnap", "SUN397": "sun397",
            "Stanford Cars": "stanford_cars", "FGVC Aircraft": "fgvc_aircraft", "Pascal VOC 2007 Classification": "voc2007",
            "Describable Textures": "dtd", "Oxford-IIIT Pets": "oxford_pets", "Caltech-101": "caltech101",
            "Oxford Flowers 102": "flowers102", "MNIST": "mnist", "Facial Emotion Recognition 2013": "fer2013", "STL-10": "stl10",
            "EuroSAT": "eurosat", "RESISC45": "resisc45", "GTSRB": "gtsrb", "KITTI": "kitti", "Country211": "country211",
            "PatchCamelyon": "pcam", "UCF101": "ucf101", "Kinetics700": "kinetics700", "CLEVR Counts": "clevr_counts",
            "Hateful Memes": "hateful_memes", "Rendered SST2": "rendered_sst2", "ImageNet": "imagenet"}
T2_METRIC = {"accuracy": "accuracy", "mean per class": "mean_per_class", "mean-per-class": "mean_per_class",
             "11-point mAP": "map_11point", "mean(top1, top5)": "mean_top1_top5", "ROC AUC": "roc_auc"}


@pytest.mark.skipif(not SEED.exists(), reason="paper text ../shared/seeds not present")
def test_paper_splits_transcribe_table_2():
    rows = _table2()
    assert set(rows) == set(T2_NAMES)
    for t2, name in T2_NAMES.items():
        c, tr, te, m = rows[t2]
        card = load_card(name, CARDS)
        p = card["splits"]["paper"]
        assert (p["classes"], p["train"], p["test"]) == (c, tr, te), name
        assert card["metric"] == T2_METRIC[m], name
        # every disagreement between Table 2 and the card's classes is recorded as an erratum
        if c != card["classes"]["count"]:
            assert any(str(c) in e for e in card["errata"]), name


def _prompts():
    text = (REF / "openai_data_prompts.md").read_text()
    out = {}
    for sec in re.split(r"^## ", text, flags=re.M)[1:]:
        title, body = sec.split("\n", 1)
        block = re.search(r"```bash\n(.*?)```", body, re.S).group(1)
        assigns = {n.targets[0].id: ast.literal_eval(n.value) for n in ast.parse(block).body}
        out[title.strip()] = assigns
    return out


PROMPT_CARDS = {"Birdsnap": "birdsnap", "CIFAR10": "cifar10", "CIFAR100": "cifar100", "CLEVRCounts": "clevr_counts",
                "Caltech101": "caltech101", "Country211": "country211", "DescribableTextures": "dtd", "EuroSAT": "eurosat",
                "FGVCAircraft": "fgvc_aircraft", "FacialEmotionRecognition2013": "fer2013", "Flowers102": "flowers102",
                "Food101": "food101", "GTSRB": "gtsrb", "HatefulMemes": "hateful_memes", "KITTI": "kitti",
                "Kinetics700": "kinetics700", "MNIST": "mnist", "OxfordPets": "oxford_pets", "PascalVOC2007": "voc2007",
                "PatchCamelyon": "pcam", "RESISC45": "resisc45", "SST2": "rendered_sst2", "STL10": "stl10",
                "SUN397": "sun397", "StanfordCars": "stanford_cars", "UCF101": "ucf101"}


@pytest.mark.skipif(not REF.exists(), reason="../shared/reference not present")
def test_zeroshot_prompts_match_openai_reference():
    ref = _prompts()
    assert set(ref) == set(PROMPT_CARDS)
    for title, name in PROMPT_CARDS.items():
        zs = load_card(name, CARDS)["zeroshot"]
        assert zs["classnames"] == ref[title]["classes"], name
        assert zs["templates"] == ref[title]["templates"], name
    inet = json.loads((REF / "openai_imagenet_prompts.json").read_text())
    for name in ("imagenet", "imagenetv2", "imagenet_sketch"):
        zs = load_card(name, CARDS)["zeroshot"]
        assert zs["classnames"] == inet["imagenet_classes"] and zs["templates"] == inet["imagenet_templates"]
    assert load_card("imagenet", CARDS)["zeroshot"]["templates_selected"] == inet["imagenet_templates_7_selected"]


def test_imagenet_subsets_point_into_imagenet():
    inet = load_card("imagenet", CARDS)
    for name in ("imagenet_r", "imagenet_a"):
        c = load_card(name, CARDS)
        idx = c["imagenet_indices"]
        assert len(idx) == 200 == len(set(idx)) and idx == sorted(idx)
        assert [inet["classes"]["ids"][i] for i in idx] == c["classes"]["ids"]
        assert [inet["classes"]["names"][i] for i in idx] == c["classes"]["names"]
    assert inet["classes"]["ids"] == sorted(inet["classes"]["ids"])   # ILSVRC index order = sorted WordNet ids


def test_known_errata_are_recorded():
    e = {n: " ".join(load_card(n, CARDS)["errata"]) for n in PAPER}
    assert "102 classes" in e["food101"] and "101" in e["food101"]
    assert "8 classes" in e["fer2013"] and "7" in e["fer2013"]
    assert "150 train / 50 validation / 100 test" in e["country211"] and "43,200" in e["country211"]
    assert "3,783" in e["ucf101"]


def test_published_country211_split_is_the_reference_one():
    pub = load_card("country211", CARDS)["splits"]["published"]
    assert (pub["train"], pub["valid"], pub["test"]) == (150 * 211, 50 * 211, 100 * 211)


def test_clevr_label_map_covers_counts_3_to_10():
    c = load_card("clevr_counts", CARDS)
    lm = c["loader"]["label_map"]
    assert sorted(lm) == sorted(str(k) for k in range(3, 11))
    assert [c["classes"]["names"][lm[str(k)]] for k in range(3, 11)] == [str(k) for k in range(3, 11)]


def test_tables_and_markdown_cover_every_card_and_erratum():
    cards = [load_card(n, CARDS) for n in ALL]
    assert len(cards_table(cards)) == len(ALL)
    errs = errata_table(cards)
    assert len(errs) == sum(len(c["errata"]) for c in cards)
    md = render_cards_markdown(CARDS)
    for c in cards:
        assert f"## {c['title']} (`{c['name']}`)" in md
        for e in c["errata"]:
            assert e.replace("|", "\\|") in md


def test_cards_are_self_contained():
    for p in CARDS.glob("*.yaml"):
        text = p.read_text()
        assert "../shared" not in repr(yaml.load(text, Loader=yaml.CSafeLoader).get("loader", {})), p
        assert "&id" not in text, f"{p}: YAML anchors make cards hard to read"


def test_imagenet_prompts_match_open_clip():
    "Peer check: open_clip_torch 3.3.0 ships the same 1,000 class names and 80 templates."
    import open_clip.zero_shot_metadata as z
    zs = load_card("imagenet", CARDS)["zeroshot"]
    assert list(z.IMAGENET_CLASSNAMES) == zs["classnames"]
    assert [t("{}") for t in z.OPENAI_IMAGENET_TEMPLATES] == zs["templates"]


CB = {"flowers": "flowers102", "gtsrb": "gtsrb", "country211": "country211", "eurosat": "eurosat", "fer2013": "fer2013",
      "caltech101": "caltech101", "imagenet1k": "imagenet", "clevr_count_all": "clevr_counts", "mnist": "mnist", "svhn": "svhn",
      "kitti_closest_vehicle_distance": "kitti", "pets": "oxford_pets", "pcam": "pcam"}


@pytest.mark.skipif(not REF.exists(), reason="../shared/reference not present")
def test_class_counts_agree_with_clip_benchmark():
    "An independent source (LAION-AI/CLIP_benchmark) has the same number of classes for every dataset both cover."
    cb = json.loads((REF / "clip_benchmark_en_classnames.json").read_text())
    for k, name in CB.items():
        assert len(cb[k]) == load_card(name, CARDS)["classes"]["count"], name
