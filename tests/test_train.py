"""The contrastive trainer (issue 5): loss against open_clip, DDP equivalence, data streams, resume and fault injection."""
import io, json, math, os, random, signal, subprocess, sys, tarfile, textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

from clip_repro import train as T

torch.set_num_threads(1)

# A tiny stand-in with the clip_repro.model.CLIP interface, shared with the subprocess tests as source text.
STANDIN = textwrap.dedent('''
    import math, torch, torch.nn as nn
    class Standin(nn.Module):
        def __init__(self, nan_at=None):
            super().__init__()
            self.visual = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 16), nn.GELU(), nn.Linear(16, 8))
            self.token_embedding = nn.Embedding(64, 8)
            self.ln = nn.LayerNorm(8)
            self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
            self.config = type("Cfg", (), {"is_vit": True})()
            self.nan_at, self.calls = nan_at, 0
        def encode_image(self, x):
            self.calls += 1
            y = self.visual(x)
            return y * float("nan") if self.nan_at is not None and self.calls >= self.nan_at else y
        def encode_text(self, t): return self.ln(self.token_embedding(t).mean(1))
''')
exec(STANDIN)


def tok(texts):
    "caption 'w1 w2 ...' -> ids (hash of each word mod 63 + 1), 4 per caption."
    return torch.tensor([[(sum(map(ord, w)) % 63) + 1 for w in (t.split() + ["pad"] * 4)[:4]] for t in texts])


def corpus(n=40, size=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8), [f"item {i} colour {i % 5}" for i in range(n)]


def same_state(a: dict, b: dict, atol=0.0):
    assert a.keys() == b.keys()
    for k in a:
        if atol == 0: assert torch.equal(a[k], b[k]), k
        else: torch.testing.assert_close(a[k], b[k], atol=atol, rtol=0, msg=k)


# ---------------------------------------------------------------- objective and optimiser
def test_loss_matches_open_clip():
    from open_clip.loss import ClipLoss
    g = torch.Generator().manual_seed(1)
    img, txt = torch.randn(16, 32, generator=g), torch.randn(16, 32, generator=g)
    for t in (0.0, math.log(1 / 0.07), math.log(100.0)):
        ours = T.clip_loss(img, txt, torch.tensor(t))
        nimg, ntxt = nn.functional.normalize(img, dim=-1), nn.functional.normalize(txt, dim=-1)
        ref = ClipLoss()(nimg, ntxt, torch.tensor(t).exp())
        torch.testing.assert_close(ours, ref, atol=1e-6, rtol=1e-6)


def test_param_groups_on_toy_clip():
    import clip_repro.model as M
    for name, vit in (("toy-vit", True), ("toy-rn", False)):
        model = M.CLIP(M.CONFIGS[name])
        opt = T.make_optimizer(model, lr=1e-3)
        decay, no_decay = (set(map(id, g["params"])) for g in opt.param_groups)
        named = dict(model.named_parameters())
        assert id(named["logit_scale"]) in no_decay and id(named["ln_final.weight"]) in no_decay
        assert id(named["token_embedding.weight"]) in decay and id(named["text_projection"]) in decay
        assert all((id(p) in no_decay) == (p.ndim < 2) for p in named.values())
        assert len(decay) + len(no_decay) == len(named)
        assert opt.defaults["betas"] == ((0.9, 0.98) if vit else (0.9, 0.999))
        assert opt.defaults["eps"] == (1e-6 if vit else 1e-8)


def test_paper_lr_covers_paper_models():
    import clip_repro.model as M
    assert set(T.PAPER_LR) == set(M.PAPER_MODELS)


def test_grad_checkpointing_same_gradients():
    import clip_repro.model as M
    torch.manual_seed(0)
    a = M.CLIP(M.CONFIGS["toy-vit"]); b = M.CLIP(M.CONFIGS["toy-vit"]); b.load_state_dict(a.state_dict())
    assert T.enable_grad_checkpointing(b) == 8  # 4 vision + 4 text blocks
    x = torch.randn(4, 3, 32, 32); t = torch.randint(1, 4000, (4, 32)); t[:, 5] = 4095
    for m in (a, b): T.ContrastiveStep(m)(x, t).backward()
    for (n, p), q in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(p.grad, q.grad, atol=1e-6, rtol=1e-5, msg=n)


