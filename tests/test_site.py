"""The fallback site: built from a run's executed notebooks, opened page by page in headless Chromium."""
import json
import shutil
from pathlib import Path

import pytest

from clip_repro.site import build_site, check_site, find_chromium, sidebar_entries

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    run = ROOT / "runs" / "smoke"  # `make test` runs the smoke run first; without it the site shows the sources
    out = tmp_path_factory.mktemp("site") / "_site"
    return build_site(ROOT, run if (run / "notebooks").is_dir() else None, out, use_quarto=False)


def test_every_chapter_is_built_in_sidebar_order(site):
    pages = json.loads((site / "site.json").read_text())
    files = sorted(p.name for p in (ROOT / "nbs").glob("*.ipynb") if not p.name.startswith("_")) + ["data_cards.md"]
    assert [p["src"] for p in pages] == [f for _, f in sidebar_entries(ROOT / "_quarto.yml", files)]
    for p in pages:
        html = (site / p["href"]).read_text()
        assert p["title"] and f"<title>{p['title']}" in html.replace("&amp;", "&")
        assert "cdn." not in html and "https://unpkg" not in html  # the fallback site needs no network


def test_site_opens_in_chromium(site):
    try:
        find_chromium()
    except FileNotFoundError as e:
        pytest.fail(str(e))  # `make test` installs Chromium; a missing browser is a failure, not a skip
    shot = site / "screenshot.png"
    report = check_site(site, shot)
    assert len(report) == len(json.loads((site / "site.json").read_text())) and all(r["ok"] for r in report)
    assert shot.exists() and shot.stat().st_size > 10_000
    shutil.copy2(shot, ROOT / "runs" / "site_screenshot.png") if (ROOT / "runs").is_dir() else None
