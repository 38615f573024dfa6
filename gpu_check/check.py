"""One short check of clip_repro's paper-scale path on a GPU, printed and saved as JSON.

Sections (each one is wrapped: a failure is recorded with its traceback and the next section still runs):
  0_imports      every clip_repro module imports with the installed torch / torchvision (module-level deps only)
  1_equivalence  ViT-B/32 and RN50 vs open_clip 3.3.0 "ViT-B-32-quickgelu" / "RN50-quickgelu", same random weights:
                 max |Δ| of encode_image / encode_text in fp32 (TF32 off, and with the backend's defaults) and under
                 bf16 autocast (reported, not asserted)
  2_load         clip_repro.load(path, device=...) of an OpenAI-style fp16 checkpoint of random ViT-B/32 weights:
                 float32 on the device, eval mode, outputs equal to the in-memory model
  3_train        clip_repro.train.train() for ViT-B/32 at 224 px, batch 256, bf16 autocast on CUDA, interrupted once
                 (SIGINT -> checkpoint) and resumed; then open_clip's own training step (its optimiser groups, ClipLoss,
                 autocast bf16, logit-scale clamp) on the same initial weights and batches; median samples/s of each
                 after warm-up, and the ratio ours / open_clip
  5_features     clip_repro.features.extract_features of a ViT-B/32 over 4,096 random 224-px images: images/s
  4_probe        clip_repro.probe.fit_logreg(backend="torch") on 50,000 x 512 float64 features, 100 classes, vs
                 scikit-learn's LogisticRegression(lbfgs, max_iter=1000, C = lambda_to_C(λ, n)); then the whole A.3
                 λ sweep (linear_probe, torch backend). Run last: it is the slowest and the least predictable section.

    python gpu_check/check.py --device cuda           # on the GPU machine (about 3 minutes on one H200)
    python gpu_check/check.py --device cpu --small    # quick self-test: every count shrunk, same code paths

The JSON goes to $OUT/gpu_check.json when OUT is set, else gpu_check/out/gpu_check.json; it is rewritten after every
section, so a run cut short still leaves what it measured. Needs ftfy, wcwidth and open_clip_torch==3.3.0 on top of
torch / torchvision / numpy / scikit-learn (see gpu_check/README.md and COMMAND.txt).
"""
from __future__ import annotations
import argparse, copy, importlib, json, math, os, platform, shutil, signal, statistics, sys, tempfile, time, traceback
from pathlib import Path

import numpy as np
import torch

T0 = time.perf_counter()
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path: sys.path.insert(0, str(ROOT))  # run from anywhere: clip_repro is the working tree's

from clip_repro.core import atomic_write_json  # noqa: E402  (core needs nothing beyond the standard library)

OPEN_CLIP_NAMES = {"ViT-B/32": "ViT-B-32-quickgelu", "RN50": "RN50-quickgelu"}
CAPTIONS = ["a photo of a dog.", "two cats sleeping on a red sofa, seen from above!", "a diagram of a bridge",
            "the number 7 painted on a wall", "an aerial photograph of farmland", "a close-up of a ripe tomato",
            "a blurry picture of a bus at night", "a pencil sketch of a horse"]


# ------------------------------------------------------------------------------------------------ settings
def settings(small: bool) -> dict:
    "Every count the check uses: the GPU scale, or a CPU self-test scale (same code paths, tiny counts)."
    if small:
        return dict(eq_batch=2, load_batch=2,
                    train_batch=2, train_steps=2, train_interrupt_at=1, train_images=4, train_classes=2, train_warmup=1,
                    train_exclude=0, oc_steps=2,
                    feat_images=16, feat_batch=8, feat_warm=8, feat_encode_iters=1,
                    probe_n=2000, probe_n_test=500, probe_d=64, probe_k=10, probe_sep=0.5, probe_lambda=1e-3,
                    probe_fallback_n=1000, probe_sklearn_cap_s=60.0, sweep=True)
    return dict(eq_batch=8, load_batch=8,
                train_batch=256, train_steps=40, train_interrupt_at=30, train_images=1024, train_classes=32,
                train_warmup=10, train_exclude=5, oc_steps=40,
                feat_images=4096, feat_batch=256, feat_warm=256, feat_encode_iters=10,
                probe_n=50_000, probe_n_test=10_000, probe_d=512, probe_k=100, probe_sep=0.2, probe_lambda=1e-4,
                probe_fallback_n=20_000,
                probe_sklearn_cap_s=100.0, sweep=True)


# ------------------------------------------------------------------------------------------------ helpers
def log(msg: str):
    "A progress line with wall-clock time and seconds since start, flushed at once."
    print(f"[{time.strftime('%H:%M:%S')} +{time.perf_counter() - T0:6.1f}s] {msg}", flush=True)


