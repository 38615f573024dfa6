"""The benchmarks: their shared interleaved timing loop, and each one run end to end on a tiny case (their numbers are
not checked here; a benchmark is read by a person, but one that no longer runs is caught)."""
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("bench_timing", ROOT / "benchmarks" / "_timing.py")
timing = importlib.util.module_from_spec(_spec); _spec.loader.exec_module(timing)


def test_interleaved_flips_the_order_and_times_every_call():
    log = []
    fns = {k: (lambda k=k: log.append(k)) for k in "abc"}
    times = timing.interleaved(fns, repeats=3, warmup=1)
    assert log == list("abc") + list("abc") + list("cba") + list("abc")  # warm-up, then the order flips each repeat
    assert list(times) == list("abc") and all(len(v) == 3 and min(v) >= 0 for v in times.values())


def test_interleaved_summaries():
    times = {"x": [3.0, 1.0, 2.0, 10.0, 2.5], "y": [4.0]}
    assert timing.medians(times) == {"x": 2.5, "y": 4.0}
    assert timing.bests(times) == {"x": 1.0, "y": 4.0}


@pytest.mark.parametrize("fns, repeats, warmup, err, match", [
    ({}, 1, 1, ValueError, "fns is empty"),
    ({"a": lambda: None}, 0, 1, ValueError, "repeats >= 1"),
    ({"a": lambda: None}, 1, -1, ValueError, "warmup >= 0"),
    ({"a": lambda: None, "b": 3}, 1, 1, TypeError, r"not callable: \['b'\]"),
])
def test_interleaved_bad_input(fns, repeats, warmup, err, match):
    with pytest.raises(err, match=match): timing.interleaved(fns, repeats, warmup)


@pytest.mark.parametrize("script, args, expect", [
    ("bench_detector.py", ["--width", "4", "--batch", "4", "--resolution", "32", "--repeats", "2", "--threads", "1"], "ratio NCHW/this"),
    ("bench_overlap.py", ["--corpus", "2000", "--queries", "50", "--dim", "16", "--clusters", "8", "--nlist", "8", "--repeats", "2"], "ratio numpy/this"),
    ("bench_model.py", ["--models", "toy-rn", "--toy-batch", "2", "--repeats", "1"], "Slower by median"),
    ("bench_world.py", ["--n", "20", "--resolution", "32", "--rounds", "2"], "ratio vs FakeData"),
])
def test_benchmark_runs(script, args, expect):
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert expect in r.stdout, r.stdout[-3000:]
