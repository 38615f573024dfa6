"""Committed outputs: every notebook in nbs/ that carries outputs came from the run recorded in nbs/_run_manifest.json.

`clip-repro run --scale toy --inplace` writes the executed notebooks over their sources and copies the run's manifest
to nbs/_run_manifest.json. Each entry records the notebook's code hash (cells + library, `clip_repro.run.code_hash`) and
the hash of its outputs as written into nbs/ (`outputs_hash` of `stripped_notebook`). The first test checks the
checkout; the others check, on a throwaway checkout run end to end, that the check passes on honest outputs and catches
a tampered output, an edited cell, a library change and a missing manifest — so they test something real also while
no notebook in nbs/ carries outputs.
"""
import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from clip_repro.run import COMMITTED_MANIFEST, code_hash, committed_output_problems, has_outputs, list_notebooks, outputs_hash

ROOT = Path(__file__).resolve().parents[1]
KS = {"name": "python3", "display_name": "python3", "language": "python"}


def test_committed_notebooks_match_the_recorded_run():
    nbs = ROOT / "nbs"
    carrying = [nb.stem for nb in list_notebooks(nbs) if has_outputs(nb)]
    problems = committed_output_problems(nbs, ROOT / "clip_repro")
    assert problems == [], "\n".join(problems)
    if carrying:  # the check above covered them: say so in the entries too
        entries = json.loads((nbs / COMMITTED_MANIFEST).read_text())["notebooks"]
        for stem in carrying:
            assert entries[stem]["code_hash"] == code_hash(nbs / f"{stem}.ipynb", ROOT / "clip_repro")
            assert entries[stem]["outputs_hash"] == outputs_hash(nbs / f"{stem}.ipynb")


@pytest.fixture(scope="module")
def executed_checkout(tmp_path_factory):
    "A tiny checkout run with --inplace: two notebooks whose outputs (a print and an image) are now in nbs/."
    root = tmp_path_factory.mktemp("checkout")
    (root / "settings.ini").write_text("[DEFAULT]\nlib_name = x\n")
    for d in ("nbs", "clip_repro", "params"): (root / d).mkdir()
    (root / "clip_repro" / "m.py").write_text("A = 1\n")
    for s in ("smoke", "toy", "paper"): (root / "params" / f"{s}.yaml").write_text("common: {}\nnotebooks: {}\n")
    params = 'scale = "smoke"  # s\nrun_dir = "../runs/smoke"  # r'
    bodies = {"00_text": "print('scale is', scale)\n6 * 7",
              "01_figure": "%matplotlib inline\nimport matplotlib.pyplot as plt\n"
                           "fig, ax = plt.subplots(figsize=(2, 2)); ax.plot([0, 1], [1, 0]); plt.show()"}
    for name, body in bodies.items():
        cells = [nbformat.v4.new_markdown_cell(f"# {name}"), nbformat.v4.new_code_cell(params, metadata={"tags": ["parameters"]}),
                 nbformat.v4.new_code_cell(body)]
        nbformat.write(nbformat.v4.new_notebook(cells=cells, metadata={"kernelspec": KS}), root / "nbs" / f"{name}.ipynb")
    r = subprocess.run([sys.executable, "-m", "clip_repro.run", "--scale", "toy", "--inplace", "--no-progress", "--out", str(root / "runs" / "toy")],
                       cwd=root, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return root


def test_honest_outputs_pass(executed_checkout):
    nbs = executed_checkout / "nbs"
    assert all(has_outputs(nb) for nb in list_notebooks(nbs))
    fig = json.loads((nbs / "01_figure.ipynb").read_text())
    assert any("image/png" in o.get("data", {}) for c in fig["cells"] for o in c.get("outputs", []))
    assert committed_output_problems(nbs, executed_checkout / "clip_repro") == []


def test_nbdev_clean_keeps_the_outputs_hash(executed_checkout, tmp_path):
    from nbdev.clean import clean_nb
    nb = json.loads((executed_checkout / "nbs" / "00_text.ipynb").read_text())
    h = outputs_hash(nb)
    clean_nb(nb, allowed_cell_metadata_keys=["tags"])
    assert outputs_hash(nb) == h


def _copy(src: Path, dst: Path) -> Path:
    import shutil
    shutil.copytree(src, dst)
    return dst


def test_tampered_output_is_detected(executed_checkout, tmp_path):
    root = _copy(executed_checkout, tmp_path / "c")
    p = root / "nbs" / "00_text.ipynb"
    nb = json.loads(p.read_text())
    for c in nb["cells"]:
        for o in c.get("outputs", []):
            if o.get("output_type") == "execute_result": o["data"]["text/plain"] = "43"  # the run printed 42
    p.write_text(json.dumps(nb, indent=1))
    problems = committed_output_problems(root / "nbs", root / "clip_repro")
    assert len(problems) == 1 and problems[0].startswith("00_text: outputs hash"), problems


def test_edited_cell_library_change_and_missing_manifest_are_detected(executed_checkout, tmp_path):
    root = _copy(executed_checkout, tmp_path / "c")
    p = root / "nbs" / "01_figure.ipynb"
    nb = json.loads(p.read_text()); nb["cells"][-1]["source"] += "\n# edited after the run"
    p.write_text(json.dumps(nb, indent=1))
    problems = committed_output_problems(root / "nbs", root / "clip_repro")
    assert problems == [problems[0]] and problems[0].startswith("01_figure: code hash"), problems
    (root / "clip_repro" / "m.py").write_text("A = 2\n")
    assert {p.split(":")[0] for p in committed_output_problems(root / "nbs", root / "clip_repro")} == {"00_text", "01_figure"}
    (root / "nbs" / COMMITTED_MANIFEST).unlink()
    problems = committed_output_problems(root / "nbs", root / "clip_repro")
    assert len(problems) == 1 and "_run_manifest.json is missing" in problems[0]
