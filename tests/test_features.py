"Feature extraction: penultimate layers, cache keys, atomic resumable chunks, bad input."
import numpy as np
import pytest
import torch
import torchvision
from torch import nn
from PIL import Image

from clip_repro.features import extract_features, penultimate, feature_key, module_fingerprint, clip_image_features


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # small tensors: one thread is faster



class Imgs(torch.utils.data.Dataset):
    def __init__(self, n, size=32, pil=False): self.n, self.size, self.pil = n, size, pil
    def __len__(self): return self.n
    def __getitem__(self, i):
        x = torch.rand(3, self.size, self.size, generator=torch.Generator().manual_seed(i))
        if self.pil: return Image.fromarray((x.permute(1, 2, 0).numpy() * 255).astype(np.uint8)), i % 4
        return x, i % 4


@pytest.mark.parametrize("name,dim", [("resnet18", 512), ("mobilenet_v3_small", 1024), ("efficientnet_b0", 1280)])
def test_penultimate_torchvision(name, dim):
    m = getattr(torchvision.models, name)(num_classes=3).eval()
    f = penultimate(m); x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        out = f(x)
        # the removed layer really was the classifier: applying it to the features gives the original logits
        head = m.fc if name == "resnet18" else m.classifier[-1]
        np.testing.assert_allclose(head(out), m(x), atol=1e-4)
    assert out.shape == (2, dim)


def test_penultimate_vit_takes_class_token_before_head():
    m = torchvision.models.VisionTransformer(image_size=32, patch_size=8, num_layers=1, num_heads=2, hidden_dim=16,
                                             mlp_dim=32, num_classes=5).eval()
    f = penultimate(m); x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        feats = f(x); np.testing.assert_allclose(m.heads.head(feats), m(x), atol=1e-5)
    assert feats.shape == (3, 16)


def test_penultimate_resnet_matches_logits():
    m = torchvision.models.resnet18(num_classes=6).eval(); x = torch.rand(2, 3, 40, 40)
    with torch.no_grad(): np.testing.assert_allclose(m.fc(penultimate(m)(x)), m(x), atol=1e-5)


def test_callable_encoder_and_transform(tmp_path):
    ds = Imgs(10, pil=True)
    enc = lambda x: x.mean((2, 3))  # (B, 3)
    import torchvision.transforms as T
    tf = T.Compose([T.Resize(16), T.ToTensor()])
    f = extract_features(enc, ds, tmp_path, split="train", transform=tf, batch_size=4, chunk_size=6, show_progress=False)
    assert f.X.shape == (10, 3) and f.X.dtype == np.float32 and list(f.y) == [i % 4 for i in range(10)]
    ref = np.stack([tf(ds[i][0]).mean((1, 2)).numpy() for i in range(10)])
    np.testing.assert_allclose(f.X, ref, atol=1e-6)
    # PIL images without a transform: a clear error
    with pytest.raises(TypeError, match="transform"):
        extract_features(enc, ds, None, show_progress=False)


def test_cache_key_identity():
    tf_a, tf_b = "Resize(224)", "Resize(336)"
    assert feature_key("m", "d", "test", tf_a) != feature_key("m", "d", "test", tf_b)
    assert feature_key("m", "d", "test", tf_a) != feature_key("m", "d2", "test", tf_a)
    m1, m2 = nn.Linear(3, 2), nn.Linear(3, 2)
    assert module_fingerprint(m1) != module_fingerprint(m2)
    m2.load_state_dict(m1.state_dict()); assert module_fingerprint(m1) == module_fingerprint(m2)
    ds = Imgs(5)
    assert feature_key(m1, ds, "x") == feature_key(m2, ds, "x")
    assert feature_key(m1.forward, ds, "x") == feature_key(m2.forward, ds, "x")  # bound methods keyed by their module


def test_resume_after_crash(tmp_path):
    ds = Imgs(50); net = penultimate(torchvision.models.resnet18(num_classes=2)).eval()
    seen = []
    def flaky(x):
        if len(seen) >= 3: raise RuntimeError("killed")
        seen.append(len(x)); return net(x)
    with pytest.raises(RuntimeError, match="killed"):
        extract_features(flaky, ds, tmp_path, key="k", batch_size=10, chunk_size=20, show_progress=False)
    folder = tmp_path / "artifacts/features/k"
    assert sorted(p.name for p in folder.iterdir()) == ["chunk_00000.npz"]  # one whole chunk, no partial files
    calls = []
    def counting(x): calls.append(len(x)); return net(x)
    f = extract_features(counting, ds, tmp_path, key="k", batch_size=10, chunk_size=20, show_progress=False)
    assert sum(calls) == 30  # only the two missing chunks were computed
    full = extract_features(net, ds, None, batch_size=10, show_progress=False)
    np.testing.assert_allclose(f.X, full.X, atol=1e-5)
    assert (folder / "meta.json").exists()


def test_nan_features_rejected(tmp_path):
    def bad(x):
        out = x.mean((2, 3)).clone(); out[1, 0] = float("nan"); return out
    with pytest.raises(ValueError, match=r"NaN/inf features for items \[1"):
        extract_features(bad, Imgs(4), tmp_path, key="n", show_progress=False)
    assert not list((tmp_path / "artifacts/features/n").glob("*.npz"))


def test_bad_encoder_output_and_empty():
    with pytest.raises(TypeError, match=r"\(batch, dims\)"):
        extract_features(lambda x: x.sum(), Imgs(2), None, show_progress=False)
    with pytest.raises(ValueError, match="empty"):
        extract_features(lambda x: x, Imgs(0), None, show_progress=False)
    with pytest.raises(TypeError, match="image_features"):
        clip_image_features(nn.Linear(2, 2))
