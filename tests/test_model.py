"""Checkpoints, preprocessing, bad input and the toy configurations of `clip_repro.model` (issue 3, items 2, 3, 6, 7).

Everything here uses tiny models and local files: nothing touches the network.
"""
import hashlib, math, shutil, urllib.error, urllib.request

import numpy as np
import pytest
import torch
from PIL import Image

import clip_repro.model as M
from clip_repro.model import (CLIP, CONFIGS, CheckpointError, available_models, build_model, download_checkpoint,
                              image_transform, load, load_checkpoint, make_config, save_checkpoint)

torch.set_num_threads(2)


def tokens(cfg, n=2, length=5, seed=0):
    "Token ids as CLIP's tokenizer lays them out: SOT, words, EOT (the largest id), zero padding."
    g = torch.Generator().manual_seed(seed)
    t = torch.zeros(n, cfg.context_length, dtype=torch.long)
    t[:, 0] = cfg.vocab_size - 2
    t[:, 1:length] = torch.randint(1, cfg.vocab_size - 2, (n, length - 1), generator=g)
    t[:, length] = cfg.vocab_size - 1
    return t


@pytest.fixture(scope="module", params=["toy-rn", "toy-vit"])
def toy(request):
    torch.manual_seed(0)
    m = CLIP(CONFIGS[request.param]).eval()
    r = m.config.image_resolution
    return m, torch.randn(2, 3, r, r), tokens(m.config)


def test_forward_is_scaled_cosine_similarity(toy):
    m, x, t = toy
    with torch.no_grad():
        i, e = m.encode_image(x), m.encode_text(t)
        lpi, lpt = m(x, t)
    expected = math.exp(m.logit_scale.item()) * (i / i.norm(dim=-1, keepdim=True)) @ (e / e.norm(dim=-1, keepdim=True)).t()
    torch.testing.assert_close(lpi, expected)
    torch.testing.assert_close(lpt, expected.t())
    assert m.logit_scale.item() == pytest.approx(math.log(1 / 0.07))


def test_logit_scale_capped_at_100(toy):
    m, x, t = toy
    m2 = build_model(m.state_dict())
    with torch.no_grad():
        m2.logit_scale.fill_(10.0)
        a, _ = m2(x, t)
        m2.logit_scale.fill_(math.log(100))
        b, _ = m2(x, t)
    torch.testing.assert_close(a, b)  # the forward pass never uses a temperature above 100
    m2.logit_scale.data.fill_(10.0); m2.clamp_logit_scale_()
    assert m2.logit_scale.item() == pytest.approx(math.log(100))


def test_gradients_reach_every_parameter(toy):
    m, x, t = toy
    m2 = build_model(m.state_dict()).train()
    lpi, lpt = m2(x, t)
    labels = torch.arange(2)
    loss = (torch.nn.functional.cross_entropy(lpi, labels) + torch.nn.functional.cross_entropy(lpt, labels)) / 2
    loss.backward()
    # every parameter gets a gradient (bn3 weights start at zero but still receive gradient)
    assert [n for n, p in m2.named_parameters() if p.grad is None] == []


def test_image_features(toy):
    m, x, _ = toy
    with torch.no_grad():
        f = m.image_features(x)
        if m.config.is_vit:
            assert f.shape == (2, m.config.vision_width)
            torch.testing.assert_close(f @ m.visual.proj, m.encode_image(x))
        else:
            torch.testing.assert_close(f, m.encode_image(x))
            assert m.image_features(x, resnet_pool="mean").shape == (2, 32 * m.config.vision_width)
    with pytest.raises(ValueError, match="'attn' or 'mean'"):
        m.image_features(x, resnet_pool="max")


