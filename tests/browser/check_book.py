"""Check the built book in headless Chromium, page by page, as a reader sees it.

    python tests/browser/check_book.py [--html _build/html] [--book .] [--screens _build/screens]

Every page listed in _toc.yml is served from a local HTTP server and loaded in headless Chromium,
whose only route to the outside is a proxy that refuses and records every request. On each page:

- math is typeset: every MathJax element holds a rendered container, no TeX error, and no raw
  ``\\(``, ``\\[``, ``$$``, ``$...$``, ``\\command``, ``x^2`` or ``w_{ij}`` left in the prose;
- every <img> decodes with a natural width > 0;
- no stored error output or traceback (stderr that only warns is reported, not failed);
- a notebook's Colab link is ``<colab_url>/github/<owner>/<repo>/blob/<branch>/<path>.ipynb``
  from _config.yml's ``repository`` and ``launch_buttons``;
- the title is ``<first heading> — <book title>``, the navbar shows the book title and the left
  navigation lists every page of the toc in toc order;
- no request leaves 127.0.0.1, no JavaScript or console error (except the known, harmless ones in
  HARMLESS_JS, listed as notes), no missing local file.

The built HTML and CSS are also scanned for assets fetched from the network (script src, link
href, img src, @import, url(...)). One full-page screenshot per page lands in --screens.
Exit status: 0 all passed, 1 a check failed (each failure is listed), 2 nothing could be checked.
"""
from __future__ import annotations

import argparse
import base64
import fcntl
import functools
import html.parser
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
PROBE = (HERE / "probe.js").read_text(encoding="utf-8")
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--hide-scrollbars", "--force-device-scale-factor=1",
    "--run-all-compositor-stages-before-draw",
)
WIDTH, MIN_HEIGHT, MAX_HEIGHT = 1280, 900, 16000
RAW_TEX = re.compile(
    r"\\\(|\\\)|\\\[|\\\]|\$\$"                     # delimiters MathJax should have consumed
    r"|\\[A-Za-z]{2,}"                               # a TeX command such as \frac or \geq
    r"|[A-Za-z0-9)\]}]\^(?:\{|[A-Za-z0-9(])|[A-Za-z)]_\{"   # x^2, x^{n}, w_{ij}: math left as text
    r"|(?<![\w$])\$[^\s$](?:[^$\n]{0,80}[^\s$\\])?\$(?![\w$])"  # $...$ that was never parsed
)
FAILED_STDERR = re.compile(r"Traceback|\b\w*(Error|Exception)\b")
# Known defects of the pinned toolchain that a reader never notices, reported as notes only.
# sphinx-thebe 0.3.1 (pulled in by jupyter-book 1.0.4 even with thebe off) emits its inline
# configuration script twice; the second copy re-declares a const and is skipped by the browser.
HARMLESS_JS = (re.compile(r"SyntaxError: Identifier 'THEBE_JS_URL' has already been declared"),)
FETCHED_RELS = {"stylesheet", "icon", "shortcut", "apple-touch-icon", "preload", "modulepreload",
                "prefetch", "manifest", "preconnect", "dns-prefetch"}
CSS_URL = re.compile(r"""@import\s+(?:url\()?\s*['"]?([^'")\s;]+)|url\(\s*['"]?([^'")]+)""")
REMOTE = re.compile(r"^(https?:)?//", re.IGNORECASE)


# ---------------------------------------------------------------- the book's own description
def toc_docnames(book: Path) -> list[str]:
    """Docnames of _toc.yml in reading order, the root first (``file`` and ``glob`` entries)."""
    toc = yaml.safe_load((book / "_toc.yml").read_text(encoding="utf-8"))
    names = [_strip_suffix(toc["root"])]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                names.append(_strip_suffix(entry["file"]))
            elif "glob" in entry:
                found = sorted(p for p in book.glob(entry["glob"]) if p.suffix in (".md", ".ipynb"))
                names.extend(p.relative_to(book).with_suffix("").as_posix() for p in found)
            walk(entry.get("sections"))
            walk(entry.get("chapters"))

    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    walk(toc.get("sections"))
    return list(dict.fromkeys(names))


def _strip_suffix(name: str) -> str:
    return re.sub(r"\.(md|ipynb)$", "", name.strip("/"))


