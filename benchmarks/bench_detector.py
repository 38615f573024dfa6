"""One training step of the Appendix C near-duplicate detector (forward + backward + AdamW on a batch of images and
their copies) in the NHWC memory layout the detector uses (`channels_last`), against the same model and batch in the
default NCHW layout: the peer is PyTorch's default, run side by side in one process.

The two models start from the same weights and see the same batches; their losses must agree (checked before timing).
Steps are timed interleaved (the order flipping each repeat) so load drifts hit both; the median is reported. The
printed ratio is NCHW time / NHWC time: above 1.0 means the detector's layout is faster.

    .venv/bin/python benchmarks/bench_detector.py                               # toy config: width 16, small_blur, 32 px, batch 64
    .venv/bin/python benchmarks/bench_detector.py --width 32 --batch 128 --threads 1
"""
from __future__ import annotations

import argparse, copy

import torch

from _timing import interleaved, medians


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=int, default=16); ap.add_argument("--resolution", type=int, default=32)
    ap.add_argument("--stem", default="small_blur"); ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=15); ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)
    from clip_repro.overlap import DetectorConfig, DuplicateDetector, info_nce_loss
    torch.set_num_threads(a.threads); torch.manual_seed(0)
    nhwc = DuplicateDetector(DetectorConfig(layers=(1, 1, 1, 1), width=a.width, embed_dim=64, resolution=a.resolution, stem=a.stem))
    nchw = copy.deepcopy(nhwc).to(memory_format=torch.contiguous_format)
    assert nhwc.stem[0].parametrizations.weight.original1.is_contiguous(memory_format=torch.channels_last)
    assert nchw.stem[0].parametrizations.weight.original1.is_contiguous()

    class Plain(torch.nn.Module):  # the peer: the same network, fed and run in NCHW
        def __init__(self, m): super().__init__(); self.m = m
        def forward(self, x):
            return torch.nn.functional.normalize(self.m.proj(self.m.blocks(self.m.stem(x.contiguous())).mean(dim=(2, 3))), dim=-1)
    models = {"NCHW (PyTorch default)": Plain(nchw), "NHWC (detector)": nhwc}
    opts = {n: torch.optim.AdamW(m.parameters(), lr=1e-3) for n, m in models.items()}
    x = torch.randn(2, a.batch, 3, a.resolution, a.resolution)

    def step(name):
        m, o = models[name], opts[name]
        loss = info_nce_loss(m(x[0]), m(x[1])); o.zero_grad(); loss.backward(); o.step()
        return loss.item()
    l = {n: step(n) for n in models}
    assert abs(l["NCHW (PyTorch default)"] - l["NHWC (detector)"]) < 1e-4 * max(1.0, abs(l["NHWC (detector)"])), l
    names = list(models)
    med = medians(interleaved({n: (lambda n=n: step(n)) for n in names}, a.repeats))
    print(f"detector width {a.width}, {a.stem}, {a.resolution} px, batch {a.batch} (+ copies), threads={a.threads}, median of {a.repeats}")
    print(f"losses after one step agree: {l}")
    base = med["NCHW (PyTorch default)"]
    for n in names:
        print(f"  {n:24s} {med[n] * 1e3:8.1f} ms/step   ratio NCHW/this {base / med[n]:5.2f}")


if __name__ == "__main__":
    main()
