"""The fallback site: built from a run's executed notebooks, opened page by page in headless Chromium.

Covered in the browser: every page (title, sidebar, figures), the front page and its claims ledger (every evidence
link lands on an existing page and heading), one figure per appendix section, the data-card chapter, and the two
report pages (paper vs reproduction, errata). The run is `runs/smoke` (`make test` runs the smoke run first).
"""
import html as htmllib
import json
import re
import shutil
from pathlib import Path

import pytest

from clip_repro.core import load_claims
from clip_repro.site import _chromium, build_site, check_site, find_chromium, sidebar_entries

ROOT = Path(__file__).resolve().parents[1]
RUN = ROOT / "runs" / "smoke"
APPENDIX = "The appendix, section by section"
TABLES_ONLY = {"28_I_hyperparameters"}  # Appendix I is tables (18-20) and measurements: its notebook draws no figure
REPORT_TABLES = ["Table 3", "Table 4", "Table 10", "Table 11", "Table 12", "Table 13", "Table 14", "Table 15", "Table 16", "Table 17"]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site") / "_site"
    return build_site(ROOT, RUN if (RUN / "notebooks").is_dir() else None, out, use_quarto=False)


@pytest.fixture(scope="module")
def pages(site):
    return json.loads((site / "site.json").read_text())


@pytest.fixture(scope="module")
def browser():
    try:
        find_chromium()
    except FileNotFoundError as e:
        pytest.fail(str(e))  # `make test` installs Chromium; a missing browser is a failure, not a skip


@pytest.fixture(scope="module")
def executed():
    "The smoke run's executed notebooks; the content tests need them (a site of clean sources has no outputs to show)."
    nbs = RUN / "notebooks"
    wanted = [p.name for p in sorted((ROOT / "nbs").glob("2?_*.ipynb"))] + ["30_errata.ipynb", "index.ipynb"]
    need = [n for n in wanted if not (nbs / n).exists()]
    if need:
        pytest.fail(f"{RUN} lacks executed notebooks {need}: run `make smoke` (or clip-repro run --scale smoke) first; `make test` does")
    return nbs


def dom(site: Path, href: str) -> str:
    "The page's DOM as headless Chromium built it."
    return _chromium(["--dump-dom", (site / href).as_uri()])


def test_every_chapter_is_built_in_sidebar_order(site, pages):
    files = sorted(p.name for p in (ROOT / "nbs").glob("*.ipynb") if not p.name.startswith("_")) + ["data_cards.md"]
    assert [p["src"] for p in pages] == [f for _, f in sidebar_entries(ROOT / "_quarto.yml", files)]
    assert {"29_report.ipynb", "30_errata.ipynb"} <= {p["src"] for p in pages}
    for p in pages:
        html = (site / p["href"]).read_text()
        assert p["title"] and f"<title>{p['title']}" in html.replace("&amp;", "&")
        assert "cdn." not in html and "https://unpkg" not in html  # the fallback site needs no network


def test_site_opens_in_chromium(site, pages, browser):
    shot = site / "screenshot.png"
    report = check_site(site, shot)
    assert len(report) == len(pages) and all(r["ok"] for r in report)
    assert shot.exists() and shot.stat().st_size > 10_000
    shutil.copy2(shot, ROOT / "runs" / "site_screenshot.png") if (ROOT / "runs").is_dir() else None


def test_front_page_ledger_links_to_the_evidence(site, browser, executed):
    page = dom(site, "index.html")
    assert "Claims ledger" in page and "make reproduce" in page
    table = re.search(r'<table\b[^>]*\bid="claims-ledger-table"[^>]*>.*?</table>', page, re.S)
    assert table, "the front page shows no claims ledger"
    rows = re.findall(r"<tr>(.*?)</tr>", table.group(0), re.S)[1:]
    assert len(rows) == len(load_claims(RUN)), "the ledger does not list every claim of the run"
    heads = [htmllib.unescape(h) for h in re.findall(r"<th>(.*?)</th>", table.group(0))]
    assert heads == ["section", "claim", "scale", "held", "measured", "evidence"]
    links = [htmllib.unescape(h) for h in re.findall(r'<a href="([^"]+)">', table.group(0))]
    assert len(links) == len(rows)
    ids = {}
    for link in links:
        href, _, anchor = link.partition("#")
        assert re.fullmatch(r"2\d_[A-I]_\w+\.html", href) and (site / href).exists(), link
        if href not in ids: ids[href] = set(re.findall(r'\bid="([^"]+)"', dom(site, href)))
        assert anchor in ids[href], f"{link}: no element with that id on the page"


def test_one_figure_per_appendix_section(site, pages, browser, executed):
    appendix = [p for p in pages if p["section"] == APPENDIX]
    assert [p["src"][3] for p in appendix] == list("ABCDEFGHI")
    for p in appendix:
        page = dom(site, p["href"])
        if Path(p["src"]).stem in TABLES_ONLY:
            assert page.count("<table") >= 3, p["href"]
            continue
        assert p["figures"] >= 1, f"{p['src']}: the executed notebook has no figure"
        imgs = re.findall(r'<img\b[^>]*src="data:image/(?:png|jpeg|svg\+xml)[^"]{200,}"', page)
        assert len(imgs) >= p["figures"], f"{p['href']} shows {len(imgs)} of its {p['figures']} figures"


def test_data_card_chapter(site, browser):
    page = dom(site, "data_cards.html")
    assert "<h1" in page and "Data cards" in page
    assert re.search(r'<h2 id="errata"', page), "the chapter's Errata section has Quarto's anchor"
    assert page.count("<tr>") > 50 and "Food-101" in page and "Table 2 lists 102 classes" in page


def test_report_pages(site, browser, executed):
    report = dom(site, "29_report.html")
    assert "Paper vs reproduction" in report
    for t in REPORT_TABLES:
        assert f"<strong>{t}, the paper</strong>" in report, t
    assert "<td>not run at this scale" not in report  # the smoke run saved every table
    assert "The run’s manifest" in report or "The run's manifest" in report
    errata = dom(site, "30_errata.html")
    assert "<h1" in errata and "Errata" in errata
    for s in ("Country211", "TABLE3_REPAIRS", "22_C_data_overlap", "data_cards/food101.yaml", "how we chose"):
        assert s in errata, s
    assert ">not run at this scale<" not in errata  # every appendix notebook recorded its errata (possibly none)
