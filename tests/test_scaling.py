"""The width-scaled toy ResNets of the Figure 16 analog (notebook 21_B_zero_shot, issue 7 item 7).

Configuration arithmetic only (meta-device counts and one tiny forward/backward per size): no training here; the trained
runs are measured by the notebook at toy scale.
"""
import dataclasses

import pytest
import torch

from clip_repro.model import CLIP, CONFIGS, count_parameters, forward_flops
from clip_repro.zeroshot_analysis import training_flops

FAMILY = ["toy-rn-32-w8", "toy-rn-32-w12", "toy-rn-32-w16", "toy-rn-32-w24", "toy-rn-32"]
WIDTHS = [8, 12, 16, 24, 32]


def test_family_is_toy_rn_32_scaled_in_width():
    base = CONFIGS["toy-rn-32"]
    for name, w in zip(FAMILY, WIDTHS):
        want = dataclasses.replace(base, embed_dim=4 * w, vision_width=w, transformer_width=4 * w)
        assert CONFIGS[name] == want, name  # only the widths change: depth, resolution, context and vocabulary are shared


def test_size_and_flops_grow_with_width():
    params = [count_parameters(n) for n in FAMILY]
    flops = [forward_flops(n, "image") + forward_flops(n, "text") for n in FAMILY]
    assert params == sorted(params) and len(set(params)) == len(params)
    assert flops == sorted(flops) and len(set(flops)) == len(flops)
    assert 10 < flops[-1] / flops[0] < 20  # the notebook's prose: about 15x forward FLOPs per pair from w = 8 to w = 32


def test_notebook_toy_schedule_spans_20x_compute():
    # the toy schedule of the notebook (scaling_epochs [1, 2, 3, 8] over the 40,000-pair corpus, batch 128: 312 steps an epoch)
    models, epochs = ["toy-rn-32-w8", "toy-rn-32-w12", "toy-rn-32-w16", "toy-rn-32"], [1, 2, 3, 8]
    compute = [training_flops(m, 312 * 128 * e) for m, e in zip(models, epochs)]
    assert compute == sorted(compute)  # bigger models get more compute, as the paper's ResNets
    assert compute[-1] / compute[0] >= 20


@pytest.mark.parametrize("name", FAMILY[:-1])
def test_each_size_trains_a_step(name):
    torch.manual_seed(0)
    m = CLIP(CONFIGS[name])
    cfg = m.config
    x = torch.randn(4, 3, cfg.image_resolution, cfg.image_resolution)
    t = torch.zeros(4, cfg.context_length, dtype=torch.long); t[:, 0] = 1; t[:, 1:4] = torch.arange(2, 5); t[:, 4] = cfg.vocab_size - 1
    li, lt = m(x, t)
    assert li.shape == (4, 4) and torch.allclose(li, lt.t())
    y = torch.arange(4)
    loss = (torch.nn.functional.cross_entropy(li, y) + torch.nn.functional.cross_entropy(lt, y)) / 2
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters() if p.requires_grad)
