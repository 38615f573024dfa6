"""The project's shape: what users, CI and the site start from."""
import ast
import configparser
import json
import re
from pathlib import Path

import pytest

from clip_repro.run import SCALES, declared_parameters, list_notebooks, notebook_parameters, read_params
from clip_repro.site import readme_from_index, sidebar_entries

ROOT = Path(__file__).resolve().parents[1]
NBS = list_notebooks(ROOT / "nbs")


def test_top_level_layout():
    for p in ("nbs", "clip_repro", "data_cards", "tests", "params", "benchmarks", "settings.ini", "_quarto.yml",
              "Makefile", "README.md", ".ci/run"):
        assert (ROOT / p).exists(), p
    assert "make test" in (ROOT / ".ci/run").read_text()


def test_nbdev_settings_keep_papermill_tag_and_pin_below_3():
    cfg = configparser.ConfigParser(); cfg.read(ROOT / "settings.ini")
    assert "tags" in cfg["DEFAULT"]["allowed_cell_metadata_keys"].split()
    pins = [l for l in (ROOT / "requirements.txt").read_text().splitlines() if l.startswith("nbdev")]
    assert pins and re.fullmatch(r"nbdev==2\.\d+\.\d+", pins[0])
    for pkg in ("torch==2.14.1", "torchvision==0.29.1"): assert pkg in (ROOT / "requirements.txt").read_text()
    assert "open_clip_torch==3.3.0" in (ROOT / "requirements-test.txt").read_text()
    assert "open_clip" not in (ROOT / "requirements.txt").read_text()  # test-only


def test_readme_is_generated_from_index():
    assert (ROOT / "README.md").read_text() == readme_from_index(ROOT / "nbs" / "index.ipynb"), "run `make readme`"
    readme = (ROOT / "README.md").read_text()
    assert "make reproduce" in readme and "make test" in readme


@pytest.mark.parametrize("nb", NBS, ids=lambda p: p.stem)
def test_notebook_shape(nb):
    cells = json.loads(nb.read_text())["cells"]
    assert cells[0]["cell_type"] == "markdown" and "".join(cells[0]["source"]).startswith("# "), "first cell: # Title"
    params = [c for c in cells if "parameters" in c["metadata"].get("tags", [])]
    assert len(params) == 1, "exactly one papermill parameters cell"
    src = "".join(params[0]["source"])
    names = [t.id for n in ast.parse(src).body if isinstance(n, ast.Assign) for t in n.targets]
    assert {"scale", "run_dir"} <= set(names)
    for line in src.strip().splitlines():
        assert "#" in line, f"parameter without a trailing comment: {line!r}"
    assert list(declared_parameters(nb)) == names, "papermill must parse every parameter (keep quotes out of comments)"


def test_site_sidebar_lists_every_notebook_once():
    files = [p.name for p in NBS] + ["data_cards.md"]
    entries = sidebar_entries(ROOT / "_quarto.yml", files)
    assert sorted(f for _, f in entries) == sorted(files)
    assert entries[0] == ("", "index.ipynb")
    order = [f for _, f in entries if f.endswith(".ipynb") and f != "index.ipynb"]
    assert order == sorted(order)  # the paper's order: library first, then A … I


@pytest.mark.parametrize("scale", SCALES)
def test_param_files_fit_the_notebooks(scale, tmp_path):
    params = read_params(ROOT / "params" / f"{scale}.yaml")
    unknown = set(params["notebooks"]) - {p.stem for p in NBS}
    assert not unknown, f"params/{scale}.yaml names notebooks that do not exist: {unknown}"
    for nb in NBS:
        p = notebook_parameters(nb, params, scale, tmp_path, ROOT / "params")
        as_scale = params["notebooks"].get(nb.stem, {}).get("as_scale")
        assert p["scale"] == (as_scale or scale) and p["run_dir"] == str(tmp_path)
        if as_scale:  # the notebook gets exactly what it gets at that scale
            assert p == notebook_parameters(nb, read_params(ROOT / "params" / f"{as_scale}.yaml"), as_scale, tmp_path)


def test_paper_scale_labels_toy_only_appendices_toy(tmp_path):
    "C, E, F, G have no real-data path: a paper-scale run gives them their toy parameters and the label toy, A, B, D, H stay paper."
    params = read_params(ROOT / "params" / "paper.yaml")
    scales = {nb.stem[:4]: notebook_parameters(nb, params, "paper", tmp_path, ROOT / "params")["scale"] for nb in NBS if nb.stem[:2] in {"20", "21", "22", "23", "24", "25", "26", "27"}}
    assert scales == {"20_A": "paper", "21_B": "paper", "22_C": "toy", "23_D": "paper", "24_E": "toy", "25_F": "toy", "26_G": "toy", "27_H": "paper"}


def test_console_script_resolves():
    import importlib
    cfg = configparser.ConfigParser(); cfg.read(ROOT / "settings.ini")
    for spec in cfg["DEFAULT"]["console_scripts"].split():
        name, target = spec.split("=")
        mod, fn = target.split(":")
        assert callable(getattr(importlib.import_module(mod), fn)), spec
