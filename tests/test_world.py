"""The synthetic world (clip_repro.world): determinism, shards against peers (webdataset, open_clip's reader),
planted ground truth at the stated rates (scipy binomial tests), data cards, bad input."""
import io, json, os, tarfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy.stats import binomtest

from clip_repro import world as W
from clip_repro.world import (World, WorldConfig, build_world, corpus_item, get_task, load_task, make_item, open_store,
                              rng_for, task_names, write_corpus, ShardReader, near_duplicate, data_card, card_path)


@pytest.fixture(scope="module")
def small():
    return WorldConfig(resolution=32, clip_frames=3)


@pytest.fixture(scope="module")
def built(tmp_path_factory, small):
    run = tmp_path_factory.mktemp("run")
    return build_world(run, small, corpus_size=120, shard_size=50, train_size=3, test_size=20)


def test_same_seed_same_bytes_fresh_worlds(small):
    a, b = World(small), World(small)
    for v in ("wit", "yfcc"):
        for i in range(25):
            ia, ca, ma = corpus_item(a, v, i)
            ib, cb, mb = corpus_item(b, v, i)
            assert ia.tobytes() == ib.tobytes() and ca == cb and ma == mb
    for t in task_names():
        sp = get_task(t).splits[-1]
        pa, ya, _ = make_item(a, t, sp, 1)
        pb, yb, _ = make_item(b, t, sp, 1)
        assert pa.tobytes() == pb.tobytes() and ya == yb, t


def test_other_seed_other_bytes(small):
    a, b = World(small), World(WorldConfig(seed=1, resolution=32, clip_frames=3))
    same = sum(corpus_item(a, "wit", i)[0].tobytes() == corpus_item(b, "wit", i)[0].tobytes() for i in range(10))
    assert same == 0


def test_items_do_not_depend_on_order(small):
    w = World(small)
    late = make_item(w, "toy/objects", "test", 7)[0]
    w2 = World(small)
    for i in range(7): make_item(w2, "toy/objects", "test", i)
    assert make_item(w2, "toy/objects", "test", 7)[0].tobytes() == late.tobytes()


def test_built_suite_equals_on_the_fly(built, small):
    for t in ("toy/objects", "toy/counts", "toy/actions", "toy/multilabel", "toy/gps", "toy/handwritten"):
        sp = get_task(t).splits[-1]
        a, b = load_task(t, sp, built), load_task(t, sp, None, config=small, n=3)
        for i in range(3):
            assert np.array_equal(a.images[i], b.images[i]) and a.labels[i] == b.labels[i], t


def test_shards_match_store_and_peers(built):
    import webdataset as wds
    d = built / "corpus-wit"
    st = open_store(d)
    assert len(st) == 120 and st.images.shape == (120, 32, 32, 3) and st.images.dtype == np.uint8
    sizes = json.loads((d / "sizes.json").read_text())
    assert sizes == {"shard-000000.tar": 50, "shard-000001.tar": 50, "shard-000002.tar": 20}
    # our reader
    r = ShardReader(d, resolution=32)
    got = list(r)
    assert r.skipped == 0 and len(got) == 120
    for i, (img, cap, m) in enumerate(got):
        assert np.array_equal(img, st.images[i]) and cap == st.captions[i] and m["index"] == i
    # peer: open_clip's size reader and an open_clip-style webdataset pipeline
    from open_clip_train.data import get_dataset_size
    n, nsh = get_dataset_size("::".join(st.shards()))
    assert (n, nsh) == (120, 3)
    pipe = wds.WebDataset(st.shards(), shardshuffle=False).decode("pilrgb").to_tuple("jpg;png;jpeg;webp", "txt")
    peer = list(pipe)
    assert len(peer) == 120 and peer[5][1] == st.captions[5]
    assert np.array_equal(np.asarray(peer[5][0].convert("RGB")), st.images[5])


def test_shard_bytes_are_reproducible(tmp_path, small):
    w = World(small)
    a = write_corpus(w, tmp_path / "a", "wit", 10, 10)
    b = write_corpus(World(small), tmp_path / "b", "wit", 10, 10)
    assert (a / "shard-000000.tar").read_bytes() == (b / "shard-000000.tar").read_bytes()


