"""The book checker itself (tests/browser/check_book.py), without a built book.

Pure parts run everywhere; the two browser tests serve a hand-written site of a few lines and are
skipped where no Chromium is installed.
"""
import base64
import importlib.util
import struct
import sys
import zlib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("check_book", ROOT / "tests" / "browser" / "check_book.py")
cb = importlib.util.module_from_spec(_spec)
sys.modules["check_book"] = cb
_spec.loader.exec_module(cb)

CONFIG = {
    "title": "Book",
    "repository": {"url": "https://github.com/owner/repo", "branch": "main", "path_to_book": ""},
    "launch_buttons": {"colab_url": "https://colab.research.google.com"},
}
ORIGIN = "http://127.0.0.1:8000/"
TOC = ["intro", "notebooks/00_a", "notebooks/01_b", "book/c"]


# ------------------------------------------------------------------ the book's description
def test_toc_of_this_repository_lists_every_entry_in_order():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [c["file"] for part in toc["parts"] for c in part["chapters"]]
    names = cb.toc_docnames(ROOT)
    assert names[0] == toc["root"]
    assert names[1:] == [f.removesuffix(".ipynb").removesuffix(".md") for f in files]


def test_toc_sections_globs_and_suffixes(tmp_path):
    (tmp_path / "ch").mkdir()
    for name in ("ch/b.md", "ch/a.ipynb", "ch/skip.txt"):
        (tmp_path / name).write_text("x")
    (tmp_path / "_toc.yml").write_text(
        "format: jb-book\nroot: intro.md\nchapters:\n"
        "  - file: one.ipynb\n    sections:\n      - file: one/two\n"
        "  - glob: ch/*\n  - file: intro\n")
    assert cb.toc_docnames(tmp_path) == ["intro", "one", "one/two", "ch/a", "ch/b"]


@pytest.mark.parametrize("repo, path_to_book, expected", [
    ({"url": "https://github.com/owner/repo", "branch": "dev"}, "",
     "https://colab.research.google.com/github/owner/repo/blob/dev/notebooks/00_a.ipynb"),
    ({"url": "https://github.com/owner/repo.git/"}, "/docs/",
     "https://colab.research.google.com/github/owner/repo/blob/main/docs/notebooks/00_a.ipynb"),
])
def test_colab_link(repo, path_to_book, expected):
    config = {"repository": {**repo, "path_to_book": path_to_book},
              "launch_buttons": {"colab_url": "https://colab.research.google.com/"}}
    assert cb.colab_link(config, "notebooks/00_a") == expected


def test_colab_link_needs_a_colab_url_and_a_github_repository():
    assert cb.colab_link({"repository": CONFIG["repository"]}, "x") is None
    assert cb.colab_link({**CONFIG, "repository": {"url": "https://example.org/r"}}, "x") is None


def test_colab_link_matches_this_books_config():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    link = cb.colab_link(config, "notebooks/00_boxes_iou_nms")
    assert link and link.endswith("/blob/main/notebooks/00_boxes_iou_nms.ipynb")


# ------------------------------------------------------------------ static scan
def test_network_assets_finds_only_remote_fetches(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "page.html").write_text(
        '<link rel="stylesheet" href="https://fonts.example/x.css">'
        '<link rel="stylesheet" href="../_static/local.css">'
        '<a href="https://github.com/owner/repo">a link is not fetched</a>'
        '<script src="//cdn.example/mathjax.js"></script><script src="../_static/ok.js"></script>'
        '<img src="https://img.example/a.png"><img src="data:image/png;base64,AA==">'
        '<div style="background: url(\'https://bg.example/b.png\')"></div>'
        '<style>@import url("https://imp.example/c.css");</style>'
        '<script>const URL = "https://unpkg.com/never/fetched.js"</script>')
    (tmp_path / "theme.css").write_text(
        '@font-face { src: url(https://font.example/f.woff2) } .a { background: url(img/x.png) }')
    found = "\n".join(cb.network_assets(tmp_path))
    for host in ("fonts.example", "cdn.example", "img.example", "bg.example", "imp.example",
                 "font.example"):
        assert host in found
    for local in ("local.css", "ok.js", "github.com", "unpkg.com", "img/x.png", "data:"):
        assert local not in found
    assert len(found.splitlines()) == 6


# ------------------------------------------------------------------ raw TeX in prose
@pytest.mark.parametrize("text", [
    r"the loss \frac{a}{b} is", r"left \(x\) raw", r"display $$x$$ raw", "a raw $x + y$ here",
    "area x^2 of", "the sum x^{n} and", "weights w_{ij} are", r"IoU \ge 0.5",
])
def test_raw_tex_is_found(text):
    assert cb.RAW_TEX.search(text)


