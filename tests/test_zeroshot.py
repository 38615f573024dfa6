"""Zero-shot classifiers against open_clip's `build_zero_shot_classifier` (the peer), same model and tokenizer."""
import open_clip
import pytest
import torch
from open_clip.model import CLIP as OpenCLIP, CLIPTextCfg, CLIPVisionCfg
from open_clip.zero_shot_classifier import build_zero_shot_classifier

from clip_repro.tokenizer import tokenize
from clip_repro.zeroshot import topk_accuracy, zero_shot_classifier, zero_shot_logits


@pytest.fixture(scope="module")
def tiny_open_clip():
    torch.manual_seed(0)
    m = OpenCLIP(embed_dim=32, vision_cfg=CLIPVisionCfg(layers=1, width=64, patch_size=8, image_size=32),
                 text_cfg=CLIPTextCfg(context_length=77, vocab_size=49408, width=64, heads=2, layers=2),
                 quick_gelu=True).eval()
    return m


def test_classifier_equals_open_clip(tiny_open_clip):
    classes = ["tench", "goldfish", "great white shark", "crane", "crane (bird)"]
    templates = ["a photo of a {}.", "a bad photo of the {}.", "itap of a {}.", "a {} in a video game."]
    ours = zero_shot_classifier(tiny_open_clip, classes, templates, tokenizer=tokenize, show_progress=False)
    ref = build_zero_shot_classifier(tiny_open_clip, open_clip.get_tokenizer("RN50-quickgelu"), classes, templates,
                                     num_classes_per_batch=2)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)


def test_synonyms_average_over_every_synonym_and_template(tiny_open_clip):
    enc = lambda texts: torch.nn.functional.normalize(tiny_open_clip.encode_text(tokenize(texts)), dim=-1)
    W = zero_shot_classifier(tiny_open_clip, [["angry", "furious"]], ["a photo of a {} looking face.", "a {} face."],
                             show_progress=False)
    prompts = ["a photo of a angry looking face.", "a angry face.", "a photo of a furious looking face.", "a furious face."]
    torch.testing.assert_close(W[:, 0], torch.nn.functional.normalize(enc(prompts).mean(0), dim=-1), atol=1e-5, rtol=1e-5)


def test_topk_matches_sklearn():
    from sklearn.metrics import top_k_accuracy_score
    g = torch.Generator().manual_seed(1)
    logits, y = torch.randn(200, 10, generator=g), torch.randint(0, 10, (200,), generator=g)
    ours = topk_accuracy(logits, y, ks=(1, 5))
    for k in (1, 5):
        assert ours[k] == pytest.approx(top_k_accuracy_score(y.numpy(), logits.numpy(), k=k, labels=list(range(10))))
    img = torch.randn(4, 32)
    assert zero_shot_logits(img, torch.nn.functional.normalize(torch.randn(32, 3), dim=0), 100.0).abs().max() <= 100.0 + 1e-4