def clean(o):
    "JSON-safe copy: numpy scalars to Python, non-finite floats to None (strict JSON has no NaN)."
    if isinstance(o, dict): return {str(k): clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)): return [clean(v) for v in o]
    if isinstance(o, (np.floating, np.integer, np.bool_)): o = o.item()
    if isinstance(o, torch.Tensor) and o.numel() == 1: o = o.item()
    if isinstance(o, float): return o if math.isfinite(o) else None
    if isinstance(o, Path): return str(o)
    return o


def sync(device: torch.device):
    if device.type == "cuda": torch.cuda.synchronize(device)


def max_dev(a: torch.Tensor, b: torch.Tensor) -> dict:
    "max |a-b|, the same relative to max |b|, and whether they agree within atol = rtol = 1e-4 (the CPU test's tolerance)."
    a, b = a.detach().float().cpu(), b.detach().float().cpu()
    d = (a - b).abs()
    return dict(max_abs=d.max().item(), max_rel=(d.max() / b.abs().max().clamp_min(1e-12)).item(),
                ref_max_abs=b.abs().max().item(), within_1e4=bool(torch.allclose(a, b, atol=1e-4, rtol=1e-4)))


class tf32_off:
    "Strict fp32 on CUDA inside the block (cuDNN convolutions and matmuls without TF32); restored afterwards."
    def __enter__(self):
        self.old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
        torch.backends.cuda.matmul.allow_tf32 = False; torch.backends.cudnn.allow_tf32 = False
    def __exit__(self, *a):
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = self.old


def caption_batch(n: int) -> list[str]:
    return [CAPTIONS[i % len(CAPTIONS)] + ("" if i < len(CAPTIONS) else f" ({i})") for i in range(n)]