def test_bad_inputs(toy):
    m, x, t = toy
    r = m.config.image_resolution
    with pytest.raises(ValueError, match=rf"\(N, 3, {r}, {r}\)"):
        m.encode_image(torch.randn(2, 1, r, r))  # one channel
    with pytest.raises(ValueError, match=rf"{r} px"):
        m.encode_image(torch.randn(2, 3, r + 8, r + 8))  # wrong size
    with pytest.raises(ValueError, match="float tensor"):
        m.encode_image(x[0])  # no batch dimension
    with pytest.raises(TypeError, match="floating-point"):
        m.encode_image(torch.zeros(2, 3, r, r, dtype=torch.uint8))
    with pytest.raises(ValueError, match=f"context_length={m.config.context_length}"):
        m.encode_text(t[:, :m.config.context_length // 2])
    with pytest.raises(ValueError, match=r"\[0, 4096\)"):
        m.encode_text(t + 10)
    with pytest.raises(ValueError, match="integer tensor"):
        m.encode_text(t.float())


def test_state_dict_mismatch_names_keys():
    m = CLIP(CONFIGS["toy-vit"])
    sd = m.state_dict()
    sd["visual.bogus"] = sd.pop("ln_final.bias")
    with pytest.raises(CheckpointError, match="missing keys: ln_final.bias.*unexpected keys: visual.bogus"):
        build_model(sd)
    sd = CLIP(CONFIGS["toy-vit"]).state_dict()
    sd["ln_final.bias"] = torch.zeros(7)
    with pytest.raises(CheckpointError, match=r"ln_final.bias: checkpoint \(7,\) vs model \(128,\)"):
        build_model(sd)
    other = CLIP(make_config("toy-vit", vocab_size=100)).state_dict()
    with pytest.raises(CheckpointError, match="token_embedding.weight"):
        M.load_state_dict_strict(CLIP(CONFIGS["toy-vit"]), other)


def test_unknown_name_lists_valid_ones():
    with pytest.raises(ValueError) as e:
        load("ViT-B/64")
    for n in available_models():
        assert n in str(e.value)
    assert available_models() == list(M.PAPER_MODELS)
    with pytest.raises(ValueError, match="toy-vit"):
        make_config("toy-vit-xl")


def test_config_inferred_for_every_paper_model():
    "A state dict's shapes give back the configuration (on meta tensors: no memory)."
    for name in M.PAPER_MODELS:
        with torch.device("meta"):
            sd = CLIP(CONFIGS[name]).state_dict()
        assert M.config_from_state_dict(sd) == CONFIGS[name]


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning", "ignore::FutureWarning")
@pytest.mark.parametrize("name", ["toy-rn", "toy-vit"])
def test_checkpoint_formats_roundtrip(tmp_path, name):
    "Plain state dict, OpenAI-style fp16 state dict with extra keys, TorchScript archive, our format: same model."
    torch.manual_seed(1)
    m = CLIP(CONFIGS[name]).eval()
    r = m.config.image_resolution
    x, t = torch.randn(2, 3, r, r), tokens(m.config)
    with torch.no_grad():
        ref_i, ref_t = m.encode_image(x), m.encode_text(t)
    torch.save(m.state_dict(), tmp_path / "plain.pt")
    half = {k: (v.half() if v.is_floating_point() else v) for k, v in m.state_dict().items()}
    half.update(input_resolution=torch.tensor(r), context_length=torch.tensor(m.config.context_length), vocab_size=torch.tensor(4096))
    torch.save(half, tmp_path / "half.pt")
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in m.state_dict().items()}}, tmp_path / "ddp.pt")
    save_checkpoint(m, tmp_path / "ours.pt", step=7)
    files = [("plain.pt", 1e-6), ("ddp.pt", 1e-6), ("ours.pt", 1e-6), ("half.pt", 5e-2)]
    if name == "toy-vit":  # tracing is slow on a shared CPU: one TorchScript archive is enough
        traced = torch.jit.trace_module(m, {"forward": (x, t), "encode_image": (x,), "encode_text": (t,)})
        torch.jit.save(traced, str(tmp_path / "archive.pt"))
        assert M._is_torchscript(tmp_path / "archive.pt") and not M._is_torchscript(tmp_path / "plain.pt")
        files.append(("archive.pt", 1e-6))
    for f, tol in files:
        m2, preprocess = load(tmp_path / f)
        assert m2.config == m.config and not m2.training
        assert m2.visual.conv1.weight.dtype == torch.float32
        with torch.no_grad():
            torch.testing.assert_close(m2.encode_image(x), ref_i, atol=tol, rtol=tol)
            torch.testing.assert_close(m2.encode_text(t), ref_t, atol=tol, rtol=tol)
    if name != "toy-vit": return
    jm, pre = load(tmp_path / "archive.pt", jit=True)
    assert isinstance(jm, torch.jit.ScriptModule)
    with torch.no_grad():
        torch.testing.assert_close(jm.encode_image(x), ref_i)
    assert pre.transforms[1].size == (r, r)
    with pytest.raises(CheckpointError, match="TorchScript"):
        load(tmp_path / "plain.pt", jit=True)