def test_corrupt_shard_raises_or_counts(tmp_path, small):
    d = write_corpus(World(small), tmp_path / "c", "wit", 20, 10)
    # damage the second shard: truncate it in the middle of a member
    s1 = d / "shard-000001.tar"; data = s1.read_bytes(); s1.write_bytes(data[: len(data) // 2 + 7])
    with pytest.raises(Exception):
        list(ShardReader(d, on_error="raise"))
    r = ShardReader(d, on_error="skip")
    got = list(r)
    assert r.skipped >= 1 and 10 <= len(got) < 20
    assert all(m["index"] == int(m["index"]) for _, _, m in got)
    # a well-formed tar whose sample lacks its caption: an error, never a silent sample
    bad = tmp_path / "bad.tar"
    with tarfile.open(bad, "w") as tf:
        buf = io.BytesIO(); from PIL import Image; Image.new("RGB", (32, 32)).save(buf, "PNG")
        for name, blob in (("000000000.png", buf.getvalue()), ("000000000.json", b'{"index": 0}')):
            ti = tarfile.TarInfo(name); ti.size = len(blob); tf.addfile(ti, io.BytesIO(blob))
    with pytest.raises(ValueError, match="lacks"):
        list(ShardReader([bad]))
    r = ShardReader([bad], on_error="skip"); assert list(r) == [] and r.skipped == 1
    with pytest.raises(FileNotFoundError, match="not a world corpus"):
        open_store(tmp_path)
    with pytest.raises(ValueError, match="on_error"):
        ShardReader(d, on_error="ignore")


def _thumb(a):
    from PIL import Image
    g = np.asarray(Image.fromarray(np.asarray(a)).convert("L").resize((8, 8), Image.BOX), np.float32).reshape(-1)
    return (g - g.mean()) / (g.std() + 1e-6)


def test_planted_duplicates_are_recorded_and_findable(built, small):
    plan = json.loads((built / "suite" / "planted_duplicates.json").read_text())
    assert plan["toy/regions"] and len(plan["toy/regions"]) == round(get_task("toy/regions").dup_rate * 20)
    for v in ("wit", "yfcc"):
        st = open_store(built / f"corpus-{v}")
        recs = st.info["planted_duplicates"]
        assert len(recs) == sum(len(ix) for ix in plan.values())
        again = W.planted_duplicates(World(small), plan, v, len(st))   # the ground truth is reproducible
        T = np.stack([_thumb(st.images[i]) for i in range(len(st))])
        pair, other = [], []
        for r in recs:
            assert np.array_equal(st.images[r["corpus_index"]], again[r["corpus_index"]][0])
            assert st.meta()[r["corpus_index"]]["planted_duplicate"]["index"] == r["index"]
            corr = T @ _thumb(load_task(r["task"], "test", built).images[r["index"]]) / 64
            pair.append(corr[r["corpus_index"]]); other.append(np.median(corr))
        # on average a planted copy resembles its source far more than a typical corpus image does
        assert np.mean(pair) > np.mean(other) + 0.2, (pair, other)


def test_near_duplicate_uses_appendix_c_manipulations():
    img = np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    seen = set()
    for i in range(40):
        out, ops = near_duplicate(img, rng_for(0, "nd", i))
        assert out.shape == img.shape and out.dtype == np.uint8 and len(ops) >= 2
        seen |= set(ops)
    assert seen == set(W.MANIPULATIONS)


def test_bias_rate_matches_configuration():
    cfg = WorldConfig(resolution=32, kinds={"people": 1.0}, bias_rate=0.4, bias_base_rate=0.05)
    w = World(cfg)
    n = {True: [0, 0], False: [0, 0]}
    for i in range(600):
        _, cap, m = corpus_item(w, "wit", i)
        tgt = m["group"] == cfg.bias_group
        n[tgt][0] += 1; n[tgt][1] += int(m["planted_bias"])
        assert (cfg.bias_word in cap) == m["planted_bias"]
        if m["planted_bias"]:  # the word names the figure(s) instead of the neutral noun
            assert not any(w in cap.split() for w in ("person", "figure", "someone", "people", "figures", "pair"))
    assert binomtest(n[True][1], n[True][0], 0.4).pvalue > 1e-3
    assert binomtest(n[False][1], n[False][0], 0.05).pvalue > 1e-3


def test_mention_rate_controls_captions():
    for rate in (0.2, 0.9):
        cfg = WorldConfig(resolution=32, mention={**W.DEFAULT_MENTION, "colour": rate})
        w = World(cfg); hits = 0; N = 400
        for i in range(N):
            m = w.sample(rng_for(0, "mr", i), "object", text=False)
            cap = w.caption(m, rng_for(0, "mrc", i))
            col = m["objects"][0]["colour"]
            hits += any(c in cap.split() for c in [col] + W.COLOUR_SYNONYMS.get(col, []))
        assert binomtest(hits, N, rate).pvalue > 1e-3, (rate, hits)


def test_cards_on_disk_match_code_and_schema(root):
    import jsonschema
    schema = json.loads((root / "data_cards" / "schema.json").read_text())
    for t in task_names():
        p = card_path(root / "data_cards", t)
        card = yaml.safe_load(p.read_text())
        jsonschema.validate(card, schema)
        code = data_card(t, card["splits"])
        assert card == code, f"{p} is stale: rerun clip_repro.world.write_data_cards"


def test_labels_in_range(small):
    w = World(small)
    for t in task_names():
        spec = get_task(t); sp = spec.splits[-1]
        for i in range(4):
            px, y, m = make_item(w, t, sp, i)
            if spec.task in ("classification", "video"):
                k = len(W.task_classnames(t, small)); assert 0 <= y < k, (t, y)
            elif spec.task == "binary": assert y in (0, 1)
            elif spec.task == "multilabel": assert len(y) == 20 and 1 <= sum(y) <= 3
            elif spec.task == "geolocation": assert -90 <= y[0] <= 90 and -180 <= y[1] <= 180
            elif spec.task == "retrieval": assert len(y) == 5 and all(isinstance(c, str) and c for c in y)


def test_bad_input(small):
    w = World(small)
    with pytest.raises(KeyError, match="unknown toy task"): load_task("toy/imagenet", "test")
    with pytest.raises(KeyError, match="has splits"): load_task("toy/objects-a", "train", config=small, n=1)
    with pytest.raises(ValueError, match="does not fit"):
        World(WorldConfig(resolution=16)).sample(rng_for(0, "x", 0), "count", count=10)
    with pytest.raises(ValueError, match="0..10"): w.sample(rng_for(0, "x", 0), "count", count=11)
    with pytest.raises(ValueError, match="resolution"): WorldConfig(resolution=10)
    with pytest.raises(ValueError, match="expected 'wit' or 'yfcc'"): corpus_item(w, "laion", 0)
    with pytest.raises(ValueError, match="uint8"): near_duplicate(np.zeros((4, 4)), rng_for(0, "x", 0))
    with pytest.raises(ValueError, match="render_clip"): w.render_clip(w.sample(rng_for(0, "x", 0)))


def test_objectnet_and_youtube_bb_analogs(small):
    """ObjectNet analog: the first OBJECTNET_FAMILIES families, turned 90-270 degrees, labelled by family (8 source classes each);
    YouTube-BB analog: the ImageNet-Vid analog's clips rendered at half resolution."""
    import clip_repro.world as W
    w = World(small)
    on = get_task("toy/objects-objectnet")
    assert on.splits == ("test",) and list(on.classnames) == W.SUPERCATEGORIES[:W.OBJECTNET_FAMILIES]
    for i in range(40):
        px, y, m = make_item(w, "toy/objects-objectnet", "test", i)
        o = m["objects"][0]
        assert 0 <= y < W.OBJECTNET_FAMILIES and w.categories[o["category"]].super_id == y and 90 <= o["angle"] <= 270
    clip, y, m = make_item(w, "toy/objects-ytbb", "test", 0)
    assert clip.shape == (small.clip_frames, 32, 32, 3) and m["style"] == "lowres2"
    assert y == w.categories[m["objects"][0]["category"]].super_id
    # half resolution: lowres2 is the photo rendering box-averaged over 2 x 2 pixels and upsampled bilinearly (PIL)
    from PIL import Image
    m = w.sample(rng_for(0, "lowres2", 0), "object")
    photo = w.render(m).astype(np.float64)
    small_ = photo.reshape(16, 2, 16, 2, 3).mean((1, 3)).astype(np.uint8)
    expected = np.asarray(Image.fromarray(small_).resize((32, 32), Image.BILINEAR))
    np.testing.assert_array_equal(w.render({**m, "style": "lowres2"}), expected)