def peak_mem(device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


# ------------------------------------------------------------------------------------------------ 0: imports
def check_imports(dev, S, budget) -> dict:
    "Import every clip_repro module (module-level dependencies only: lazy imports are exercised by the sections)."
    mods = sorted(p.stem for p in (ROOT / "clip_repro").glob("*.py") if not p.stem.startswith("_"))
    out, failed = {}, {}
    for m in mods:
        t = time.perf_counter()
        try:
            importlib.import_module(f"clip_repro.{m}"); out[m] = round(time.perf_counter() - t, 3)
        except Exception as e:
            failed[m] = f"{type(e).__name__}: {e}"
    versions = {}
    for pkg in ("torch", "torchvision", "numpy", "scipy", "sklearn", "pandas", "PIL", "ftfy", "regex", "open_clip", "tqdm"):
        try: versions[pkg] = getattr(importlib.import_module(pkg), "__version__", "?")
        except Exception as e: versions[pkg] = f"missing ({type(e).__name__})"
    return dict(imported_s=out, failed=failed, versions=versions, ok=not failed)


# ------------------------------------------------------------------------------------------------ 1: equivalence
def check_equivalence(dev, S, budget) -> dict:
    import open_clip
    from clip_repro.model import build_model, randomize_batchnorm
    res = {}
    for name, oc_name in OPEN_CLIP_NAMES.items():
        t = time.perf_counter()
        torch.manual_seed(0)
        ref = randomize_batchnorm(open_clip.create_model(oc_name), 1).eval()
        ours = build_model(ref.state_dict()).eval()  # same random weights (OpenAI's names and shapes)
        ref, ours = ref.to(dev), ours.to(dev)
        r = ours.config.image_resolution
        g = torch.Generator().manual_seed(0)
        images = torch.randn(S["eq_batch"], 3, r, r, generator=g).to(dev)
        text = open_clip.tokenize(caption_batch(S["eq_batch"])).to(dev)
        row = dict(logit_scale_equal=bool(torch.equal(ours.logit_scale, ref.logit_scale)))
        with torch.no_grad():
            modes = [("fp32_strict", tf32_off()), ("fp32_default", None)] if dev.type == "cuda" else [("fp32", None)]
            fp32 = {}
            for mode, ctx in modes:
                with (ctx or torch.autocast(dev.type, enabled=False)):
                    a_i, a_t = ref.encode_image(images), ref.encode_text(text)
                    b_i, b_t = ours.encode_image(images), ours.encode_text(text)
                row[mode] = dict(encode_image=max_dev(b_i, a_i), encode_text=max_dev(b_t, a_t))
                fp32.setdefault("ref", (a_i, a_t))
            with torch.autocast(dev.type, dtype=torch.bfloat16):
                c_i, c_t = ref.encode_image(images), ref.encode_text(text)
                d_i, d_t = ours.encode_image(images), ours.encode_text(text)
            ai, at = fp32["ref"]
            row["bf16_autocast"] = dict(
                ours_vs_open_clip=dict(encode_image=max_dev(d_i, c_i), encode_text=max_dev(d_t, c_t)),
                ours_vs_fp32=dict(encode_image=max_dev(d_i, ai), encode_text=max_dev(d_t, at)),
                open_clip_vs_fp32=dict(encode_image=max_dev(c_i, ai), encode_text=max_dev(c_t, at)))
        strict = row["fp32_strict" if dev.type == "cuda" else "fp32"]
        row["ok"] = row["logit_scale_equal"] and strict["encode_image"]["within_1e4"] and strict["encode_text"]["within_1e4"]
        row["nonvacuous"] = strict["encode_image"]["ref_max_abs"] > 0.1
        row["seconds"] = round(time.perf_counter() - t, 2)
        log(f"  {name}: fp32 max|Δ| image {strict['encode_image']['max_abs']:.2e} text {strict['encode_text']['max_abs']:.2e}; "
            f"bf16 ours vs open_clip image {row['bf16_autocast']['ours_vs_open_clip']['encode_image']['max_abs']:.2e}")
        res[name] = row
        del ref, ours
        if dev.type == "cuda": torch.cuda.empty_cache()
    res["ok"] = all(res[n]["ok"] for n in OPEN_CLIP_NAMES)
    return res


# ------------------------------------------------------------------------------------------------ 2: load
def check_load(dev, S, budget) -> dict:
    import clip_repro
    from clip_repro.model import CLIP, CONFIGS
    from clip_repro.tokenizer import tokenize
    torch.manual_seed(3)
    m = CLIP(CONFIGS["ViT-B/32"]).eval()
    cfg = m.config
    half = {k: (v.half() if v.is_floating_point() else v) for k, v in m.state_dict().items()}
    half.update(input_resolution=torch.tensor(cfg.image_resolution), context_length=torch.tensor(cfg.context_length),
                vocab_size=torch.tensor(cfg.vocab_size))  # the extra keys OpenAI's released files carry
    rounded = copy.deepcopy(m)  # the in-memory model with the checkpoint's fp16 rounding, for an exact comparison
    rounded.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in half.items() if k in m.state_dict()})
    tmp = Path(tempfile.mkdtemp(prefix="gpu_check_load_"))
    try:
        path = tmp / "ViT-B-32-fp16.pt"
        torch.save(half, path)
        t = time.perf_counter()
        loaded, preprocess = clip_repro.load(path, device=dev)
        sync(dev); load_s = time.perf_counter() - t
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(S["load_batch"], 3, cfg.image_resolution, cfg.image_resolution, generator=g)
    toks = tokenize(caption_batch(S["load_batch"]))
    ctx = tf32_off() if dev.type == "cuda" else torch.autocast("cpu", enabled=False)
    with torch.no_grad(), ctx:
        li, lt = loaded.encode_image(x.to(dev)), loaded.encode_text(toks.to(dev))
        m_dev, r_dev = m.to(dev), rounded.to(dev)
        vs_rounded = dict(encode_image=max_dev(li, r_dev.encode_image(x.to(dev))), encode_text=max_dev(lt, r_dev.encode_text(toks.to(dev))))
        vs_fp32 = dict(encode_image=max_dev(li, m_dev.encode_image(x.to(dev))), encode_text=max_dev(lt, m_dev.encode_text(toks.to(dev))))
    dtypes = sorted({str(p.dtype) for p in loaded.parameters()})
    devices = sorted({str(p.device.type) for p in loaded.parameters()})
    ok = (loaded.config == cfg and not loaded.training and dtypes == ["torch.float32"] and devices == [dev.type]
          and vs_rounded["encode_image"]["within_1e4"] and vs_rounded["encode_text"]["within_1e4"]
          and vs_fp32["encode_image"]["max_abs"] <= 5e-2 and vs_fp32["encode_text"]["max_abs"] <= 5e-2)
    return dict(load_s=round(load_s, 3), param_dtypes=dtypes, param_devices=devices, eval_mode=not loaded.training,
                config_equal=loaded.config == cfg, preprocess_size=list(preprocess.transforms[1].size),
                vs_fp16_rounded_model=vs_rounded, vs_fp32_model_tol_5e2=vs_fp32, ok=ok)