def test_plain_pickles_are_weights_only(tmp_path):
    "A pickle that would run code on load is refused (weights_only=True)."
    class Evil:
        def __reduce__(self):
            return (shutil.rmtree, (str(tmp_path / "victim"),))
    (tmp_path / "victim").mkdir()
    torch.save({"x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="weights_only=True"):
        load_checkpoint(tmp_path / "evil.pt")
    assert (tmp_path / "victim").is_dir()
    torch.save({"a": 1}, tmp_path / "notsd.pt")
    with pytest.raises(CheckpointError, match="not a state dict"):
        load_checkpoint(tmp_path / "notsd.pt")
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")


def _served(tmp_path, payload: bytes):
    "A file:// URL laid out like OpenAI's (the sha256 of the bytes in its path)."
    digest = hashlib.sha256(payload).hexdigest()
    d = tmp_path / "server" / digest
    d.mkdir(parents=True)
    (d / "tiny.pt").write_bytes(payload)
    return (d / "tiny.pt").as_uri(), digest


def test_download_cache_and_sha256(tmp_path, monkeypatch):
    m = CLIP(CONFIGS["toy-vit"])
    torch.save(m.state_dict(), tmp_path / "src.pt")
    url, digest = _served(tmp_path, (tmp_path / "src.pt").read_bytes())
    cache = tmp_path / "cache"
    got = download_checkpoint(url, cache)
    assert got == cache / "tiny.pt" and hashlib.sha256(got.read_bytes()).hexdigest() == digest
    # a second call uses the cache: it must not touch the network
    def no_network(*a, **k): raise AssertionError("network used although the file is cached")
    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    assert download_checkpoint(url, cache) == got
    monkeypatch.undo()
    # a corrupted cached file is fetched again
    got.write_bytes(b"corrupt")
    with pytest.warns(UserWarning, match="does not match"):
        download_checkpoint(url, cache)
    assert hashlib.sha256(got.read_bytes()).hexdigest() == digest
    # a download whose bytes do not match the expected digest is refused and not kept
    with pytest.raises(CheckpointError, match="sha256"):
        download_checkpoint(url, tmp_path / "cache2", sha256="0" * 64)
    assert not (tmp_path / "cache2" / "tiny.pt").exists()


def test_offline_and_not_cached_is_a_clear_error(tmp_path, monkeypatch):
    def offline(*a, **k): raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")
    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(RuntimeError, match="offline.*copy the file to .*RN50.pt") as e:
        load("RN50", download_root=tmp_path)
    assert "afeb0e10f9e5a86da6080e35cf09123aca3b358a0c3e3b6c78a7b63bc04b6762" in str(e.value)  # says which file
    assert list(tmp_path.iterdir()) == []  # nothing half-written left behind


def test_cached_name_loads_without_network(tmp_path, monkeypatch):
    "A file placed in the cache under OpenAI's name, with the right sha256, is used as is."
    m = CLIP(CONFIGS["toy-vit"]).eval()
    torch.save(m.state_dict(), tmp_path / "ViT-B-32.pt")
    digest = hashlib.sha256((tmp_path / "ViT-B-32.pt").read_bytes()).hexdigest()
    monkeypatch.setitem(M._MODELS, "ViT-B/32", f"https://example.invalid/clip/models/{digest}/ViT-B-32.pt")
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: (_ for _ in ()).throw(AssertionError("network")))
    m2, _ = load("ViT-B/32", download_root=tmp_path)
    assert m2.config == m.config


def test_openai_urls_carry_sha256():
    for name, url in M._MODELS.items():
        assert M._sha_from_url(url) is not None, name
    assert len(set(M._MODELS.values())) == 9


def test_preprocess_equals_open_clip():
    "Our torchvision pipeline gives the tensors open_clip's OpenAI preprocessing gives."
    import open_clip
    from open_clip.transform import image_transform as oc_transform
    rng = np.random.default_rng(0)
    for size, mode in [((300, 200), "RGB"), ((97, 311), "L"), ((224, 224), "RGBA")]:
        img = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 4), dtype=np.uint8)[..., :len(mode) if mode != "L" else 1].squeeze(), mode)
        for res in (224, 32):
            ref = oc_transform(res, is_train=False, mean=M.OPENAI_MEAN, std=M.OPENAI_STD)
            torch.testing.assert_close(image_transform(res)(img), ref(img))


def test_shortcuts_are_exact(toy):
    "Stopping the text at the last EOT and computing only the class token in the ViT's last block change nothing."
    m, x, _ = toy
    c = m.config
    t = torch.cat([tokens(c, 1, length=3, seed=1), tokens(c, 1, length=30, seed=2), tokens(c, 1, length=c.context_length - 1, seed=3)])
    with torch.no_grad():
        full = m.transformer(m.token_embedding(t) + m.positional_embedding)  # every position, all 77
        ref = m.ln_final(full)[torch.arange(3), t.argmax(-1)] @ m.text_projection
        torch.testing.assert_close(m.encode_text(t), ref, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(m.encode_text(t[:2]), ref[:2], atol=1e-5, rtol=1e-5)  # batch ends at position 30
        torch.testing.assert_close(m.encode_text(t[:1]), ref[:1], atol=1e-5, rtol=1e-5)
        if c.is_vit:
            torch.testing.assert_close(m.visual.features(x, shortcut=False), m.visual.features(x), atol=1e-5, rtol=1e-5)
