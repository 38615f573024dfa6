"""The papermill runner end to end: CLI errors, manifest, skip-on-rerun, resume after a kill, --inplace."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

PY = sys.executable
KS = {"name": "python3", "display_name": "python3", "language": "python"}


def _nb(path: Path, body: str, params='scale = "smoke"  # s\nrun_dir = "../runs/smoke"  # r'):
    cells = [nbformat.v4.new_markdown_cell(f"# {path.stem}"),
             nbformat.v4.new_code_cell(params, metadata={"tags": ["parameters"]}),
             nbformat.v4.new_code_cell(body)]
    nbformat.write(nbformat.v4.new_notebook(cells=cells, metadata={"kernelspec": KS}), path)


@pytest.fixture
def mini(tmp_path):
    "A tiny checkout: settings.ini, nbs/ with three notebooks, an empty library, params/."
    (tmp_path / "settings.ini").write_text("[DEFAULT]\nlib_name = x\n")
    (tmp_path / "nbs").mkdir(); (tmp_path / "clip_repro").mkdir(); (tmp_path / "params").mkdir()
    (tmp_path / "clip_repro" / "m.py").write_text("A = 1\n")
    for s in ("smoke", "toy", "paper"):
        (tmp_path / "params" / f"{s}.yaml").write_text("common: {}\nnotebooks: {}\n")
    _nb(tmp_path / "nbs" / "00_first.ipynb", "from pathlib import Path\nPath(run_dir, 'first.txt').write_text(scale)")
    _nb(tmp_path / "nbs" / "01_slow.ipynb", "import time, os\nfrom pathlib import Path\n"
        "Path(run_dir, 'slow_started').write_text('1')\nwhile not Path(run_dir, 'go').exists(): time.sleep(0.1)")
    _nb(tmp_path / "nbs" / "02_last.ipynb", "x = 1 / 0 if scale == 'boom' else 1")
    return tmp_path


def _run(cwd, *args, **kw):
    return subprocess.run([PY, "-m", "clip_repro.run", *args], cwd=cwd, capture_output=True, text=True, timeout=300, **kw)


def test_cli_errors_exit_2_and_touch_nothing(mini):
    out = mini / "runs" / "x"
    r = _run(mini, "--scale", "smoke", "--only", "no_such_notebook", "--out", str(out))
    assert r.returncode == 2
    assert "valid names: 00_first, 01_slow, 02_last" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = _run(mini, "--scale", "huge")
    assert r.returncode == 2 and "smoke" in r.stderr and "paper" in r.stderr
    r = _run(mini, "--params", str(mini / "nope.yaml"), "--out", str(out))
    assert r.returncode == 2 and "not found" in r.stderr
    (mini / "bad.yaml").write_text("notebooks:\n  00_first:\n    nope: 1\n")
    r = _run(mini, "--params", str(mini / "bad.yaml"), "--out", str(out))
    assert r.returncode == 2 and "undeclared parameter(s) nope" in r.stderr and "declares: scale, run_dir" in r.stderr
    (mini / "bad.yaml").write_text("- just\n- a list\n")
    r = _run(mini, "--params", str(mini / "bad.yaml"), "--out", str(out))
    assert r.returncode == 2 and "malformed" in r.stderr
    assert not out.exists()  # nothing written


def test_failure_is_reported_and_run_continues(mini):
    (mini / "params" / "smoke.yaml").write_text("common: {}\nnotebooks: {}\n")
    (mini / "nbs" / "01_slow.ipynb").unlink()
    _nb(mini / "nbs" / "01_fails.ipynb", "raise ValueError('planted failure')")
    out = mini / "runs" / "f"
    r = _run(mini, "--out", str(out), "--no-progress")
    assert r.returncode == 1
    assert "01_fails (cell 2: ValueError: planted failure)" in r.stderr
    m = json.loads((out / "manifest.json").read_text())
    assert m["notebooks"]["00_first"]["status"] == "ok" and m["notebooks"]["02_last"]["status"] == "ok"
    assert m["notebooks"]["01_fails"]["status"] == "failed" and m["notebooks"]["01_fails"]["failed_cell"] == 2
    assert (out / "notebooks" / "01_fails.ipynb").exists()  # the executed copy with the traceback is kept
    for line in ("00_first", "01_fails", "02_last"): assert line in r.stdout  # summary table


def test_killed_run_resumes_where_it_stopped(mini):
    out = mini / "runs" / "k"
    p = subprocess.Popen([PY, "-m", "clip_repro.run", "--out", str(out), "--no-progress"], cwd=mini,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                         # a shell's background job (`cmd &`, nohup) starts with SIGINT ignored and children inherit that:
                         # give the runner the default disposition, as a terminal does, so that Ctrl-C reaches it
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    t0 = time.time()
    while not (out / "slow_started").exists():
        assert time.time() - t0 < 120 and p.poll() is None, p.communicate()
        time.sleep(0.2)
    os.killpg(p.pid, signal.SIGINT)  # like Ctrl-C in a terminal: the runner and its kernel
    p.communicate(timeout=120)
    m = json.loads((out / "manifest.json").read_text())
    assert m["notebooks"]["00_first"]["status"] == "ok"
    assert m["notebooks"].get("01_slow", {}).get("status") != "ok" and "02_last" not in m["notebooks"]
    (out / "go").write_text("1")
    r = _run(mini, "--out", str(out), "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "00_first: already done" in r.stdout and "01_slow: already done" not in r.stdout
    m = json.loads((out / "manifest.json").read_text())
    assert all(m["notebooks"][n]["status"] == "ok" for n in ("00_first", "01_slow", "02_last"))
    # a third run redoes nothing; --force redoes everything; a library edit invalidates the code hash
    r = _run(mini, "--out", str(out), "--no-progress")
    assert r.stdout.count("already done") == 3
    (mini / "clip_repro" / "m.py").write_text("A = 2\n")
    r = _run(mini, "--out", str(out), "--no-progress", "--only", "00_first")
    assert "already done" not in r.stdout and r.returncode == 0


def test_inplace_rewrites_sources_without_injected_cell(mini):
    out = mini / "runs" / "i"
    src = mini / "nbs" / "00_first.ipynb"
    before = src.read_text()
    r = _run(mini, "--out", str(out), "--only", "first", "--scale", "toy", "--no-progress")
    assert r.returncode == 0, r.stderr
    assert src.read_text() == before  # sources untouched without --inplace
    r = _run(mini, "--out", str(out), "--only", "first", "--scale", "toy", "--no-progress", "--inplace", "--force")
    assert r.returncode == 0, r.stderr
    nb = json.loads(src.read_text())
    assert not any("injected-parameters" in c["metadata"].get("tags", []) for c in nb["cells"])
    assert any("parameters" in c["metadata"].get("tags", []) for c in nb["cells"])
    executed = json.loads((out / "notebooks" / "00_first.ipynb").read_text())
    assert any("injected-parameters" in c["metadata"].get("tags", []) for c in executed["cells"])
    assert (out / "first.txt").read_text() == "toy"


def test_inplace_also_writes_notebooks_skipped_as_done(mini):
    "A notebook already done is not rerun, but --inplace still writes its executed copy into nbs/ and the manifest beside it."
    from clip_repro.run import COMMITTED_MANIFEST, committed_output_problems, has_outputs, outputs_hash, stripped_notebook
    out = mini / "runs" / "s"
    src = mini / "nbs" / "00_first.ipynb"
    _nb(src, "from pathlib import Path\nprint('wrote', Path(run_dir, 'first.txt').write_text(scale))")
    r = _run(mini, "--out", str(out), "--only", "first", "--scale", "toy", "--no-progress")
    assert r.returncode == 0, r.stderr
    m = json.loads((out / "manifest.json").read_text())
    executed = out / "notebooks" / "00_first.ipynb"
    assert m["notebooks"]["00_first"]["outputs_hash"] == outputs_hash(stripped_notebook(executed))
    assert not has_outputs(src) and not (mini / "nbs" / COMMITTED_MANIFEST).exists()  # no --inplace: sources untouched
    mtime = executed.stat().st_mtime_ns
    r = _run(mini, "--out", str(out), "--only", "first", "--scale", "toy", "--no-progress", "--inplace")
    assert r.returncode == 0, r.stderr
    assert "00_first: already done" in r.stdout and "executed copy written to nbs/" in r.stdout
    assert executed.stat().st_mtime_ns == mtime  # not rerun
    nb = json.loads(src.read_text())
    assert has_outputs(src) and "wrote 3" in json.dumps(nb)  # write_text returns the 3 characters of "toy"
    assert not any("injected-parameters" in c["metadata"].get("tags", []) for c in nb["cells"])
    committed = json.loads((mini / "nbs" / COMMITTED_MANIFEST).read_text())
    assert committed == json.loads((out / "manifest.json").read_text())
    assert committed_output_problems(mini / "nbs", mini / "clip_repro") == []
    # a rerun with --inplace is idempotent: same file, same hashes
    before = src.read_text()
    r = _run(mini, "--out", str(out), "--only", "first", "--scale", "toy", "--no-progress", "--inplace")
    assert r.returncode == 0 and src.read_text() == before


def test_skip_fills_outputs_hash_of_older_manifests(mini):
    "A manifest written before `outputs_hash` existed gets the field on the next run, without rerunning the notebook."
    from clip_repro.run import outputs_hash, stripped_notebook
    out = mini / "runs" / "o"
    r = _run(mini, "--out", str(out), "--only", "first", "--no-progress")
    assert r.returncode == 0, r.stderr
    m = json.loads((out / "manifest.json").read_text())
    del m["notebooks"]["00_first"]["outputs_hash"]
    (out / "manifest.json").write_text(json.dumps(m))
    r = _run(mini, "--out", str(out), "--only", "first", "--no-progress")
    assert "00_first: already done" in r.stdout
    m = json.loads((out / "manifest.json").read_text())
    assert m["notebooks"]["00_first"]["outputs_hash"] == outputs_hash(stripped_notebook(out / "notebooks" / "00_first.ipynb"))


def test_inplace_only_merges_the_committed_manifest(mini):
    "--only X --inplace replaces X's committed entry and keeps the others'; a notebook that fails keeps its old outputs and entry."
    from clip_repro.run import COMMITTED_MANIFEST, committed_output_problems
    (mini / "nbs" / "01_slow.ipynb").unlink()
    committed = mini / "nbs" / COMMITTED_MANIFEST
    r = _run(mini, "--out", str(mini / "runs" / "a"), "--only", "first", "--scale", "toy", "--no-progress", "--inplace")
    assert r.returncode == 0, r.stderr
    first = json.loads(committed.read_text())["notebooks"]["00_first"]
    assert first["machine"]["cpus"] == os.cpu_count()  # every entry says which machine ran it
    # another run folder, another notebook: the first notebook's committed entry survives
    r = _run(mini, "--out", str(mini / "runs" / "b"), "--only", "last", "--scale", "toy", "--no-progress", "--inplace")
    assert r.returncode == 0, r.stderr
    m = json.loads(committed.read_text())
    assert set(m["notebooks"]) == {"00_first", "02_last"} and m["notebooks"]["00_first"] == first
    assert committed_output_problems(mini / "nbs", mini / "clip_repro") == []
    # 00_first, edited, now fails: its outputs in nbs/ and its committed entry stay as they were
    src = mini / "nbs" / "00_first.ipynb"
    nb = json.loads(src.read_text()); nb["cells"][-1]["source"] = "raise ValueError('planted failure')"
    src.write_text(json.dumps(nb))
    r = _run(mini, "--out", str(mini / "runs" / "a"), "--only", "first", "--scale", "toy", "--no-progress", "--inplace")
    assert r.returncode == 1 and "planted failure" in r.stderr
    assert json.loads(committed.read_text())["notebooks"] == m["notebooks"]
    assert json.loads(src.read_text())["cells"][-1]["outputs"][0]["data"]["text/plain"] in ("3", ["3"])  # the old output
    assert [p.split(":")[0] for p in committed_output_problems(mini / "nbs", mini / "clip_repro")] == ["00_first"]  # the edited cell
    # --only --inplace at another scale would mix scales in the committed notebooks: refused, nothing written
    before = committed.read_text()
    r = _run(mini, "--out", str(mini / "runs" / "c"), "--only", "first", "--scale", "smoke", "--no-progress", "--inplace")
    assert r.returncode == 2 and "records a toy run" in r.stderr and "drop --only" in r.stderr
    assert committed.read_text() == before and not (mini / "runs" / "c").exists()
