"""Generation speed of clip_repro.world on one core, against torchvision's FakeData (random pixels) as a peer floor.

    .venv/bin/python benchmarks/bench_world.py [--n 2000] [--resolution 64] [--rounds 3]

Prints images/s (median of rounds, one thread) for: sample+render of a scene; a full pre-training sample (scene of the
corpus mixture + caption); the same plus PNG encoding (what the shard writer does); torchvision FakeData's
__getitem__ (a PIL image of random noise), and the ratio ours / FakeData (> 1.0: ours is faster).
The issue's target is >= 1,000 images/s/core at 64x64 for generation.
"""
import argparse, io

import numpy as np
import torch

from clip_repro.world import World, WorldConfig, corpus_item, rng_for

from _timing import interleaved, medians


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--resolution", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    from torchvision.datasets import FakeData
    from PIL import Image
    w = World(WorldConfig(resolution=a.resolution))
    fake = FakeData(size=a.n, image_size=(3, a.resolution, a.resolution))
    for i in range(200): w.render(w.sample(rng_for(0, "warm", i))); corpus_item(w, "wit", i)  # warm the mask cache

    def png(i):
        img = corpus_item(w, "wit", i)[0]
        Image.fromarray(img).save(io.BytesIO(), "PNG", compress_level=1)

    cases = {"sample+render": lambda i: w.render(w.sample(rng_for(1, "bench", i))),
             "corpus item (+caption)": lambda i: corpus_item(w, "wit", i),
             "corpus item + PNG": png,
             "torchvision FakeData": lambda i: fake[i]}
    # a round is n images of one case; rounds interleaved, so a noisy neighbour hurts every case alike (warm: above)
    times = interleaved({k: (lambda f=f: [f(i) for i in range(a.n)]) for k, f in cases.items()}, a.rounds, warmup=0)
    med = {k: a.n / t for k, t in medians(times).items()}  # images/s
    print(f"one core, {a.resolution}x{a.resolution}, n={a.n}, median of {a.rounds} rounds")
    for k, v in med.items():
        print(f"  {k:26s} {v:8.0f} images/s   ratio vs FakeData {v / med['torchvision FakeData']:.2f}")
    ok = med["sample+render"] >= 1000
    print(f"target >= 1000 images/s/core for generation: {'met' if ok else 'NOT met'} ({med['sample+render']:.0f})")
    return med


if __name__ == "__main__":
    main()