def test_logit_scale_is_clamped_after_step(tmp_path):
    m = Standin(); m.logit_scale.data.fill_(math.log(100) - 1e-4)
    ims, caps = corpus(16)
    T.train(m, T.StoreLoader(ims, caps, tok, 8), tmp_path, steps=3, lr=1.0, warmup=1, show_progress=False)
    assert m.logit_scale.item() <= math.log(100) + 1e-7


# ---------------------------------------------------------------- DDP: 2 gloo processes == 1 process on the concatenated batch
def _ddp_worker(rank, world, tmp, n_steps):
    import torch.distributed as dist
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{tmp}/pg", rank=rank, world_size=world)
    from clip_repro import model as M
    torch.manual_seed(0); model = M.CLIP(M.CONFIGS["toy-vit"])
    x, t = torch.load(f"{tmp}/batch.pt")
    b = x.shape[0] // world
    ddp = torch.nn.parallel.DistributedDataParallel(T.ContrastiveStep(model))
    loss = ddp(x[rank * b:(rank + 1) * b], t[rank * b:(rank + 1) * b])
    loss.backward()
    g_loss = loss.detach().clone(); dist.all_reduce(g_loss); g_loss /= world
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    # and the whole trainer, with the store split by rank
    torch.manual_seed(0); model2 = M.CLIP(M.CONFIGS["toy-vit"])
    ims, caps = torch.load(f"{tmp}/store.pt", weights_only=False)
    tk = lambda texts: _toy_vit_tok(texts)
    res = T.train(model2, T.StoreLoader(ims, caps, tk, 4 // world), f"{tmp}/ddp_run", steps=n_steps, lr=1e-4, warmup=1,
                  show_progress=False)
    if rank == 0:
        torch.save(dict(loss=g_loss, grads=grads, state=model2.state_dict(), log_loss=res.loss), f"{tmp}/ddp.pt")
    dist.destroy_process_group()


def _toy_vit_tok(texts):
    out = torch.zeros(len(texts), 32, dtype=torch.long)  # the toy configurations' context
    for i, t in enumerate(texts):
        ids = [(sum(map(ord, w)) % 4000) + 1 for w in t.split()][:10] + [4095]
        out[i, :len(ids)] = torch.tensor(ids)
    return out


def test_ddp_two_processes_equal_one_process(tmp_path):
    import clip_repro.model as M
    g = torch.Generator().manual_seed(3)
    x = torch.randn(8, 3, 32, 32, generator=g)
    t = torch.randint(1, 4000, (8, 32), generator=g); t[:, 6] = 4095
    torch.save((x, t), tmp_path / "batch.pt")
    ims = np.random.default_rng(0).integers(0, 256, (16, 32, 32, 3), dtype=np.uint8)
    caps = [f"pair {i} of {i % 3}" for i in range(16)]
    torch.save((ims, caps), tmp_path / "store.pt")
    n_steps = 3
    torch.multiprocessing.start_processes(_ddp_worker, args=(2, str(tmp_path), n_steps), nprocs=2, start_method="fork")
    got = torch.load(tmp_path / "ddp.pt", weights_only=False)
    # one process, the concatenated batch
    torch.manual_seed(0); model = M.CLIP(M.CONFIGS["toy-vit"])
    loss = T.ContrastiveStep(model)(x, t); loss.backward()
    torch.testing.assert_close(got["loss"], loss.detach(), atol=1e-5, rtol=0)
    for n, p in model.named_parameters():
        torch.testing.assert_close(got["grads"][n], p.grad, atol=1e-5, rtol=0, msg=n)
    torch.manual_seed(0); model2 = M.CLIP(M.CONFIGS["toy-vit"])
    res = T.train(model2, T.StoreLoader(ims, caps, _toy_vit_tok, 4), tmp_path / "one", steps=n_steps, lr=1e-4, warmup=1,
                  show_progress=False)
    assert abs(res.loss - got["log_loss"]) < 1e-5
    same_state(got["state"], model2.state_dict(), atol=1e-5)


# ---------------------------------------------------------------- WebDataset shards
def _write_shards(d: Path, n_shards=4, per=5, corrupt=("s1_2",), broken_tar=False):
    from PIL import Image
    sizes = {}
    for s in range(n_shards):
        name = f"shard-{s:06d}.tar"
        with tarfile.open(d / name, "w") as tf:
            for i in range(per):
                key = f"s{s}_{i}"
                if key in corrupt: img = b"\xff\xd8 not a jpeg"
                else:
                    buf = io.BytesIO(); Image.new("RGB", (10, 12), (s * 40, i * 40, 90)).save(buf, "JPEG"); img = buf.getvalue()
                for ext, data in (("jpg", img), ("txt", f"sample {s * per + i}".encode()), ("json", b"{}")):
                    ti = tarfile.TarInfo(f"{key}.{ext}"); ti.size = len(data); tf.addfile(ti, io.BytesIO(data))
        sizes[name] = per
    if broken_tar:  # truncate the last shard mid-member
        p = d / f"shard-{n_shards - 1:06d}.tar"; p.write_bytes(p.read_bytes()[:1500])
    (d / "sizes.json").write_text(json.dumps(sizes))


def _ids(tokens): return tokens[:, 0].tolist()


def _id_tok(texts): return torch.tensor([[int(t.split()[1])] for t in texts])


def _pre(im):
    import torchvision.transforms.functional as TF
    return TF.to_tensor(im.resize((8, 8)))


def test_shards_epoch_length_split_and_corrupt_samples(tmp_path):
    _write_shards(tmp_path)
    one = T.ShardLoader(tmp_path, _pre, _id_tok, batch_size=4, shuffle_buffer=3, seed=1, rank=0, world_size=1)
    assert one.num_samples == 20 and one.steps_per_epoch == 5
    batches = list(one.batches(0))
    assert len(batches) == 5 and all(x.shape == (4, 3, 8, 8) for x, _, _ in batches)
    ids = sum((_ids(t) for _, t, _ in batches[:4]), [])
    assert len(set(ids)) == 16 and 7 not in ids   # first 16 samples of the pass: distinct, the corrupt one (s1_2) skipped
    assert sum(n for _, _, n in batches) >= 1     # and counted
    again = list(one.batches(0, start=2))         # deterministic replay: resuming skips consumed batches
    assert [_ids(t) for _, t, _ in again] == [_ids(t) for _, t, _ in batches[2:]]
    assert [_ids(t) for _, t, _ in one.batches(1)] != [_ids(t) for _, t, _ in batches]  # reshuffled per epoch
    ranks = [T.ShardLoader(str(tmp_path / "shard-{000000..000003}.tar"), _pre, _id_tok, 4, shuffle_buffer=2, rank=r, world_size=2)
             for r in (0, 1)]
    assert ranks[0].steps_per_epoch == 2
    seen = [set(sum((_ids(t) for _, t, _ in L.batches(0)), [])) for L in ranks]
    assert len(seen[0]) == 8 and len(seen[1]) == 8 and not seen[0] & seen[1]  # disjoint shares


def test_shards_workers_resampled_and_broken_tar(tmp_path):
    (tmp_path / "ok").mkdir(); _write_shards(tmp_path / "ok", corrupt=())
    w2 = T.ShardLoader(tmp_path / "ok", _pre, _id_tok, 2, shuffle_buffer=1, workers=2, seed=0, rank=0, world_size=1)
    b = list(w2.batches(0))
    assert len(b) == 10
    firsts = sum((_ids(t) for _, t, _ in b[:8]), [])  # 4 batches from each worker, each within its own 2 shards
    assert len(set(firsts)) == 16
    _write_shards(tmp_path, broken_tar=True)
    bad = T.ShardLoader(tmp_path, _pre, _id_tok, 2, shuffle_buffer=1, seed=0, rank=0, world_size=1)
    assert sum(n for _, _, n in bad.batches(0)) >= 2  # the truncated tar and the corrupt jpeg are counted, not fatal
    rs = T.ShardLoader(tmp_path, _pre, _id_tok, 4, resampled=True, seed=0, rank=0, world_size=1)
    r1, r2 = ([_ids(t) for _, t, _ in rs.batches(0)] for _ in range(2))
    assert len(r1) == 5 and r1 == r2
    with pytest.raises(ValueError, match="cannot be split"):
        T.ShardLoader(tmp_path, _pre, _id_tok, 2, workers=3, rank=0, world_size=2)
    with pytest.raises(FileNotFoundError, match="sizes.json"):
        T.ShardLoader(tmp_path / "shard-000000.tar", _pre, _id_tok, 2, size_file=tmp_path / "nope.json")


def test_train_on_shards(tmp_path):
    (tmp_path / "sh").mkdir(); _write_shards(tmp_path / "sh")
    m = Standin()
    res = T.train(m, T.ShardLoader(tmp_path / "sh", _pre, lambda t: tok(t), 4, shuffle_buffer=2), tmp_path / "run",
                  epochs=2, lr=1e-3, warmup=2, show_progress=False)
    assert res.step == 10 and res.skipped >= 1 and math.isfinite(res.loss)
    assert len(T.read_log(tmp_path / "run")) == 10


# ---------------------------------------------------------------- checkpoints, resume, faults
def _run(tmp, steps=13, callback=None, resume=True, model=None, save_every=4):
    ims, caps = corpus(40)
    torch.manual_seed(0)
    m = model or Standin()
    res = T.train(m, T.StoreLoader(ims, caps, tok, 8, seed=5), tmp, steps=steps, lr=3e-3, warmup=3,
                  save_every=save_every, resume=resume, callback=callback, show_progress=False)
    return m, res


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_at_random_step_then_resume_is_bitwise_equal(tmp_path, sig):
    ref, ref_res = _run(tmp_path / "ref")
    k = random.SystemRandom().randrange(1, 13)  # steps_per_epoch = 5: interrupts land in every epoch over many runs
    def cb(step, loss):
        if step == k: os.kill(os.getpid(), sig)
    _, r1 = _run(tmp_path / "cut", callback=cb)
    assert r1.interrupted and r1.step == k, (k, r1)
    assert T.load_train_state(r1.checkpoint, Standin())["step"] == k
    torch.manual_seed(123)
    m2, r2 = _run(tmp_path / "cut", model=Standin())  # a fresh, differently initialised model
    assert r2.resumed_from == k and r2.step == 13 and not r2.interrupted
    same_state(ref.state_dict(), m2.state_dict())  # bitwise
    log = T.read_log(tmp_path / "cut")
    assert log.step.tolist() == list(range(1, 14))
    np.testing.assert_array_equal(log.loss.to_numpy(), T.read_log(tmp_path / "ref").loss.to_numpy())
    assert r2.loss == ref_res.loss


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    m = Standin(nan_at=7)
    with pytest.raises(FloatingPointError, match="step 7.*last good checkpoint"):
        _run(tmp_path, model=m, save_every=2)
    st = T.load_train_state(tmp_path / "checkpoint.pt", Standin())
    assert st["step"] == 6 and all(torch.isfinite(v).all() for v in st["model"].values())
    assert T.read_log(tmp_path).step.max() == 6


KILLED_SAVE = STANDIN + textwrap.dedent('''
    import os, signal, sys, numpy as np, torch
    from clip_repro import train as T
    torch.set_num_threads(1)
    sys.path.insert(0, sys.argv[2]); from test_train import tok, corpus
    real_save, n = torch.save, [0]
    def dying_save(obj, f, *a, **k):
        n[0] += 1
        if n[0] == 3:  # the third checkpoint: write half of it, then die without cleaning up
            real_save(obj, f); data = open(f, "rb").read(); open(f, "wb").write(data[: len(data) // 2])
            os.kill(os.getpid(), signal.SIGKILL)
        return real_save(obj, f, *a, **k)
    torch.save = dying_save
    ims, caps = corpus(40); torch.manual_seed(0)
    T.train(Standin(), T.StoreLoader(ims, caps, tok, 8, seed=5), sys.argv[1], steps=13, lr=3e-3, warmup=3, save_every=4,
            show_progress=False)
''')


def test_killed_during_save_keeps_previous_checkpoint(tmp_path):
    run = tmp_path / "run"
    p = subprocess.run([sys.executable, "-c", KILLED_SAVE, str(run), str(Path(__file__).parent)], capture_output=True, text=True,
                       env={**os.environ, "CLIP_REPRO_QUIET": "1"}, timeout=120)
    assert p.returncode == -signal.SIGKILL, p.stderr[-2000:]
    assert list(run.glob(".checkpoint.pt.*.partial")), "the save should have died mid-write"
    assert T.load_train_state(run / "checkpoint.pt", Standin())["step"] == 8  # saves at 4, 8; died saving 12
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the killed process: a different thread count may change float summation order
    try:
        ref, _ = _run(tmp_path / "ref")
        m, res = _run(run, model=Standin())  # resume from step 8
    finally:
        torch.set_num_threads(threads)
    assert res.resumed_from == 8 and not list(run.glob(".checkpoint.pt.*.partial"))
    same_state(ref.state_dict(), m.state_dict())


def test_resume_refuses_changed_settings(tmp_path):
    _run(tmp_path, steps=4)
    ims, caps = corpus(40)
    with pytest.raises(ValueError, match="batch_size"):
        T.train(Standin(), T.StoreLoader(ims, caps, tok, 4, seed=5), tmp_path, steps=4, lr=3e-3, warmup=3, show_progress=False)


def test_bad_inputs_raise_clear_errors(tmp_path):
    ims, caps = corpus(8)
    with pytest.raises(ValueError, match="one caption per image"): T.StoreLoader(ims, caps[:3], tok, 2)
    with pytest.raises(ValueError, match="cannot fill"): T.StoreLoader(ims, caps, tok, 16)
    with pytest.raises(TypeError, match="encode_image"): T.train(nn.Linear(2, 2), T.StoreLoader(ims, caps, tok, 2), tmp_path)
    (tmp_path / "checkpoint.pt").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a readable training checkpoint"):
        T.train(Standin(), T.StoreLoader(ims, caps, tok, 2), tmp_path, steps=1, show_progress=False)


# ---------------------------------------------------------------- CLI
def test_cli_trains_on_shards(tmp_path, capsys):
    import clip_repro.model  # noqa: F401
    from clip_repro.tokenizer import learn_bpe
    _write_shards(tmp_path, per=4, corrupt=())
    learn_bpe([f"sample {i} of the shards" for i in range(40)] * 3, 520, show_progress=False).save(tmp_path / "bpe.json")
    argv = ["--model", "toy-vit", "--shards", str(tmp_path), "--tokenizer", str(tmp_path / "bpe.json"), "--run-dir",
            str(tmp_path / "run"), "--batch-size", "4", "--steps", "2", "--warmup", "1", "--quiet", "--context-length", "16"]
    assert T.main(argv) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["step"] == 2 and not out["interrupted"]
    st = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    assert st["config"]["vision_patch_size"] == 4 and st["config"]["context_length"] == 16 and st["extra"]["hparams"]["lr"] == 5e-4


def test_size_file_forms(tmp_path):
    (tmp_path / "n.txt").write_text("12\n")
    (tmp_path / "total.json").write_text('{"num_samples": 7}')
    (tmp_path / "sizes.json").write_text('{"a.tar": 3, "b.tar": 4}')
    assert T.read_size_file(tmp_path / "n.txt") == 12
    assert T.read_size_file(tmp_path / "total.json") == 7
    assert T.read_size_file(tmp_path / "sizes.json", ["x/a.tar"]) == 3
    with pytest.raises(ValueError, match="no count for shards"): T.read_size_file(tmp_path / "sizes.json", ["c.tar"])
    (tmp_path / "bad").write_text("twelve")
    with pytest.raises(ValueError, match="neither JSON nor an integer"): T.read_size_file(tmp_path / "bad")


def test_grad_clip_limits_the_update(tmp_path):
    ims, caps = corpus(16)
    torch.manual_seed(0); a = Standin(); b = Standin(); b.load_state_dict(a.state_dict()); w0 = a.visual[1].weight.clone()
    T.train(a, T.StoreLoader(ims, caps, tok, 8), tmp_path / "a", steps=1, lr=1e-2, warmup=1, show_progress=False)
    T.train(b, T.StoreLoader(ims, caps, tok, 8), tmp_path / "b", steps=1, lr=1e-2, warmup=1, grad_clip=1e-12,
            show_progress=False)
    # Adam's first step is ±lr wherever the gradient is non-zero, clipped or not; clipping to ~0 makes ε dominate instead.
    assert (a.visual[1].weight - w0).abs().max() > 5e-3 > (b.visual[1].weight - w0).abs().max()
