"""Training throughput: clip_repro's training step against open_clip's, same tiny configuration, data and batch.

Two comparisons, each printed with the ratio ours / open_clip (samples per second; ≥ 1.0 means we are not slower):
  * full step  — clip_repro.model.CLIP + clip_repro.train.train_step  vs  open_clip.CLIP + ClipLoss + open_clip_train's step
  * trainer    — the same open_clip model under both steps (isolates the trainer: loss, optimiser, schedule, clamp)
Steps are interleaved (ours, theirs, ours, ...) and the median step time is used, so load from other processes on a shared
machine affects both sides alike. Data loading is excluded (the same tensors are fed to both).

    python benchmarks/bench_train.py [--model toy-vit] [--batch 32] [--steps 4] [--rounds 3] [--threads 1] [--device cpu]
"""
import argparse, math, statistics, time

import torch

from clip_repro import model as M, train as T


def open_clip_model(cfg: M.CLIPConfig, output_dict=True):
    "An open_clip CLIP with the same architecture as our `cfg` (OpenAI-style: QuickGELU, argmax pooling)."
    import open_clip
    if cfg.is_vit:
        vision = dict(layers=cfg.vision_layers, width=cfg.vision_width, patch_size=cfg.vision_patch_size,
                      image_size=cfg.image_resolution, head_width=cfg.vision_width // cfg.vision_heads)
    else:
        vision = dict(layers=tuple(cfg.vision_layers), width=cfg.vision_width, image_size=cfg.image_resolution,
                      head_width=cfg.vision_width * 32 // cfg.vision_heads)
    text = dict(context_length=cfg.context_length, vocab_size=cfg.vocab_size, width=cfg.transformer_width,
                heads=cfg.transformer_heads, layers=cfg.transformer_layers)
    return open_clip.model.CLIP(cfg.embed_dim, vision, text, quick_gelu=True, output_dict=output_dict)


class OpenClipStep:
    "open_clip_train's train_one_epoch inner step (accum_freq=1, no scaler), with its optimiser groups and cosine_lr."
    def __init__(self, model, lr, warmup, total, is_vit):
        from open_clip.loss import ClipLoss
        from open_clip_train.scheduler import cosine_lr
        excl = lambda n, p: p.ndim < 2 or "bn" in n or "ln" in n or "bias" in n or "logit_scale" in n
        named = list(model.named_parameters())
        groups = [{"params": [p for n, p in named if excl(n, p) and p.requires_grad], "weight_decay": 0.0},
                  {"params": [p for n, p in named if not excl(n, p) and p.requires_grad], "weight_decay": 0.2}]
        self.model, self.loss = model, ClipLoss()
        self.opt = torch.optim.AdamW(groups, lr=lr, betas=T.ADAM_BETAS[is_vit], eps=T.ADAM_EPS[is_vit])
        self.sched, self.step_i = cosine_lr(self.opt, lr, warmup, total), 0

    def __call__(self, images, texts):
        self.sched(self.step_i); self.step_i += 1
        self.opt.zero_grad()
        out = self.model(images, texts)
        losses = self.loss(**out, output_dict=True)
        total = sum(losses.values())
        total.backward()
        self.opt.step()
        with torch.no_grad(): self.model.logit_scale.clamp_(0, math.log(100))
        return total.detach()


class OurStep:
    "clip_repro.train.train_step with our optimiser groups and warm-up + cosine schedule."
    def __init__(self, model, lr, warmup, total, is_vit, device):
        self.step_module, self.model = T.ContrastiveStep(model), model
        self.opt = T.make_optimizer(model, lr, is_vit=is_vit)
        self.sched = T.warmup_cosine(self.opt, warmup, total)
        self.ac = T.autocast_for(device, "fp32" if torch.device(device).type == "cpu" else "auto")

    def __call__(self, images, texts):
        return T.train_step(self.step_module, self.opt, self.sched, images, texts, model=self.model, autocast=self.ac)


def time_steps(step, images, texts, n, device):
    ts = []
    for _ in range(n):
        if device.type == "cuda": torch.cuda.synchronize()
        t0 = time.perf_counter(); step(images, texts)
        if device.type == "cuda": torch.cuda.synchronize()
        ts.append(time.perf_counter() - t0)
    return ts


def bench(model_name="toy-vit", batch=64, steps=8, rounds=3, device="cpu", seed=0):
    "Median seconds per step for each side of both comparisons, and the ratios."
    device = torch.device(device)
    cfg = M.CONFIGS[model_name]
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(batch, 3, cfg.image_resolution, cfg.image_resolution, generator=g).to(device)
    texts = torch.randint(1, cfg.vocab_size - 1, (batch, cfg.context_length), generator=g)
    texts[:, 12] = cfg.vocab_size - 1; texts[:, 13:] = 0  # EOT is the largest id, as with the real tokenizer
    texts = texts.to(device)
    total, warm = rounds * steps + 2, 2

    def make(kind):
        torch.manual_seed(seed)
        if kind == "ours/ours": return OurStep(M.CLIP(cfg).to(device), 5e-4, warm, total, cfg.is_vit, device)
        if kind == "open_clip/ours": return OurStep(open_clip_model(cfg).to(device), 5e-4, warm, total, cfg.is_vit, device)
        return OpenClipStep(open_clip_model(cfg).to(device), 5e-4, warm, total, cfg.is_vit)

    sides = {k: make(k) for k in ("ours/ours", "open_clip/ours", "open_clip/open_clip")}
    times = {k: [] for k in sides}
    for k, s in sides.items(): time_steps(s, images, texts, warm, device)  # warm-up (allocations, lazy init)
    for _ in range(rounds):
        for k, s in sides.items(): times[k] += time_steps(s, images, texts, steps, device)
    med = {k: statistics.median(v) for k, v in times.items()}
    return dict(median_s=med, sps={k: batch / v for k, v in med.items()},
                ratio_full=med["open_clip/open_clip"] / med["ours/ours"],
                ratio_trainer=med["open_clip/open_clip"] / med["open_clip/ours"])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="toy-vit"); p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=4); p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1); p.add_argument("--device", default="cpu")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    r = bench(a.model, a.batch, a.steps, a.rounds, a.device)
    print(f"training step, {a.model}, batch {a.batch}, {a.device} ({a.threads} threads), median of {a.rounds}×{a.steps} steps")
    print(f"{'model / step':<24}{'s/step':>10}{'samples/s':>12}")
    for k in r["median_s"]: print(f"{k:<24}{r['median_s'][k]:>10.4f}{r['sps'][k]:>12.1f}")
    print(f"ratio full step (ours/ours vs open_clip/open_clip): {r['ratio_full']:.3f}")
    print(f"ratio trainer   (open_clip model, our step vs theirs): {r['ratio_trainer']:.3f}")
    return r


if __name__ == "__main__":
    main()
