"""Nearest-neighbour search for the Appendix C overlap analysis: faiss (exact `IndexFlatIP`, and IVF) against a
brute-force NumPy search (matrix product + argpartition) on the same unit-norm embeddings (issue 8, item 7).
The synthetic embeddings are clustered, and each query is a slightly perturbed copy of a corpus item (the near-duplicate
case the search exists for).

Both give each query's top-k corpus items by inner product; the exact faiss index must agree with NumPy (checked
before timing). Timed interleaved (faiss and NumPy alternate, the order flipping each repeat) so load drifts hit both;
the median of the repeats is reported. The printed ratio is NumPy time / faiss time: above 1.0 means faiss is faster.

    .venv/bin/python benchmarks/bench_overlap.py                         # 100k x 128 corpus, 2k queries, k=1
    .venv/bin/python benchmarks/bench_overlap.py --corpus 20000 --queries 1000 --dim 64 --k 5 --threads 2
"""
from __future__ import annotations

import argparse, time

import numpy as np

from _timing import interleaved, medians


def numpy_search(corpus: np.ndarray, queries: np.ndarray, k: int, batch: int = 1024):
    "Brute-force top-k inner products with NumPy, batched over queries."
    D, I = [], []
    for i in range(0, len(queries), batch):
        s = queries[i:i + batch] @ corpus.T                              # (b, N)
        part = np.argpartition(-s, k - 1, axis=1)[:, :k]                 # unordered top-k
        ps = np.take_along_axis(s, part, 1)
        order = np.argsort(-ps, axis=1)
        I.append(np.take_along_axis(part, order, 1)); D.append(np.take_along_axis(ps, order, 1))
    return np.concatenate(D), np.concatenate(I)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=int, default=100_000); ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--dim", type=int, default=128); ap.add_argument("--k", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5); ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--clusters", type=int, default=256); ap.add_argument("--nlist", type=int, default=None); ap.add_argument("--nprobe", type=int, default=8)
    a = ap.parse_args(argv)
    import faiss
    from clip_repro.overlap import build_index, search
    faiss.omp_set_num_threads(a.threads)
    try:
        from threadpoolctl import threadpool_limits; threadpool_limits(a.threads)
    except ImportError:
        pass
    rng = np.random.default_rng(0)
    norm = lambda x: (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    # embeddings cluster (by content), and overlap queries are near-copies of corpus items: a clustered corpus, and
    # queries that are noisy copies of random corpus items
    centres = rng.standard_normal((a.clusters, a.dim))
    corpus = norm(centres[rng.integers(a.clusters, size=a.corpus)] + 0.6 * rng.standard_normal((a.corpus, a.dim)))
    queries = norm(corpus[rng.integers(a.corpus, size=a.queries)] + 0.05 * rng.standard_normal((a.queries, a.dim)))

    flat = build_index(corpus, kind="flat")
    t = time.perf_counter(); ivf = build_index(corpus, kind="ivf", nlist=a.nlist); ivf_build = time.perf_counter() - t
    nlist = faiss.extract_index_ivf(ivf).nlist
    fD, fI = search(flat, queries, k=a.k, show_progress=False)
    nD, nI = numpy_search(corpus, queries, a.k)
    agree = (fI == nI).mean()
    assert agree > 0.999 and np.allclose(fD, nD, atol=1e-4), f"faiss and NumPy disagree ({agree:.4f} of ids equal)"
    iD, iI = search(ivf, queries, k=a.k, nprobe=a.nprobe, show_progress=False)
    recall = (iI[:, 0] == nI[:, 0]).mean()

    fns = {"numpy": lambda: numpy_search(corpus, queries, a.k),
           "faiss flat": lambda: search(flat, queries, k=a.k, show_progress=False),
           f"faiss IVF{nlist} nprobe={a.nprobe}": lambda: search(ivf, queries, k=a.k, nprobe=a.nprobe, show_progress=False)}
    names = list(fns)
    med = medians(interleaved(fns, a.repeats))
    print(f"corpus {a.corpus} x {a.dim}, {a.queries} queries, k={a.k}, threads={a.threads}, median of {a.repeats}")
    print(f"exact faiss == NumPy on {agree:.1%} of ids; IVF top-1 recall vs exact {recall:.3f} (build {ivf_build:.2f}s)")
    for n in names:
        print(f"  {n:28s} {med[n] * 1e3:9.1f} ms   {a.queries / med[n]:10.0f} queries/s   ratio numpy/this {med['numpy'] / med[n]:6.2f}")


if __name__ == "__main__":
    main()