def colab_link(config: dict, docname: str) -> str | None:
    """The launch URL a notebook page must carry, or None when the book has no Colab button."""
    launch, repo = config.get("launch_buttons") or {}, config.get("repository") or {}
    base, url = (launch.get("colab_url") or "").rstrip("/"), repo.get("url") or ""
    match = re.match(r"https://github\.com/([^/]+)/([^/]+?)(?:\.git)?/?$", url)
    if not base or not match:
        return None
    path = "/".join(p for p in ((repo.get("path_to_book") or "").strip("/"), docname + ".ipynb") if p)
    return f"{base}/github/{match[1]}/{match[2]}/blob/{repo.get('branch') or 'main'}/{path}"


# ---------------------------------------------------------------- static scan for network assets
class _AssetParser(html.parser.HTMLParser):
    """Collects (where, url) for everything an HTML page makes the browser fetch."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.refs: list[tuple[str, str]] = []
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        a = {k: v or "" for k, v in attrs}
        if tag == "link" and set(a.get("rel", "").lower().split()) & FETCHED_RELS:
            self.refs.append(("<link href>", a.get("href", "")))
        if tag in ("script", "img", "iframe", "source", "video", "audio", "embed", "track") and a.get("src"):
            self.refs.append((f"<{tag} src>", a["src"]))
        if tag in ("img", "source") and a.get("srcset"):
            self.refs.extend((f"<{tag} srcset>", c.split()[0]) for c in a["srcset"].split(",") if c.strip())
        if tag == "object" and a.get("data"):
            self.refs.append(("<object data>", a["data"]))
        if a.get("style"):
            self.refs.extend(("style attribute", u) for u in _css_urls(a["style"]))
        self._in_style = tag == "style"

    def handle_endtag(self, tag):
        self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.refs.extend(("<style>", u) for u in _css_urls(data))


def _css_urls(css: str) -> list[str]:
    return [m[0] or m[1] for m in CSS_URL.findall(css)]


def network_assets(html_dir: Path) -> list[str]:
    """Every reference in the built HTML and CSS that a browser would fetch from the network."""
    found = []
    for path in sorted(html_dir.rglob("*.html")) + sorted(html_dir.rglob("*.css")):
        text = path.read_text(encoding="utf-8", errors="replace")
        if path.suffix == ".css":
            refs = [("url()/@import", u) for u in _css_urls(text)]
        else:
            parser = _AssetParser()
            parser.feed(text)
            refs = parser.refs
        found += [f"{path.relative_to(html_dir)}: {where} {url}" for where, url in refs if REMOTE.match(url)]
    return list(dict.fromkeys(found))


# ---------------------------------------------------------------- local server and refusing proxy
class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves the book; as the browser's proxy, refuses every request for the outside world."""

    def do_GET(self):
        if self.path.startswith(("http://", "https://")):
            return self._refuse(self.path)
        return super().do_GET()

    def do_CONNECT(self):
        self._refuse("https://" + self.path)

    def _refuse(self, url):
        self.server.refused.append(url)
        self.send_error(403, "offline check: no network")

    def log_message(self, *args):
        pass


class BookServer:
    def __init__(self, html_dir: Path):
        handler = functools.partial(_Handler, directory=str(html_dir))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.refused = []
        self.port = self.httpd.server_address[1]
        self.origin = f"http://127.0.0.1:{self.port}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

    def url(self, docname: str) -> str:
        return self.origin + urllib.parse.quote(docname) + ".html"


# ---------------------------------------------------------------- chromium over the DevTools pipe
def find_chromium(explicit: str | None = None) -> str | None:
    """The browser to drive: --chromium, else $CHROMIUM, else the first of CHROMIUM_NAMES on PATH."""
    wanted = explicit or os.environ.get("CHROMIUM")
    if wanted:
        return shutil.which(wanted)
    return next(filter(None, map(shutil.which, CHROMIUM_NAMES)), None)