# ------------------------------------------------------------------------------------------------ 3: train
def synthetic_pairs(n: int, res: int, classes: int, seed: int = 0):
    "uint8 images (n, res, res, 3) whose colour and stripe pattern encode a class, and captions naming it."
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    base = rng.integers(30, 226, (classes, 3)).astype(np.int16)
    period = 4 + (np.arange(classes) % 8) * 3
    images = np.empty((n, res, res, 3), np.uint8)
    cols = np.arange(res)
    for i, c in enumerate(labels):  # per image to keep peak memory at one int16 image
        stripes = ((cols // period[c]) % 2 * 50 - 25).astype(np.int16)[None, :, None]
        noise = rng.integers(-30, 31, (res, res, 3), dtype=np.int16)
        images[i] = np.clip(base[c][None, None, :] + stripes + noise, 0, 255)
    words = ["apple", "bridge", "candle", "dolphin", "engine", "forest", "guitar", "harbour", "island", "jacket",
             "kettle", "lantern", "meadow", "needle", "orchard", "pepper", "quarry", "rocket", "saddle", "tunnel",
             "umbrella", "violin", "walnut", "yacht", "zebra", "anchor", "basket", "cactus", "desert", "eagle",
             "falcon", "glacier"]
    captions = [f"a photo of a {words[c % len(words)]} number {c}" for c in labels]
    return images, captions


class OpenClipStep:
    "open_clip_train's inner step (accum_freq=1, bf16 autocast, no scaler): its AdamW groups, ClipLoss, cosine_lr, clamp."
    def __init__(self, model, lr, warmup, total, device):
        from open_clip.loss import ClipLoss
        from clip_repro import train as T
        try:
            from open_clip_train.scheduler import cosine_lr
        except ImportError:  # open_clip_train ships in the same wheel; keep going with a constant rate if it is absent
            cosine_lr = None
        excl = lambda n, p: p.ndim < 2 or "bn" in n or "ln" in n or "bias" in n or "logit_scale" in n
        named = list(model.named_parameters())
        groups = [{"params": [p for n, p in named if excl(n, p) and p.requires_grad], "weight_decay": 0.0},
                  {"params": [p for n, p in named if not excl(n, p) and p.requires_grad], "weight_decay": 0.2}]
        self.model, self.loss = model, ClipLoss()
        self.opt = torch.optim.AdamW(groups, lr=lr, betas=T.ADAM_BETAS[True], eps=T.ADAM_EPS[True])
        self.sched = cosine_lr(self.opt, lr, warmup, total) if cosine_lr else None
        self.step_i = 0
        self.autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if device.type == "cuda" else \
                        (lambda: torch.autocast("cpu", enabled=False))

    def __call__(self, images, texts):
        if self.sched: self.sched(self.step_i)
        self.step_i += 1
        self.opt.zero_grad(set_to_none=True)
        with self.autocast():
            img_f, txt_f, scale = self.model(images, texts)[:3]
            loss = self.loss(img_f, txt_f, scale)
        loss.backward()
        self.opt.step()
        with torch.no_grad(): self.model.logit_scale.clamp_(0, math.log(100))
        return loss.detach()


def check_train(dev, S, budget) -> dict:
    import open_clip
    from clip_repro import train as T
    from clip_repro.model import build_model
    from clip_repro.tokenizer import tokenize
    B, steps, k_int, W = S["train_batch"], S["train_steps"], S["train_interrupt_at"], S["train_exclude"]
    torch.manual_seed(0)
    ref0 = open_clip.create_model("ViT-B-32-quickgelu").eval()  # one random initialisation shared by both trainers
    init_sd = {k: v.clone() for k, v in ref0.state_dict().items()}
    res_px = build_model(init_sd).config.image_resolution
    t = time.perf_counter()
    images, captions = synthetic_pairs(S["train_images"], res_px, S["train_classes"])
    log(f"  data: {images.shape} uint8 in {time.perf_counter() - t:.1f}s")
    data = T.StoreLoader(images, captions, tokenize, B, seed=0)
    lr = T.PAPER_LR["ViT-B/32"]
    run_dir = Path(tempfile.mkdtemp(prefix="gpu_check_train_"))
    out = dict(model="ViT-B/32", image_px=res_px, batch=B, steps=steps, lr=lr, warmup=S["train_warmup"],
               precision="bf16 autocast" if dev.type == "cuda" else "fp32", n_pairs=len(images),
               n_classes=S["train_classes"], interrupt_at=k_int)
    try:
        if dev.type == "cuda": torch.cuda.reset_peak_memory_stats(dev)
        # --- ours, part 1: train until a SIGINT arrives after step k_int (the trainer saves and returns)
        def interrupt(step, loss):
            if step == k_int: signal.raise_signal(signal.SIGINT)
        model_a = build_model(init_sd)
        kw = dict(steps=steps, lr=lr, warmup=S["train_warmup"], device=dev, save_every=10**9, show_progress=False)
        t = time.perf_counter()
        r1 = T.train(model_a, data, run_dir, callback=interrupt, **kw)
        t1 = time.perf_counter() - t
        log(f"  ours part 1: {r1.step} steps, interrupted={r1.interrupted}, loss {r1.loss:.3f}, {t1:.1f}s")
        # the checkpoint holds exactly the interrupted model's weights
        probe_model = build_model(init_sd)
        state = T.load_train_state(r1.checkpoint, probe_model, restore_rng=False)
        sd_a = model_a.state_dict()
        ckpt_max_abs = max((probe_model.state_dict()[k].float() - sd_a[k].detach().float().cpu()).abs().max().item() for k in sd_a)
        ckpt_bytes = r1.checkpoint.stat().st_size
        del probe_model, state, model_a
        # --- ours, part 2: a fresh model resumes from the checkpoint and finishes
        model_b = build_model(init_sd)
        t = time.perf_counter()
        r2 = T.train(model_b, data, run_dir, **kw)
        t2 = time.perf_counter() - t
        log(f"  ours part 2: resumed from {r2.resumed_from} to {r2.step}, loss {r2.loss:.3f}, {t2:.1f}s")
        rows = [json.loads(l) for l in (run_dir / "log.jsonl").read_text().splitlines() if l.strip()]
        losses = [r["loss"] for r in rows]
        w5 = max(1, min(5, len(losses) // 2))  # first / last window (5 steps at GPU scale)
        timed = [r["samples_per_s"] for r in rows if r["step"] > W and not (k_int < r["step"] <= k_int + min(W, 2))]
        ours_sps = statistics.median(timed) if timed else float("nan")
        out["ours"] = dict(
            losses=[round(x, 4) for x in losses], loss_all_finite=all(math.isfinite(x) for x in losses),
            loss_window=w5, loss_first_mean=float(np.mean(losses[:w5])), loss_last_mean=float(np.mean(losses[-w5:])),
            loss_decreased=float(np.mean(losses[-w5:])) < float(np.mean(losses[:w5])),
            median_samples_per_s=ours_sps, timed_steps=len(timed),
            end_to_end_samples_per_s=(r1.step * B + (r2.step - r2.resumed_from) * B) / (t1 + t2),
            wall_s=round(t1 + t2, 2), peak_mem_gib=peak_mem(dev),
            resume=dict(interrupted=r1.interrupted, interrupted_at=r1.step, resumed_from=r2.resumed_from, final_step=r2.step,
                        log_steps_contiguous=[r["step"] for r in rows] == list(range(1, steps + 1)),
                        checkpoint_vs_memory_max_abs=ckpt_max_abs, checkpoint_mib=round(ckpt_bytes / 2**20, 1)))
        del model_b
        if dev.type == "cuda": torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats(dev)
        # --- open_clip's own step: same initial weights, same batches in the same order
        ref = ref0.to(dev).train()
        step = OpenClipStep(ref, lr, S["train_warmup"], steps, dev)
        oc_losses, oc_sps = [], []
        for i in range(S["oc_steps"]):
            epoch, pos = divmod(i, data.steps_per_epoch)
            imgs, toks, _ = next(iter(data.batches(epoch, pos)))  # CPU tensors, outside the timing as in our trainer
            sync(dev); t = time.perf_counter()
            loss = step(imgs.to(dev, non_blocking=True), toks.to(dev, non_blocking=True))
            lv = loss.item(); sync(dev)
            dt = time.perf_counter() - t
            oc_losses.append(lv); oc_sps.append(B / dt)
        oc_timed = oc_sps[W:]
        oc_med = statistics.median(oc_timed) if oc_timed else float("nan")
        out["open_clip"] = dict(losses=[round(x, 4) for x in oc_losses], loss_all_finite=all(math.isfinite(x) for x in oc_losses),
                                median_samples_per_s=oc_med, timed_steps=len(oc_timed), peak_mem_gib=peak_mem(dev),
                                scheduler="open_clip_train.scheduler.cosine_lr" if step.sched else "constant")
        out["ratio_ours_over_open_clip_samples_per_s"] = ours_sps / oc_med
        out["step1_loss_ours_minus_open_clip"] = losses[0] - oc_losses[0]  # same weights, same first batch
        out["ok"] = (out["ours"]["loss_all_finite"] and out["ours"]["resume"]["interrupted"]
                     and out["ours"]["resume"]["resumed_from"] == k_int and out["ours"]["resume"]["final_step"] == steps
                     and out["ours"]["resume"]["log_steps_contiguous"] and ckpt_max_abs == 0.0)
        log(f"  samples/s ours {ours_sps:.0f} vs open_clip {oc_med:.0f} -> ratio {out['ratio_ours_over_open_clip_samples_per_s']:.3f}")
        del ref, step
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
        if dev.type == "cuda": torch.cuda.empty_cache()
    return out


# ------------------------------------------------------------------------------------------------ 5: features
class RandomImages(torch.utils.data.Dataset):
    "n random images, stored as uint8 and normalised per item like a decoded, preprocessed dataset would be."
    def __init__(self, n: int, res: int, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randint(0, 256, (n, 3, res, res), dtype=torch.uint8, generator=g)
        self.mean = torch.tensor((0.48145466, 0.4578275, 0.40821073)).view(3, 1, 1)
        self.std = torch.tensor((0.26862954, 0.26130258, 0.27577711)).view(3, 1, 1)
    def __len__(self): return len(self.x)
    def __getitem__(self, i): return (self.x[i].float().div_(255) - self.mean) / self.std, i % 10


def check_features(dev, S, budget) -> dict:
    from clip_repro.features import clip_image_features, extract_features
    from clip_repro.model import CLIP, CONFIGS
    torch.manual_seed(4)
    model = CLIP(CONFIGS["ViT-B/32"]).eval().to(dev)
    res = model.config.image_resolution
    t = time.perf_counter()
    ds = RandomImages(S["feat_images"], res)
    log(f"  {len(ds)} random {res}-px images made in {time.perf_counter() - t:.1f}s")
    enc = clip_image_features(model)
    extract_features(enc, torch.utils.data.Subset(ds, range(S["feat_warm"])), batch_size=S["feat_batch"], device=str(dev),
                     show_progress=False)  # warm-up: kernel selection, allocator
    sync(dev); t = time.perf_counter()
    f = extract_features(enc, ds, batch_size=S["feat_batch"], device=str(dev), show_progress=False)
    sync(dev); dt = time.perf_counter() - t
    # the model alone on a device-resident batch (no loader, no host copy), to tell loader-bound from model-bound
    x = torch.stack([ds[i][0] for i in range(S["feat_batch"])]).to(dev)
    enc_only = {}
    for mode in ("fp32", "bf16_autocast"):
        ctx = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=mode != "fp32")
        with torch.no_grad(), ctx:
            enc(x); sync(dev); t = time.perf_counter()
            for _ in range(S["feat_encode_iters"]): enc(x)
            sync(dev)
        enc_only[mode] = S["feat_encode_iters"] * len(x) / (time.perf_counter() - t)
    ok = f.X.shape == (len(ds), model.config.vision_width) and bool(np.isfinite(f.X).all()) and (f.y == np.arange(len(ds)) % 10).all()
    return dict(n_images=len(ds), batch_size=S["feat_batch"], num_workers=0, seconds=round(dt, 3), images_per_s=len(ds) / dt,
                feature_shape=list(f.X.shape), encode_only_images_per_s=enc_only, ok=bool(ok))


# ------------------------------------------------------------------------------------------------ 4: probe
def gaussian_classes(n: int, d: int, k: int, seed: int, sep: float = 0.2, means=None):
    "Features: class mean (N(0, sep²) per dim) + N(0, 1) noise; float64, labels 0..k-1 balanced."
    rng = np.random.default_rng(seed)
    if means is None: means = rng.normal(0, sep, (k, d))
    y = np.arange(n) % k
    rng.shuffle(y)
    return means[y] + rng.normal(0, 1, (n, d)), y, means


def objective(coef, intercept, X, y, lam) -> float:
    "The A.3 objective in float64: mean cross-entropy + λ ||W||² (clip_repro.probe's mean-loss convention)."
    z = X @ coef.T + intercept
    z = z - z.max(1, keepdims=True)
    lse = np.log(np.exp(z).sum(1))
    return float(np.mean(lse - z[np.arange(len(y)), y]) + lam * (coef ** 2).sum())


def check_probe(dev, S, budget) -> dict:
    import warnings
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from clip_repro.probe import fit_logreg, lambda_to_C, linear_probe, probe_score
    lam, d, k = S["probe_lambda"], S["probe_d"], S["probe_k"]
    X_all, y_all, means = gaussian_classes(S["probe_n"], d, k, seed=0, sep=S["probe_sep"])
    X_te, y_te, _ = gaussian_classes(S["probe_n_test"], d, k, seed=1, means=means)
    out = dict(n_test=len(X_te), d=d, classes=k, class_mean_sd=S["probe_sep"], lam=lam, dtype=str(X_all.dtype), cpu_cores=os.cpu_count())
    try:
        from threadpoolctl import threadpool_info
        out["sklearn_threadpools"] = [dict(api=p.get("user_api"), lib=p.get("internal_api"), threads=p.get("num_threads")) for p in threadpool_info()]
    except Exception as e:
        out["sklearn_threadpools"] = f"unavailable ({type(e).__name__})"
    # pilot: per-iteration cost of scikit-learn on the full set, to keep the whole run inside its time budget
    # (two short fits, 2 and 12 iterations: the difference excludes the fixed set-up cost)
    pilot = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for it in (2, 12):
            t = time.perf_counter()
            LogisticRegression(C=lambda_to_C(lam, len(X_all)), solver="lbfgs", max_iter=it, tol=1e-4).fit(X_all, y_all)
            pilot[it] = time.perf_counter() - t
    per_iter = max(pilot[12] - pilot[2], 1e-6) / 10
    worst = pilot[2] + per_iter * 1000
    cap = min(S["probe_sklearn_cap_s"], max(10.0, budget() - 60))
    n = len(X_all) if worst <= cap else S["probe_fallback_n"]
    out.update(sklearn_pilot_s_per_iter=per_iter, sklearn_worst_case_s=worst, sklearn_cap_s=cap, n_train=n,
               rows_note="full" if n == len(X_all) else f"{len(X_all)} rows projected {worst:.0f}s worst case > {cap:.0f}s: used {n} rows")
    X, y = X_all[:n], y_all[:n]
    log(f"  probe on {n}x{d}, {k} classes, λ={lam:g} (sklearn pilot {per_iter * 1e3:.1f} ms/iter)")
    # ours, torch backend on the device (warm-up fit on a slice first: CUDA kernels, LBFGS state)
    fit_logreg(X[:2000], y[:2000], lam, backend="torch", device=str(dev), max_iter=5)
    ours = fit_logreg(X, y, lam, backend="torch", device=str(dev), max_iter=1000)
    acc_ours = probe_score(ours, X_te, y_te)
    log(f"  torch fit {ours.seconds:.2f}s, {ours.n_iter} iterations, test acc {acc_ours:.4f}")
    # the peer: scikit-learn on the CPU cores, same λ through lambda_to_C
    clf = LogisticRegression(C=lambda_to_C(lam, n), solver="lbfgs", max_iter=1000, tol=1e-4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        t = time.perf_counter(); clf.fit(X, y); sk_s = time.perf_counter() - t
    acc_sk = float((clf.predict(X_te) == y_te).mean())
    log(f"  sklearn fit {sk_s:.2f}s, {int(np.max(clf.n_iter_))} iterations, test acc {acc_sk:.4f}")
    out["fit"] = dict(
        torch=dict(seconds=ours.seconds, n_iter=ours.n_iter, converged=ours.converged, test_accuracy=acc_ours,
                   objective=objective(ours.coef, ours.intercept, X, y, lam), device=str(dev), compute_dtype="float32"),
        sklearn=dict(seconds=sk_s, n_iter=int(np.max(clf.n_iter_)), converged=not any(issubclass(w.category, ConvergenceWarning) for w in caught),
                     test_accuracy=acc_sk, objective=objective(clf.coef_, clf.intercept_, X, y, lam), C=lambda_to_C(lam, n)),
        ratio_sklearn_s_over_torch_s=sk_s / ours.seconds,
        test_prediction_agreement=float((ours.predict(X_te) == clf.predict(X_te)).mean()))
    out["ok"] = bool(abs(acc_ours - acc_sk) <= 0.01)
    # the whole A.3 sweep on the device
    if S["sweep"] and budget() > 45:
        t = time.perf_counter()
        pr = linear_probe(X, y, X_te, y_te, backend="torch", device=str(dev), show_progress=False)
        out["sweep"] = dict(seconds=time.perf_counter() - t, n_fits=pr.sweep.n_fits + 1, best_lambda=pr.best_lambda,
                            val_score=pr.sweep.best_score, test_accuracy=pr.test_score, val_source=pr.val_source)
        log(f"  λ sweep {out['sweep']['seconds']:.1f}s, {pr.sweep.n_fits} fits + refit, best λ {pr.best_lambda:.3g}, test acc {pr.test_score:.4f}")
    else:
        out["sweep"] = dict(skipped=f"{budget():.0f}s of the time budget left (needs > 45s)")
    return out


# ------------------------------------------------------------------------------------------------ main
SECTIONS = [("0_imports", check_imports), ("1_equivalence", check_equivalence), ("2_load", check_load),
            ("3_train", check_train), ("5_features", check_features), ("4_probe", check_probe)]


def headline(result: dict) -> dict:
    "The key numbers of every section, flat, for the console (the JSON file has everything)."
    def get(*keys):
        o = result["sections"]
        for k in keys:
            if not isinstance(o, dict) or k not in o: return None
            o = o[k]
        return o
    h = {k: result["meta"].get(k) for k in ("device", "gpu", "torch", "total_s", "all_ok")}
    h["ok"] = {n: s.get("ok") for n, s in result["sections"].items()}
    h["errors"] = {n: s["error"].strip().splitlines()[-1] for n, s in result["sections"].items() if "error" in s}
    h["import_failures"] = get("0_imports", "failed")
    for m in OPEN_CLIP_NAMES:
        for mode in ("fp32_strict", "fp32_default", "fp32"):
            if get("1_equivalence", m, mode):
                h[f"eq {m} {mode} max|d| image/text"] = [get("1_equivalence", m, mode, "encode_image", "max_abs"),
                                                        get("1_equivalence", m, mode, "encode_text", "max_abs")]
        h[f"eq {m} bf16 ours-vs-open_clip max|d| image/text"] = [
            get("1_equivalence", m, "bf16_autocast", "ours_vs_open_clip", "encode_image", "max_abs"),
            get("1_equivalence", m, "bf16_autocast", "ours_vs_open_clip", "encode_text", "max_abs")]
    h["load max|d| vs fp16-rounded image/text"] = [get("2_load", "vs_fp16_rounded_model", "encode_image", "max_abs"),
                                                   get("2_load", "vs_fp16_rounded_model", "encode_text", "max_abs")]
    h["load dtypes/devices"] = [get("2_load", "param_dtypes"), get("2_load", "param_devices")]
    h["train loss first/last window mean, decreased"] = [get("3_train", "ours", "loss_first_mean"), get("3_train", "ours", "loss_last_mean"),
                                                          get("3_train", "ours", "loss_decreased")]
    h["train samples/s ours/open_clip/ratio"] = [get("3_train", "ours", "median_samples_per_s"),
                                                 get("3_train", "open_clip", "median_samples_per_s"),
                                                 get("3_train", "ratio_ours_over_open_clip_samples_per_s")]
    h["train resume"] = get("3_train", "ours", "resume")
    h["features images/s (loader) / encode-only fp32"] = [get("5_features", "images_per_s"),
                                                          get("5_features", "encode_only_images_per_s", "fp32")]
    h["probe rows"] = get("4_probe", "rows_note")
    h["probe fit s torch/sklearn/ratio"] = [get("4_probe", "fit", "torch", "seconds"), get("4_probe", "fit", "sklearn", "seconds"),
                                            get("4_probe", "fit", "ratio_sklearn_s_over_torch_s")]
    h["probe test acc torch/sklearn"] = [get("4_probe", "fit", "torch", "test_accuracy"), get("4_probe", "fit", "sklearn", "test_accuracy")]
    h["probe sweep s / fits / best λ"] = [get("4_probe", "sweep", "seconds"), get("4_probe", "sweep", "n_fits"),
                                          get("4_probe", "sweep", "best_lambda")]
    return h


def out_path() -> Path:
    return Path(os.environ["OUT"]) / "gpu_check.json" if os.environ.get("OUT") else ROOT / "gpu_check" / "out" / "gpu_check.json"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda", help="cuda | cuda:N | cpu")
    p.add_argument("--small", action="store_true", help="shrink every count (CPU self-test)")
    p.add_argument("--only", default="", help="comma-separated section prefixes to run, e.g. 1,3 (default: all)")
    p.add_argument("--budget-s", type=float, default=270.0, help="time budget; the probe shrinks/skips to stay inside it")
    a = p.parse_args(argv)
    dev = torch.device(a.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda but torch.cuda.is_available() is False; use --device cpu --small for the self-test")
    os.environ.setdefault("CLIP_REPRO_QUIET", "1")
    S = settings(a.small)
    budget = lambda: a.budget_s - (time.perf_counter() - T0)
    path = out_path()
    result = dict(meta=dict(
        started=time.strftime("%Y-%m-%dT%H:%M:%S"), argv=sys.argv[1:], device=str(dev), small=a.small, settings=S,
        python=platform.python_version(), torch=torch.__version__, cuda=torch.version.cuda,
        gpu=torch.cuda.get_device_name(dev) if dev.type == "cuda" else None,
        tf32_defaults=dict(matmul=torch.backends.cuda.matmul.allow_tf32, cudnn=torch.backends.cudnn.allow_tf32),
        cpu_cores=os.cpu_count(), torch_threads=torch.get_num_threads(), platform=platform.platform()), sections={})
    only = [s.strip() for s in a.only.split(",") if s.strip()]
    log(f"gpu_check on {dev} ({result['meta']['gpu'] or platform.processor() or 'cpu'}), torch {torch.__version__}, "
        f"small={a.small}; writing {path}")
    for name, fn in SECTIONS:
        if only and not any(name.startswith(o) for o in only): continue
        log(f"section {name}")
        t = time.perf_counter()
        try:
            r = fn(dev, S, budget)
        except Exception:
            r = dict(ok=False, error=traceback.format_exc())
            log(f"  FAILED:\n{r['error']}")
        r["section_s"] = round(time.perf_counter() - t, 2)
        result["sections"][name] = r
        log(f"  done in {r['section_s']}s, ok={r.get('ok')}")
        result["meta"]["total_s"] = round(time.perf_counter() - T0, 2)
        atomic_write_json(path, clean(result))
    result["meta"]["all_ok"] = all(s.get("ok", False) for s in result["sections"].values())
    result["meta"]["total_s"] = round(time.perf_counter() - T0, 2)
    atomic_write_json(path, clean(result))
    print(json.dumps(clean(headline(result)), indent=1), flush=True)
    log(f"wrote {path}")
    return 0 if result["meta"]["all_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
