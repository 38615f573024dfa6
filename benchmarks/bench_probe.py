"""Benchmark the A.3 linear probe: scikit-learn L-BFGS (the paper's) vs our PyTorch L-BFGS backend.

Synthetic features of the CIFAR-100 shape (50,000 x 512, 100 classes; 10,000 test) by default, `--quick` for a
small set. Prints, for one fit at a fixed λ and for the whole A.3 λ sweep (validation split off the training set,
refit on train+val): wall time of each backend, the speed ratio sklearn/torch, test accuracy of each, and the number
of fits the parametric binary search used against the 97-point grid.

    python benchmarks/bench_probe.py --quick          # seconds
    python benchmarks/bench_probe.py                  # the 50,000 x 512 x 100 set (minutes on 2 cores)
    python benchmarks/bench_probe.py --no-sweep --repeat 3   # single cold fits only; median of 3 alternating pairs
    python benchmarks/bench_probe.py --no-sweep --tol 1e-6   # single fits run closer to the optimum
"""
from __future__ import annotations
import argparse, json, time, warnings
import numpy as np
import torch

from clip_repro.probe import fit_logreg, linear_probe, probe_score, lambda_grid


def synthetic_features(n_train: int, n_test: int, dim: int, n_classes: int, seed: int = 0, noise: float = 8.0):
    "Gaussian class clusters with a shared random covariance, scaled like unit-norm-ish embeddings."
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_classes, dim))
    mix = rng.normal(size=(dim, dim)) / np.sqrt(dim)
    def draw(n):
        y = rng.integers(0, n_classes, n)
        X = centres[y] + noise * rng.normal(size=(n, dim)) @ mix
        return (X / np.sqrt(dim)).astype(np.float32), y
    return (*draw(n_train), *draw(n_test))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small set (2,000 x 64, 10 classes) for a fast check")
    ap.add_argument("--n-train", type=int, default=None); ap.add_argument("--n-test", type=int, default=None)
    ap.add_argument("--dim", type=int, default=None); ap.add_argument("--classes", type=int, default=None)
    ap.add_argument("--lam", type=float, default=1e-4, help="λ of the single-fit comparison (mean-loss convention)")
    ap.add_argument("--tol", type=float, default=1e-4, help="gradient tolerance of both backends (A.3 / scikit-learn default 1e-4)")
    ap.add_argument("--threads", type=int, default=2, help="CPU threads for both torch and scikit-learn's BLAS/OpenMP")
    ap.add_argument("--no-sweep", action="store_true", help="only the single-fit comparison")
    ap.add_argument("--repeat", type=int, default=1, help="single-fit pairs to time (sklearn, torch alternating); the median ratio is reported")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default=None, choices=["float32", "float64"],
                    help="arithmetic of both backends (default: float32 for torch, the features' float32 for scikit-learn)")
    ap.add_argument("--json", default=None, help="also write the results to this JSON file")
    a = ap.parse_args(argv)
    n_train, n_test, dim, k = (2_000, 500, 64, 10) if a.quick else (50_000, 10_000, 512, 100)
    n_train, n_test = a.n_train or n_train, a.n_test or n_test
    dim, k = a.dim or dim, a.classes or k
    torch.set_num_threads(a.threads)
    from threadpoolctl import threadpool_limits
    threadpool_limits(limits=a.threads)  # the same thread budget for scikit-learn's BLAS and OpenMP
    warnings.filterwarnings("ignore")
    Xtr, ytr, Xte, yte = synthetic_features(n_train, n_test, dim, k)
    print(f"features: train {Xtr.shape}, test {Xte.shape}, {k} classes, torch threads {a.threads}, device {a.device}")
    out = dict(n_train=n_train, n_test=n_test, dim=dim, classes=k, threads=a.threads, device=a.device, dtype=a.dtype, tol=a.tol)

    # warm-up: the first torch call in a process pays one-off initialisation; keep it out of the timings
    fit_logreg(Xtr[:200], ytr[:200], a.lam, "torch", device=a.device, max_iter=5)
    res, ratios = {}, []
    for rep in range(a.repeat):  # alternate the backends so that both see the same load on a shared machine
        for be in ("sklearn", "torch"):
            t = time.perf_counter()
            p = fit_logreg(Xtr, ytr, a.lam, be, device=a.device, dtype=a.dtype, tol=a.tol)
            res[be] = dict(seconds=time.perf_counter() - t, n_iter=p.n_iter, converged=p.converged,
                           test_acc=probe_score(p, Xte, yte))
            print(f"single fit λ={a.lam:g} {be:8s}: {res[be]['seconds']:8.2f} s, {p.n_iter} iterations, "
                  f"converged={p.converged}, test accuracy {100 * res[be]['test_acc']:.2f}%")
        ratios.append(res["sklearn"]["seconds"] / res["torch"]["seconds"])
    ratio = float(np.median(ratios))
    diff = 100 * abs(res["sklearn"]["test_acc"] - res["torch"]["test_acc"])
    print(f"single fit: speed ratio sklearn/torch = {ratio:.1f}x" + (f" (median of {a.repeat}: {', '.join(f'{r:.1f}' for r in ratios)})" if a.repeat > 1 else "")
          + f"; |Δ test accuracy| = {diff:.2f} points")
    out["single_fit"] = dict(lam=a.lam, **{f"{b}_{kk}": v for b in res for kk, v in res[b].items()},
                             speed_ratio=ratio, speed_ratios=ratios, acc_diff_points=diff)

    if not a.no_sweep:
        sw = {}
        for be in ("sklearn", "torch"):
            t = time.perf_counter()
            r = linear_probe(Xtr, ytr, Xte, yte, backend=be, device=a.device, show_progress=True)
            sw[be] = dict(seconds=time.perf_counter() - t, lam=r.best_lambda, test_acc=r.test_score, n_fits=r.sweep.n_fits)
            print(f"A.3 sweep {be:8s}: {sw[be]['seconds']:8.2f} s, best λ {r.best_lambda:.3g}, "
                  f"test accuracy {100 * r.test_score:.2f}%, fits used {r.sweep.n_fits} of {len(lambda_grid())} grid points (+1 refit)")
        ratio = sw["sklearn"]["seconds"] / sw["torch"]["seconds"]
        print(f"A.3 sweep: speed ratio sklearn/torch = {ratio:.1f}x; fits used {sw['sklearn']['n_fits']} vs {len(lambda_grid())}")
        out["sweep"] = dict(**{f"{b}_{kk}": v for b in sw for kk, v in sw[b].items()}, speed_ratio=ratio,
                            grid_size=len(lambda_grid()))
    if a.json:
        with open(a.json, "w") as f: json.dump(out, f, indent=2)
    return out


if __name__ == "__main__":
    main()