class Chromium:
    """One headless Chromium driven with the DevTools protocol over --remote-debugging-pipe.

    The browser reads NUL-terminated JSON commands on its fd 3 and answers on fd 4, so no driver
    package is needed. Each page gets its own tab (target); several tabs may run at once.
    """

    def __init__(self, binary: str, proxy_port: int):
        self.profile = tempfile.TemporaryDirectory(prefix="book-check-")
        cmd_r, cmd_w = os.pipe()
        res_r, res_w = os.pipe()
        # Park the child's ends above 10 so the dup2 onto 3 and 4 below cannot clobber each other.
        hi_r, hi_w = (fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (cmd_r, res_w))

        def child_fds():
            os.dup2(hi_r, 3)
            os.dup2(hi_w, 4)

        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={self.profile.name}",
             f"--proxy-server=http://127.0.0.1:{proxy_port}", "--remote-debugging-pipe", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
            preexec_fn=child_fds, pass_fds=(3, 4))
        for fd in (cmd_r, res_w, hi_r, hi_w):
            os.close(fd)
        self.out = os.fdopen(cmd_w, "wb", buffering=0)
        self.inp = os.fdopen(res_r, "rb", buffering=0)
        self.lock, self.cond = threading.Lock(), threading.Condition()
        self.next_id, self.replies, self.events, self.dead = 0, {}, {}, False
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        buf = b""
        while chunk := self.inp.read(1 << 16):
            buf += chunk
            *messages, buf = buf.split(b"\0")
            with self.cond:
                for raw in messages:
                    msg = json.loads(raw)
                    if "id" in msg:
                        self.replies[msg["id"]] = msg
                    else:
                        self.events.setdefault(msg.get("sessionId"), []).append(msg)
                self.cond.notify_all()
        with self.cond:
            self.dead = True
            self.cond.notify_all()

    def _wait(self, ready, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        with self.cond:
            while (value := ready()) is None:
                if self.dead:
                    raise RuntimeError(f"chromium exited while waiting for {what}: {self.stderr_tail()}")
                if not self.cond.wait(deadline - time.monotonic()) and time.monotonic() >= deadline:
                    raise TimeoutError(f"no {what} within {timeout:.0f} s")
            return value

    def send(self, method: str, params: dict | None = None, session: str | None = None,
             timeout: float = 30.0) -> dict:
        with self.lock:
            self.next_id += 1
            ident = self.next_id
            msg = {"id": ident, "method": method, "params": params or {}}
            if session:
                msg["sessionId"] = session
            self.out.write(json.dumps(msg).encode() + b"\0")
        reply = self._wait(lambda: self.replies.pop(ident, None), timeout, f"reply to {method}")
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error'].get('message')}")
        return reply.get("result", {})

    def wait_event(self, session: str, method: str, timeout: float) -> dict:
        def ready():
            return next((e for e in self.events.get(session, []) if e["method"] == method), None)
        return self._wait(ready, timeout, method)

    def stderr_tail(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-2000:]

    def close(self):
        try:
            self.send("Browser.close", timeout=5)
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.out.close()
        self.profile.cleanup()


def visit(browser: Chromium, url: str, shot: Path, timeout: float) -> tuple[dict, list[dict]]:
    """Load url in a fresh tab, run the probe, save a full-page screenshot; (probe, events)."""
    target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    try:
        for method in ("Page.enable", "Runtime.enable", "Network.enable"):
            browser.send(method, session=session)
        browser.send("Emulation.setDeviceMetricsOverride",
                     {"width": WIDTH, "height": MIN_HEIGHT, "deviceScaleFactor": 1, "mobile": False},
                     session)
        with browser.cond:
            browser.events[session] = []
        browser.send("Page.navigate", {"url": url}, session)
        browser.wait_event(session, "Page.loadEventFired", timeout)
        reply = browser.send("Runtime.evaluate", {"expression": PROBE, "awaitPromise": True,
                                                  "returnByValue": True}, session, timeout)
        probe = reply.get("result", {}).get("value") or {
            "fatal": f"probe failed: {reply.get('exceptionDetails', {}).get('text', reply)}"}
        height = max(MIN_HEIGHT, min(int(probe.get("height") or MIN_HEIGHT), MAX_HEIGHT))
        png = browser.send("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": WIDTH, "height": height, "scale": 1}}, session, timeout)
        shot.write_bytes(base64.b64decode(png["data"]))
        with browser.cond:
            events = browser.events.pop(session, [])
        return probe, events
    finally:
        browser.send("Target.closeTarget", {"targetId": target})