@pytest.mark.parametrize("text", [
    "it costs $5 and $10 per GPU hour", "C++ and snake_case names", "e.g. (x, y) pairs",
    "a 2-by-2 grid, 0.5 IoU", "Ren et al., 2015", "x1, y1, x2, y2",
])
def test_plain_prose_is_not_raw_tex(text):
    assert not cb.RAW_TEX.search(text)


# ------------------------------------------------------------------ judging one page
def good_probe(docname="notebooks/00_a"):
    return {
        "mathjax": True,
        "math": {"elements": 2, "typeset": 2, "containers": 2, "errors": []},
        "prose": "Boxes and their overlap, as a reader sees it.",
        "images": [{"src": "../_images/a.png", "naturalWidth": 640, "ok": True}],
        "errorOutputs": [], "stderrOutputs": [], "cellOutputs": ["1.000"],
        "h1": "Lesson A", "title": "Lesson A \u2014 Book", "brand": "Book",
        "nav": [ORIGIN + d + ".html" for d in TOC] + [ORIGIN + "notebooks/00_a.html#section"],
        "colab": [cb.colab_link(CONFIG, docname)], "height": 3000,
    }


def run_judge(probe, docname="notebooks/00_a", is_notebook=True):
    return cb.judge(probe, docname, origin=ORIGIN, toc=TOC, config=CONFIG, is_notebook=is_notebook)


def test_a_good_page_passes():
    res = run_judge(good_probe())
    assert res.failures == [] and res.notes == []


def mutate(**changes):
    probe = good_probe()
    for key, value in changes.items():
        probe[key] = value
    return probe


@pytest.mark.parametrize("probe, expected", [
    (mutate(math={"elements": 2, "typeset": 1, "containers": 1, "errors": []}), "math not typeset"),
    (mutate(mathjax=False), "MathJax did not load"),
    (mutate(math={"elements": 1, "typeset": 1, "containers": 1, "errors": ["Undefined control"]}),
     "TeX error"),
    (mutate(prose=r"so \(x\) stays"), "raw TeX"),
    (mutate(images=[{"src": "missing.png", "naturalWidth": 0, "ok": False}]), "image does not load"),
    (mutate(errorOutputs=["ZeroDivisionError: division by zero"]), "stored error output"),
    (mutate(stderrOutputs=["Traceback (most recent call last):"]), "stderr output"),
    (mutate(cellOutputs=["Traceback (most recent call last):\n  ..."]), "traceback"),
    (mutate(h1=""), "no <h1>"),
    (mutate(title="Lesson A"), "title"),
    (mutate(brand="Other"), "navbar"),
    (mutate(nav=[ORIGIN + d + ".html" for d in TOC[:2]]), "misses ['notebooks/01_b', 'book/c']"),
    (mutate(nav=[ORIGIN + d + ".html" for d in (TOC[0], TOC[2], TOC[1], TOC[3])]), "out of order"),
    (mutate(colab=["https://colab.research.google.com/github/owner/repo/blob/main/00_a.ipynb"]),
     "Colab link"),
    (mutate(colab=[]), "Colab link missing"),
    ({"fatal": "timed out waiting for MathJax typesetting"}, "timed out"),
])
def test_each_defect_fails_the_page(probe, expected):
    res = run_judge(probe)
    assert len(res.failures) >= 1
    assert any(expected in f for f in res.failures), res.failures


def test_a_warning_on_stderr_is_only_a_note():
    res = run_judge(mutate(stderrOutputs=["100%|##########| 10/10 [00:01<00:00]"]))
    assert res.failures == [] and len(res.notes) == 1


def test_a_chapter_needs_no_colab_link():
    res = run_judge(mutate(colab=[]), docname="book/c", is_notebook=False)
    assert res.failures == []


