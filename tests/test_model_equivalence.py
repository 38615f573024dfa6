"""Our CLIP models against the reference, open_clip_torch==3.3.0 (issue 3, item 4).

Random weights, fp32, CPU, a batch of 2: open_clip -> state dict -> our `build_model` gives the same `encode_image`,
`encode_text` and logits within 1e-4, and our model -> state dict -> open_clip does too. Parameter counts of all nine
paper configurations equal open_clip's (built on the meta device), and so do the forward FLOPs of the ViTs.
"""
import copy

import pytest
import torch

import open_clip

from clip_repro.model import CLIP, CONFIGS, PAPER_MODELS, build_model, count_parameters, forward_flops, randomize_batchnorm

OPEN_CLIP_NAMES = {"RN50": "RN50-quickgelu", "RN101": "RN101-quickgelu", "RN50x4": "RN50x4-quickgelu",
                   "RN50x16": "RN50x16-quickgelu", "RN50x64": "RN50x64-quickgelu", "ViT-B/32": "ViT-B-32-quickgelu",
                   "ViT-B/16": "ViT-B-16-quickgelu", "ViT-L/14": "ViT-L-14-quickgelu", "ViT-L/14@336px": "ViT-L-14-336-quickgelu"}
CAPTIONS = ["a photo of a dog.", "two cats sleeping on a red sofa, seen from above!"]
TOL = dict(atol=1e-4, rtol=1e-4)


randomize = randomize_batchnorm  # random BatchNorm affine/statistics (the default init zeroes the last BN of each block)


@pytest.fixture(scope="module", params=["RN50", "ViT-B/32"])
def pair(request):
    "(name, open_clip model with random weights, our model built from its state dict)."
    torch.set_num_threads(2)
    torch.manual_seed(0)
    ref = randomize(open_clip.create_model(OPEN_CLIP_NAMES[request.param]), 1).eval()
    ours = build_model(ref.state_dict())
    return request.param, ref, ours


def inputs(cfg, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(2, 3, cfg.image_resolution, cfg.image_resolution, generator=g)
    return images, open_clip.tokenize(CAPTIONS)


def assert_same(ref, ours, images, text):
    "encode_image and encode_text agree within 1e-4 (one pass each per model: the machine is small)."
    with torch.no_grad():
        a = ref.encode_image(images)
        assert a.abs().max() > 0.1  # the comparison is not vacuous
        torch.testing.assert_close(ours.encode_image(images), a, **TOL)
        torch.testing.assert_close(ours.encode_text(text), ref.encode_text(text), **TOL)


def test_open_clip_to_ours(pair):
    name, ref, ours = pair
    assert ours.config == CONFIGS[name]  # configuration read off the tensor shapes
    torch.testing.assert_close(ours.logit_scale, ref.logit_scale)
    assert_same(ref, ours, *inputs(ours.config))


def test_ours_to_open_clip(pair):
    name, ref, _ = pair
    torch.manual_seed(2)
    ours = randomize(CLIP(CONFIGS[name]), 3).eval()
    rev = copy.deepcopy(ref)
    rev.load_state_dict(ours.state_dict(), strict=True)  # our names and shapes are open_clip's (and OpenAI's)
    assert_same(rev, ours, *inputs(ours.config, seed=1))


@pytest.mark.parametrize("name", PAPER_MODELS)
def test_parameter_counts_equal_open_clip(name):
    with torch.device("meta"):
        ref = open_clip.create_model(OPEN_CLIP_NAMES[name], device="meta")
    assert count_parameters(name) == sum(p.numel() for p in ref.parameters())
    assert count_parameters(name, "visual") == sum(p.numel() for p in ref.visual.parameters())


@pytest.mark.parametrize("name", ["ViT-B/32", "ViT-L/14@336px"])
def test_flops_equal_open_clip(name):
    "Same counter on open_clip's model: identical FLOPs for the ViT image and text towers."
    from torch.utils.flop_counter import FlopCounterMode
    cfg = CONFIGS[name]
    with torch.device("meta"):
        ref = open_clip.create_model(OPEN_CLIP_NAMES[name], device="meta").eval()
        x = torch.empty(1, 3, cfg.image_resolution, cfg.image_resolution)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad(): ref.encode_image(x)
    assert forward_flops(name, "image") == counter.get_total_flops()


def test_paper_configs_match_open_clip_json():
    "The nine configurations equal the architecture files open_clip ships (vision and text towers)."
    for name in PAPER_MODELS:
        c, oc = CONFIGS[name], open_clip.get_model_config(OPEN_CLIP_NAMES[name])
        v, t = oc["vision_cfg"], oc["text_cfg"]
        assert c.embed_dim == oc["embed_dim"] and c.image_resolution == v["image_size"]
        assert c.vision_layers == (tuple(v["layers"]) if isinstance(v["layers"], list) else v["layers"])
        assert c.vision_width == v["width"] and c.vision_patch_size == v.get("patch_size")
        assert (c.context_length, c.vocab_size, c.transformer_width, c.transformer_heads, c.transformer_layers) == \
            (t["context_length"], t["vocab_size"], t["width"], t["heads"], t["layers"])