def page_problems(events: list[dict], origin: str) -> list[str]:
    """Requests that left the local server, failed loads and JavaScript errors, from CDP events."""
    problems, urls = [], {}
    for e in events:
        p = e.get("params", {})
        if e["method"] == "Network.requestWillBeSent":
            url = p["request"]["url"]
            urls[p["requestId"]] = url
            if not url.startswith((origin, "data:", "blob:", "about:")):
                problems.append(f"fetched from the network: {url}")
        elif e["method"] == "Network.responseReceived" and p["response"]["status"] >= 400:
            url = p["response"]["url"]
            if url.startswith(origin) and not url.endswith("/favicon.ico"):
                problems.append(f"HTTP {p['response']['status']}: {url[len(origin):]}")
        elif e["method"] == "Network.loadingFailed" and not p.get("canceled"):
            url = urls.get(p["requestId"], "?")
            if url.startswith(origin):
                problems.append(f"failed to load {url[len(origin):]}: {p.get('errorText')}")
        elif e["method"] == "Runtime.exceptionThrown":
            d = p["exceptionDetails"]
            problems.append(f"JavaScript error: {d.get('exception', {}).get('description') or d.get('text')}"
                            .splitlines()[0])
        elif e["method"] == "Runtime.consoleAPICalled" and p.get("type") == "error":
            args = " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", []))
            problems.append(f"console error: {args[:200]}")
    return list(dict.fromkeys(problems))


# ---------------------------------------------------------------- judging one page
@dataclass
class PageResult:
    docname: str
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    summary: str = ""
    seconds: float = 0.0


def _excerpts(text: str, pattern: re.Pattern, limit: int = 3, context: int = 30) -> list[str]:
    """Up to `limit` snippets around the matches, overlapping ones merged."""
    spans: list[list[int]] = []
    for m in pattern.finditer(text):
        lo, hi = max(0, m.start() - context), m.end() + context
        if spans and lo <= spans[-1][1]:
            spans[-1][1] = hi
        else:
            spans.append([lo, hi])
    return [repr(text[lo:min(hi, lo + 160)]) for lo, hi in spans[:limit]]


def _tex_hint(snippet: str, math: dict) -> str:
    if math["typeset"] < math["elements"]:
        return ""
    if "$" in snippet:
        return (" (a $$...$$ block inside a paragraph breaks the paragraph's math: put a blank"
                " line before and after it)")
    return " (in MyST markdown write math as $...$ or $$...$$)"


def _docname_of(href: str, origin: str) -> str | None:
    if not href.startswith(origin):
        return None
    path = urllib.parse.unquote(urllib.parse.urlsplit(href).path).lstrip("/")
    return re.sub(r"\.html$", "", path) or "index"


def judge(probe: dict, docname: str, *, origin: str, toc: list[str], config: dict,
          is_notebook: bool) -> PageResult:
    res = PageResult(docname)
    fail = res.failures.append
    if "fatal" in probe:
        fail(probe["fatal"])
        return res
    math = probe["math"]
    if math["elements"] and not probe["mathjax"]:
        fail(f"{math['elements']} math elements but MathJax did not load")
    if math["typeset"] < math["elements"]:
        fail(f"math not typeset: {math['elements'] - math['typeset']} of {math['elements']} elements raw")
    for err in math["errors"]:
        fail(f"TeX error: {err}")
    for snippet in _excerpts(probe["prose"], RAW_TEX):
        fail(f"raw TeX in the rendered text: {snippet}{_tex_hint(snippet, math)}")
    for img in probe["images"]:
        if not img["ok"]:
            fail(f"image does not load: {img['src']} (natural width {img['naturalWidth']})")
    for out in probe["errorOutputs"]:
        fail(f"stored error output: {out.strip().splitlines()[0][:200] if out.strip() else '(empty)'}")
    for out in probe["stderrOutputs"]:
        (fail if FAILED_STDERR.search(out) else res.notes.append)(f"stderr output: {out.strip()[:200]!r}")
    if not probe["errorOutputs"] and any("Traceback (most recent call last)" in out
                                         for out in probe["cellOutputs"]):
        fail("a cell output holds a traceback")

    book_title = str(config.get("title", ""))
    expected_title = f"{probe['h1']} \u2014 {book_title}"
    if not probe["h1"]:
        fail("the page has no <h1> heading")
    elif probe["title"] != expected_title:
        fail(f"title {probe['title']!r}, expected {expected_title!r}")
    if book_title and probe["brand"] != book_title:
        fail(f"navbar shows {probe['brand']!r}, expected the book title {book_title!r}")
    nav = list(dict.fromkeys(d for d in (_docname_of(h, origin) for h in probe["nav"]) if d))
    got, want = [d for d in nav if d != toc[0]], toc[1:]
    if got != want:
        missing = [d for d in want if d not in got]
        fail("left navigation " + (f"misses {missing}" if missing else "is out of order")
             + f": {got} instead of {want}")

    if is_notebook:
        link = colab_link(config, docname)
        if link is None:
            res.notes.append("no Colab link expected (launch_buttons.colab_url or repository.url unset)")
        elif link not in probe["colab"]:
            fail(f"Colab link {probe['colab'] or 'missing'}, expected {link}")

    res.summary = (f"math {math['typeset']}/{math['elements']}, images {len(probe['images'])}, "
                   f"nav {len(got)}, {'colab ok' if is_notebook else 'no colab'}")
    return res