def test_page_problems_from_browser_events():
    def ev(method, **params):
        return {"method": method, "params": params}
    events = [
        ev("Network.requestWillBeSent", requestId="1", request={"url": ORIGIN + "a.css"}),
        ev("Network.requestWillBeSent", requestId="2", request={"url": "https://fonts.example/f"}),
        ev("Network.requestWillBeSent", requestId="3", request={"url": "data:image/png;base64,AA"}),
        ev("Network.responseReceived", requestId="4", response={"url": ORIGIN + "gone.png", "status": 404}),
        ev("Network.responseReceived", requestId="5", response={"url": ORIGIN + "favicon.ico", "status": 404}),
        ev("Network.loadingFailed", requestId="1", errorText="net::ERR_FAILED"),
        ev("Runtime.exceptionThrown", exceptionDetails={"exception": {"description": "TypeError: x\n at y"}}),
        ev("Runtime.consoleAPICalled", type="error", args=[{"value": "bad thing"}]),
        ev("Runtime.consoleAPICalled", type="log", args=[{"value": "fine"}]),
    ]
    problems = cb.page_problems(events, ORIGIN)
    assert problems == ["fetched from the network: https://fonts.example/f", "HTTP 404: gone.png",
                        "failed to load a.css: net::ERR_FAILED", "JavaScript error: TypeError: x",
                        "console error: bad thing"]


def test_no_built_book_is_exit_status_2(tmp_path, capsys):
    assert cb.main(["--book", str(tmp_path)]) == 2
    assert "make book" in capsys.readouterr().err


def test_ci_runs_the_checker_and_publishes_the_built_book():
    make = (ROOT / "Makefile").read_text()
    target = make[make.index("\ncheck-book:"):].split("\n\n")[0]
    assert "tests/browser/check_book.py" in target and "_build/screens" in target
    assert "apt-get install -y" in target and "chromium" in target
    assert "make check-book" in (ROOT / ".ci" / "run").read_text()
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "book.yml").read_text())
    steps = [s for job in workflow["jobs"].values() for s in job.get("steps", [])]
    assert any(s.get("run", "").strip() == ".ci/run" for s in steps)
    pages = [s for s in steps if s.get("uses", "").startswith("actions/upload-pages-artifact")]
    assert pages and pages[0]["with"]["path"] == "_build/html"


# ------------------------------------------------------------------ in a real browser
def _png(width=3, height=2) -> bytes:
    raw = b"".join(b"\0" + b"\xff\x00\x00" * width for _ in range(height))
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def _site(tmp_path, broken: bool) -> Path:
    """A two-page 'book' with the theme's markers the checker reads."""
    (tmp_path / "_config.yml").write_text(yaml.safe_dump(CONFIG))
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: intro\nchapters:\n  - file: notebooks/00_a\n")
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "00_a.ipynb").write_text("{}")
    html = tmp_path / "_build" / "html"
    (html / "notebooks").mkdir(parents=True)
    (html / "_images").mkdir()
    (html / "_images" / "fig.png").write_bytes(_png())
    (html / "index.html").write_text('<meta http-equiv="refresh" content="0; url=intro.html">')
    for doc, h1 in (("intro", "Intro"), ("notebooks/00_a", "Lesson A")):
        up = "../" if "/" in doc else ""
        colab = cb.colab_link(CONFIG, doc) if doc != "intro" else ""
        img = "missing.png" if broken and doc != "intro" else f"{up}_images/fig.png"
        (html / f"{doc}.html").write_text(
            f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{h1} \u2014 Book</title></head><body>'
            f'<a class="navbar-brand">Book</a><nav class="bd-docs-nav">'
            f'<a class="reference internal" href="{up}intro.html">Intro</a>'
            f'<a class="reference internal" href="{up}notebooks/00_a.html">Lesson A</a></nav>'
            f'<a href="{colab}">Colab</a><main><h1>{h1}</h1><p>Some prose.</p>'
            f'<img src="{img}" loading="lazy" style="margin-top:2000px"></main></body></html>')
    return tmp_path


needs_browser = pytest.mark.skipif(cb.find_chromium() is None, reason="no Chromium installed")


@needs_browser
def test_browser_passes_a_good_site_and_keeps_screenshots(tmp_path, capsys):
    book = _site(tmp_path, broken=False)
    assert cb.main(["--book", str(book), "--timeout", "30"]) == 0, capsys.readouterr()
    shots = sorted(p.name for p in (book / "_build" / "screens").iterdir())
    assert shots == ["intro.png", "notebooks__00_a.png"]
    assert (book / "_build" / "screens" / "intro.png").read_bytes().startswith(b"\x89PNG")


@needs_browser
def test_browser_fails_a_page_with_a_missing_image(tmp_path, capsys):
    book = _site(tmp_path, broken=True)
    assert cb.main(["--book", str(book), "--timeout", "30"]) == 1
    err = capsys.readouterr().err
    assert "notebooks/00_a: image does not load: missing.png" in err
    assert "HTTP 404: notebooks/missing.png" in err
    assert "intro:" not in err
