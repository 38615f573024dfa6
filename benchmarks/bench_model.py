"""Throughput of our CLIP models against open_clip_torch 3.3.0 (issue 3, item 8).

Same configuration, same weights (open_clip's model is loaded with our state dict), same inputs, timed interleaved in
one process (ours and theirs alternate, the order flipping each repeat, so drifts in machine load hit both alike).
For each model: encode_image and encode_text throughput (no grad, eval mode) and one training step (forward of both
towers, symmetric contrastive loss, backward, AdamW step) in train mode. The printed ratio is
ours / open_clip in items per second: above 1.0 means ours is faster.

    .venv/bin/python benchmarks/bench_model.py                      # defaults: ViT-B/32, RN50, toy-vit, toy-rn
    .venv/bin/python benchmarks/bench_model.py --models toy-vit --repeats 9 --threads 2 --toy-batch 64
"""
from __future__ import annotations

import argparse, copy, sys

import torch
import torch.nn.functional as F

import open_clip
from open_clip.model import CLIP as OpenCLIP, CLIPTextCfg, CLIPVisionCfg

from clip_repro.model import CLIP, CONFIGS, CLIPConfig

from _timing import bests, interleaved, medians


def open_clip_twin(cfg: CLIPConfig) -> torch.nn.Module:
    "open_clip's model with the same architecture as `cfg` (QuickGELU, OpenAI layout)."
    vision = CLIPVisionCfg(layers=cfg.vision_layers, width=cfg.vision_width, patch_size=cfg.vision_patch_size or 16,
                           image_size=cfg.image_resolution)
    text = CLIPTextCfg(context_length=cfg.context_length, vocab_size=cfg.vocab_size, width=cfg.transformer_width,
                       heads=cfg.transformer_heads, layers=cfg.transformer_layers)
    return OpenCLIP(cfg.embed_dim, vision_cfg=vision, text_cfg=text, quick_gelu=True)


def make_inputs(cfg: CLIPConfig, n: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(n, 3, cfg.image_resolution, cfg.image_resolution, generator=g)
    text = torch.zeros(n, cfg.context_length, dtype=torch.long)
    for i in range(n):  # captions of 8..20 tokens: SOT, words, EOT (the largest id)
        L = 8 + i % 13
        text[i, 0], text[i, L] = cfg.vocab_size - 2, cfg.vocab_size - 1
        text[i, 1:L] = torch.randint(1, cfg.vocab_size - 2, (L - 1,), generator=g)
    return images, text


def loss_of(image_features, text_features, logit_scale):
    img, txt = F.normalize(image_features, dim=-1), F.normalize(text_features, dim=-1)
    logits = logit_scale.exp().clamp(max=100) * img @ txt.t()
    labels = torch.arange(len(img))
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)) / 2


def timed(fns: dict, repeats: int) -> dict:
    "Median and best seconds per call of each function, calls interleaved (one warm-up call each first)."
    times = interleaved(fns, repeats)
    return {**medians(times), **{f"{k}_best": v for k, v in bests(times).items()}}


def bench(name: str, batch: int, repeats: int) -> list[dict]:
    cfg = CONFIGS[name]
    torch.manual_seed(0)
    ours = CLIP(cfg).eval()
    theirs = open_clip_twin(cfg).eval()
    theirs.load_state_dict(ours.state_dict(), strict=True)
    images, text = make_inputs(cfg, batch)
    with torch.no_grad():  # same weights, same inputs: the same numbers (else the timing compares different work)
        torch.testing.assert_close(ours.encode_image(images), theirs.encode_image(images), atol=1e-4, rtol=1e-4)
    rows = []

    def no_grad(f, x):
        def run():
            with torch.no_grad(): f(x)
        return run
    t = timed({"ours": no_grad(ours.encode_image, images), "open_clip": no_grad(theirs.encode_image, images)}, repeats)
    rows.append(dict(model=name, task="encode_image", batch=batch, **t))
    t = timed({"ours": no_grad(ours.encode_text, text), "open_clip": no_grad(theirs.encode_text, text)}, repeats)
    rows.append(dict(model=name, task="encode_text", batch=batch, **t))

    def train_step(model):
        model = copy.deepcopy(model).train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-5, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.2)
        def run():
            opt.zero_grad(set_to_none=True)
            loss = loss_of(model.encode_image(images), model.encode_text(text), model.logit_scale)
            loss.backward(); opt.step()
        return run
    t = timed({"ours": train_step(ours), "open_clip": train_step(theirs)}, repeats)
    rows.append(dict(model=name, task="train_step(AdamW)", batch=batch, **t))
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["ViT-B/32", "RN50", "toy-vit", "toy-rn"])
    p.add_argument("--batch", type=int, default=2, help="images / captions per call (small: the default run is <= 3 min on 2 cores)")
    p.add_argument("--toy-batch", type=int, default=16, help="batch for the toy configurations")
    p.add_argument("--repeats", type=int, default=5, help="timed calls per implementation (median reported)")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1: least disturbed by other load)")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    print(f"torch {torch.__version__}, open_clip {open_clip.__version__}, {a.threads} threads, median of {a.repeats}")
    for name in a.models:
        if name not in CONFIGS: p.error(f"unknown model {name!r}; expected one of {sorted(CONFIGS)}")
    print(f"{'model':<10} {'task':<18} {'batch':>5} {'ours items/s':>13} {'open_clip items/s':>18} {'ratio':>6} {'ratio(best)':>11}", flush=True)
    rows = []
    for name in a.models:
        for r in bench(name, a.toy_batch if name.startswith("toy") else a.batch, a.repeats):
            r["ratio"], r["ratio_best"] = r["open_clip"] / r["ours"], r["open_clip_best"] / r["ours_best"]
            print(f"{r['model']:<10} {r['task']:<18} {r['batch']:>5} {r['batch'] / r['ours']:>13.1f} "
                  f"{r['batch'] / r['open_clip']:>18.1f} {r['ratio']:>6.2f} {r['ratio_best']:>11.2f}", flush=True)
            rows.append(r)
    slower = [f"{r['model']} {r['task']}" for r in rows if r["ratio"] < 1.0]
    print("ratio = ours / open_clip throughput from median times (ratio(best): from the fastest call of each), "
          ">= 1.0: ours not slower. Slower by median: " + (", ".join(slower) or "none"))
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