# ---------------------------------------------------------------- main
def check_page(docname: str, *, browser, server, book, toc, config, screens, timeout) -> PageResult:
    start = time.monotonic()
    shot = screens / (docname.replace("/", "__") + ".png")
    try:
        probe, events = visit(browser, server.url(docname), shot, timeout)
        res = judge(probe, docname, origin=server.origin, toc=toc, config=config,
                    is_notebook=(book / f"{docname}.ipynb").is_file())
        res.failures += page_problems(events, server.origin)
    except (RuntimeError, TimeoutError) as exc:
        res = PageResult(docname, failures=[f"browser: {exc}"])
    res.seconds = time.monotonic() - start
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--book", type=Path, default=Path("."), help="folder with _config.yml and _toc.yml")
    ap.add_argument("--html", type=Path, default=None, help="built site (default: BOOK/_build/html)")
    ap.add_argument("--screens", type=Path, default=None, help="screenshots (default: next to --html)")
    ap.add_argument("--chromium", default=None, help="browser binary (default: chromium on PATH)")
    ap.add_argument("--jobs", type=int, default=2, help="pages checked at once")
    ap.add_argument("--timeout", type=float, default=60.0, help="wall seconds per page and step")
    args = ap.parse_args(argv)

    book = args.book.resolve()
    html_dir = (args.html or book / "_build" / "html").resolve()
    screens = (args.screens or html_dir.parent / "screens").resolve()
    if not (html_dir / "index.html").is_file():
        print(f"check-book: no built book at {html_dir} (run `make book` first)", file=sys.stderr)
        return 2
    binary = find_chromium(args.chromium)
    if binary is None:
        print(f"check-book: no browser found ({args.chromium or os.environ.get('CHROMIUM') or ', '.join(CHROMIUM_NAMES)}). "
              "Install Chromium (Debian, as root: apt-get install -y chromium) or pass --chromium PATH "
              "/ set CHROMIUM.", file=sys.stderr)
        return 2
    config = yaml.safe_load((book / "_config.yml").read_text(encoding="utf-8")) or {}
    toc = toc_docnames(book)
    screens.mkdir(parents=True, exist_ok=True)

    start = time.monotonic()
    failures = [f"network asset: {ref}" for ref in network_assets(html_dir)]
    failures += [f"missing page: {d}.html" for d in toc if not (html_dir / f"{d}.html").is_file()]
    pages = [d for d in toc if (html_dir / f"{d}.html").is_file()]
    with BookServer(html_dir) as server:
        try:
            browser = Chromium(binary, server.port)
        except OSError as exc:
            print(f"check-book: cannot start {binary}: {exc}", file=sys.stderr)
            return 2
        try:
            run = functools.partial(check_page, browser=browser, server=server, book=book, toc=toc,
                                    config=config, screens=screens, timeout=args.timeout)
            with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
                results = list(pool.map(run, pages))
        finally:
            browser.close()
        # Also refused: the browser's own background calls (updates, accounts). Pages' requests
        # were judged per page above, so this list is only printed.
        refused = sorted({urllib.parse.urlsplit(u).netloc or u for u in server.httpd.refused})

    harmless = {}
    for res in results:
        for f in [f for f in res.failures if any(p.search(f) for p in HARMLESS_JS)]:
            res.failures.remove(f)
            harmless[f] = harmless.get(f, 0) + 1
        print(f"{'FAIL' if res.failures else 'ok  '} {res.docname:<40} {res.seconds:5.1f} s  {res.summary}")
        failures += [f"{res.docname}: {f}" for f in res.failures]
        for note in res.notes:
            print(f"     note: {note}")
    print(f"check-book: {len(results)} pages in {time.monotonic() - start:.1f} s, "
          f"screenshots in {screens}")
    for f, n in harmless.items():
        print(f"     note: known and harmless, on {n} page(s): {f}")
    if refused:
        print(f"     note: the offline proxy refused requests to {', '.join(refused)}")
    if failures:
        print(f"\ncheck-book: {len(failures)} failure(s):", file=sys.stderr)
        for f in failures:
            print(f"  - {f}", file=sys.stderr)
        return 1
    print("check-book: all pages passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
