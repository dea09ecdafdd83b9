// Evaluated by check_book.py in each loaded page (never part of the built book). Waits until
// MathJax has typeset and every image has decoded, then resolves to what a reader would see.
(function () {
  "use strict";
  var STEP_MS = 10000;  // the longest wait for any one step (load, MathJax, an image, fonts)

  function within(promise, what) {
    return Promise.race([promise, new Promise(function (_, reject) {
      setTimeout(function () { reject(new Error("timed out waiting for " + what)); }, STEP_MS);
    })]);
  }

  function text(el) {
    var copy = el.cloneNode(true);
    copy.querySelectorAll(".headerlink, button, .copybtn").forEach(function (a) { a.remove(); });
    return copy.textContent.replace(/\s+/g, " ").trim();
  }

  // Prose as rendered: skip code, scripts and typeset math; raw TeX left anywhere else is a defect.
  var SKIP = "pre, code, script, style, textarea, noscript, mjx-container, .highlight, .headerlink";
  function proseNodes(root) {
    var out = [];
    var walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT, {
      acceptNode: function (n) {
        return n.parentElement && !n.parentElement.closest(SKIP)
          ? NodeFilter.FILTER_ACCEPT : NodeFilter.FILTER_REJECT;
      }
    });
    while (walker.nextNode()) out.push(walker.currentNode.nodeValue);
    return out;
  }

  async function images() {
    var imgs = Array.prototype.slice.call(document.images);
    imgs.forEach(function (img) { if (img.loading === "lazy") img.loading = "eager"; });
    return Promise.all(imgs.map(async function (img) {
      var decoded = true;
      try { await within(img.decode(), "image " + img.src); } catch (e) { decoded = false; }
      var svg = /\.svg([?#]|$)/i.test(img.currentSrc || img.src);
      // decode() can outlast the wait on a busy machine although the image has arrived: an
      // image that is complete with a natural size has loaded.
      var loaded = decoded || (img.complete && img.naturalWidth > 0);
      return { src: img.getAttribute("src") || "", naturalWidth: img.naturalWidth,
               ok: loaded && (img.naturalWidth > 0 || svg) };
    }));
  }

  async function run() {
    var result = { steps: [] };
    if (document.readyState !== "complete") {
      await within(new Promise(function (r) { window.addEventListener("load", r); }), "window load");
    }
    result.steps.push("load");
    var mj = window.MathJax;
    result.mathjax = !!(mj && mj.startup && mj.startup.promise);
    if (result.mathjax) {
      await within(mj.startup.promise, "MathJax typesetting");
      result.steps.push("mathjax");
    }
    result.images = await images();
    result.steps.push("images");
    if (document.fonts && document.fonts.ready) await within(document.fonts.ready, "web fonts");

    var main = document.querySelector("main") || document.body;
    var math = Array.prototype.slice.call(main.querySelectorAll("span.math, div.math"));
    result.math = { elements: math.length,
                    typeset: math.filter(function (m) { return m.querySelector("mjx-container"); }).length,
                    containers: main.querySelectorAll("mjx-container").length,
                    errors: Array.prototype.map.call(main.querySelectorAll("mjx-merror"), function (e) {
                      return e.getAttribute("data-mjx-error") || text(e);
                    }) };
    result.prose = proseNodes(main).join(" ").replace(/\s+/g, " ");

    var outputs = function (sel) {
      return Array.prototype.map.call(main.querySelectorAll(sel), text);
    };
    result.errorOutputs = outputs(".output.error, .output.traceback, div.traceback");
    result.stderrOutputs = outputs(".output.stderr");
    result.cellOutputs = outputs(".cell_output");

    var h1 = main.querySelector("h1");
    result.h1 = h1 ? text(h1) : "";
    result.title = document.title;
    var brand = document.querySelector(".navbar-brand");
    result.brand = brand ? text(brand) : "";
    result.nav = Array.prototype.map.call(
      document.querySelectorAll(".bd-docs-nav a.reference.internal"), function (a) { return a.href; });
    result.colab = Array.prototype.map.call(
      document.querySelectorAll('a[href*="colab.research.google.com"]'), function (a) { return a.href; });
    result.height = Math.max(document.documentElement.scrollHeight, document.body.scrollHeight);
    return result;
  }

  return run().catch(function (e) { return { fatal: String(e && e.message || e) }; });
})()
