"""The course website (tools/course_site.py, `make site`), built from the smoke runs' executed notebooks as
`make site` builds it from build/<profile>/, then read file by file and opened in headless Chromium with every
host name unresolvable: each lesson page renders with its title, its math typeset by the build's own MathJax
and its figures loaded; every internal link and image points at a file of the build; no page loads a script,
style sheet or image from the network; and every lesson page links its student version, its slides (or says
how to build them) and its results digest, and gives its run time. The built site stays in build/ci/site/
after the run."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from html import unescape
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat
import pytest
from test_delivery import (
    ARTIFACTS,
    NOTEBOOKS,
    ROOT,
    _chromium,
    _chromium_run,
    read,
    render_problems,
)

sys.path.insert(0, str(ROOT / "tools"))
import course_site as site  # noqa: E402  (tools/course_site.py)

# any request for a host name fails in Chromium, so nothing loads from the network unseen
OFFLINE = "--host-resolver-rules=MAP * ~NOTFOUND"
# what a page loads (as opposed to links to): an http(s) address here would be fetched when the page is viewed
LOADS = {("script", "src"), ("img", "src"), ("link", "href"), ("iframe", "src"), ("source", "src")}
VOID = {"area", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}  # no end tag


class _Refs(HTMLParser):
    """A page's (tag, attribute, value, rel) of each src/href, the ids it defines, its `lesson-links` box."""

    def __init__(self):
        super().__init__()
        self.refs, self.ids, self.box, self._depth = [], set(), [], 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        if self._depth or "lesson-links" in (attrs.get("class") or "").split():
            self._depth += tag not in VOID
            self.box.append((tag, attrs))
        for name in ("src", "href"):
            if attrs.get(name) is not None:
                self.refs.append((tag, name, attrs[name], attrs.get("rel") or ""))

    def handle_endtag(self, tag):
        self._depth -= bool(self._depth) and tag not in VOID

    def handle_data(self, data):
        if self._depth:
            self.box.append(("#text", data))


def parse(page: Path) -> _Refs:
    refs = _Refs()
    refs.feed(page.read_text(errors="replace"))
    return refs


def box_text(refs: _Refs) -> str:
    return " ".join("".join(d for tag, d in refs.box if tag == "#text").split())


@pytest.fixture(scope="module")
def built(smoke_run, tmp_path_factory):
    """The site built in the smoke profile from the smoke runs: ``(html folder, {stem: executed run})``."""
    if shutil.which("npm") is not None:  # decks come from npm's reveal.js and MathJax, as for `make slides`
        subprocess.run(["make", "-s", "slides-vendor"], cwd=ROOT, check=True)
    runs = [smoke_run(p) for p in NOTEBOOKS]
    assert all(error is None for _, error in runs), [str(e)[:300] for _, e in runs if e is not None]
    executed = tmp_path_factory.mktemp("site_executed")
    for path, _ in runs:
        shutil.copyfile(path, executed / path.name)
    out = tmp_path_factory.mktemp("site") / "site"  # a folder of its own: no other test can touch the build
    index = site.build("smoke", executed, out)
    assert index == out / "html" / "index.html" and index.is_file()
    kept = ARTIFACTS / "site"  # a copy for a look after the run
    shutil.rmtree(kept, ignore_errors=True)
    shutil.copytree(out / "html", kept)
    return out / "html", {p.stem: executed / p.name for p in NOTEBOOKS}


def shows_png(output) -> bool:
    """An output that MyST-NB shows as its PNG (HTML and SVG come first when an output has them too)."""
    data = output.get("data", {})
    return "image/png" in data and not {"text/html", "image/svg+xml"} & set(data)


def lesson_page(html: Path, stem: str) -> Path:
    return html / "notebooks" / f"{stem}.html"


@pytest.mark.notebooks
@pytest.mark.timeout(900)
@pytest.mark.xdist_group("smoke_run")  # one worker runs each notebook once for all of them
def test_site_builds_every_lesson_from_its_executed_notebook_without_warnings(built):
    html, executed = built
    warnings = (site.source_dir(html.parent) / "warnings.log").read_text().strip()
    assert not warnings, (
        f"sphinx warned (tools/course_site.py builds warning-free in smoke):\n{warnings[:3000]}"
    )
    for stem, run in executed.items():
        page = lesson_page(html, stem)
        assert page.is_file(), f"{stem}: no lesson page"
        text = page.read_text()
        assert "system-message" not in text and "problematic" not in text, (
            f"{stem}: a Sphinx error on the page"
        )
        figures = sum(shows_png(o) for c in read(run).cells for o in c.get("outputs", []))
        shown = sum(1 for tag, name, value, _ in parse(page).refs if tag == "img" and "_images/" in value)
        assert shown == figures, f"{stem}: {figures} figures in the executed notebook, {shown} on its page"


@pytest.mark.notebooks
@pytest.mark.timeout(900)
@pytest.mark.xdist_group("smoke_run")
def test_site_links_and_images_resolve_and_nothing_loads_from_the_network(built):
    html, _ = built
    pages = sorted(p for p in html.rglob("*.html") if "_static" not in p.parts)  # _static: theme templates
    broken, remote = [], []
    for page in pages:
        for tag, name, value, rel in parse(page).refs:
            url = urlsplit(value)
            if url.scheme in ("http", "https") or value.startswith("//"):
                if (tag, name) in LOADS and rel not in ("canonical",):
                    remote.append(f"{page.relative_to(html)}: <{tag} {name}={value}>")
                continue
            if url.scheme or not url.path:  # data:, mailto:, javascript:, a fragment of this page
                continue
            target = (page.parent / unquote(url.path)).resolve()
            if not target.is_file():
                broken.append(f"{page.relative_to(html)}: <{tag} {name}={value}>")
            elif url.fragment and target.suffix == ".html" and url.fragment not in parse(target).ids:
                broken.append(f"{page.relative_to(html)}: <{tag} {name}={value}> (no such anchor)")
    styles = [
        p for p in html.rglob("*.css") if re.search(r"(@import|url\()\s*['\"]?(https?:)?//", p.read_text())
    ]
    assert not broken, f"{len(broken)} links to files the site does not have: {broken[:15]}"
    assert not remote, f"pages load from the network: {remote[:15]}"
    assert not styles, f"style sheets load from the network: {styles}"
    assert len(pages) > len(NOTEBOOKS)


@pytest.mark.notebooks
@pytest.mark.timeout(900)
@pytest.mark.xdist_group("smoke_run")
def test_every_lesson_page_links_its_student_version_slides_digest_and_run_time(built):
    html, _ = built
    manifest = json.loads((ROOT / "notebooks" / "manifest.json").read_text())
    decks = (html / "slides").is_dir()
    for path in NOTEBOOKS:
        stem, page = path.stem, lesson_page(html, path.stem)
        refs = parse(page)
        links = [(page.parent / unquote(urlsplit(a["href"]).path)).resolve() for t, a in refs.box if t == "a"]
        text = box_text(refs)
        student = next((p for p in links if "_downloads" in p.parts and p.name == path.name), None)
        assert student is not None and student.is_file(), f"{stem}: no student version linked: {text}"
        blanked = "".join(c.source for c in read(student).cells)
        assert "raise NotImplementedError()" in blanked and site.ct.BEGIN not in blanked, (
            f"{stem}: not blanked"
        )
        if decks:
            assert html / "slides" / f"{stem}.html" in links, f"{stem}: its deck is not linked: {text}"
        else:
            assert "make slides-vendor" in text, f"{stem}: no deck and no word on how to build one: {text}"
        digests = [p for p in links if p.parent.parent == html / "results" and p.name == f"{stem}.html"]
        recorded = (ROOT / "results" / "default" / f"{stem}.md").is_file()
        assert digests or not recorded, f"{stem}: its recorded results digest is not linked: {text}"
        assert all(p.is_file() for p in digests), digests
        measured = manifest.get(path.name, {}).get("durations", {}).get("smoke")
        seconds = measured["seconds"] if measured else None
        words = (
            "not measured yet"
            if seconds is None
            else f"{seconds:.0f} s"
            if seconds < 120
            else f"{seconds / 60:.1f} min"
        )
        assert f"Run time: {words} in the smoke profile" in text, f"{stem}: run time missing: {text}"
    index = parse(html / "index.html")
    lessons = {Path(urlsplit(v).path).stem for t, _, v, _ in index.refs if t == "a" and "notebooks/" in v}
    assert lessons >= {p.stem for p in NOTEBOOKS}, "the syllabus table links every lesson"


PROBE = """<script>
window.addEventListener("load", function () {
  function report() {
    var heading = document.querySelector("article h1, main h1");
    var untyped = Array.from(document.querySelectorAll("span.math, div.math"))
      .filter(function (m) { return !m.querySelector("mjx-container"); })
      .map(function (m) { return m.textContent.slice(0, 60); });
    var out = document.createElement("pre");
    out.id = "render-report";
    out.textContent = JSON.stringify({
      heading: heading ? heading.textContent : null,
      math: document.querySelectorAll("mjx-container").length,
      math_errors: document.querySelectorAll("mjx-merror, [data-mjx-error]").length,
      untyped: untyped,
      mathjax: !!(window.MathJax && MathJax.startup),
      images: Array.from(document.images).filter(function (i) { return i.closest("article, main"); }).length,
      broken: Array.from(document.images).filter(function (i) { return !i.complete || i.naturalWidth === 0; })
        .map(function (i) { return i.src.slice(-80); })
    });
    document.body.appendChild(out);
  }
  if (window.MathJax && MathJax.startup) MathJax.startup.promise.then(report, report); else report();
});
</script>"""


def render(chromium: str, page: Path) -> dict:
    """The probe's report on ``page`` opened offline in headless Chromium (a copy beside it, with a probe)."""
    probe = page.with_name(f"{page.stem}.probe.html")
    probe.write_text(page.read_text().replace("</body>", PROBE + "\n</body>"))
    try:
        proc = _chromium_run(chromium, OFFLINE, "--dump-dom", probe.as_uri())
    finally:
        probe.unlink()
    found = re.search(r'<pre id="render-report"[^>]*>(.*?)</pre>', proc.stdout, re.S)
    assert found, f"{page.name}: no render report (chromium rc {proc.returncode}): {proc.stderr[-2000:]}"
    return json.loads(unescape(found.group(1)))


@pytest.mark.notebooks
@pytest.mark.timeout(900)
@pytest.mark.xdist_group("smoke_run")
def test_site_renders_offline_in_headless_chromium(built):
    chromium = _chromium()
    html, executed = built
    pages = {stem: lesson_page(html, stem) for stem in executed}
    pages |= {"index": html / "index.html", "findings": html / "results" / "default" / "SUMMARY.html"}
    problems, reports = {}, {}
    for name, page in pages.items():
        report = reports[name] = render(chromium, page)
        nb = read(executed[name]) if name in executed else None
        title = site.title_of(nb, name).split("$")[0].strip() if nb else ""
        wrong = [
            "no heading" if not report["heading"] else "",
            f"title {title!r} not in {report['heading']!r}"
            if title and title not in (report["heading"] or "")
            else "",
            "MathJax did not load" if (nb is not None or name == "index") and not report["mathjax"] else "",
        ]
        wrong = [w for w in wrong if w]
        wrong += render_problems(
            report, nb or nbformat.v4.new_notebook(), report["untyped"]
        )  # index, findings
        if wrong:
            problems[name] = wrong
    (ARTIFACTS / "site-render-reports.json").write_text(json.dumps(reports, indent=1))
    assert not problems, problems
    assert reports["01_soft_targets"]["math"] > 0, "lesson 01's math ($T^2$, the softmax with temperature)"


# ------------------------------------------------------------------------------------------------ bad inputs
def test_site_refuses_an_unknown_profile(tmp_path):
    with pytest.raises(
        site.SiteError, match=r"--profile 'fast' is not a course profile: choose one of smoke"
    ):
        site.build("fast", tmp_path, tmp_path / "site")


def test_site_names_the_missing_executed_notebook_and_the_command_that_makes_it(tmp_path, capsys):
    for path in NOTEBOOKS[1:]:
        shutil.copyfile(path, tmp_path / path.name)
    with pytest.raises(site.SiteError) as info:
        site.check_inputs("smoke", tmp_path, NOTEBOOKS)
    message = str(info.value)
    for words in (f"--executed {tmp_path}", str(tmp_path / NOTEBOOKS[0].name), "make course PROFILE=smoke"):
        assert words in message, words
    assert (
        site.main(["--profile", "default", "--executed", str(tmp_path / "none"), "--out", str(tmp_path)]) == 2
    )
    err = capsys.readouterr().err
    assert "make course PROFILE=default" in err and str(tmp_path / "none" / NOTEBOOKS[0].name) in err
    assert not (tmp_path / "html").exists(), "nothing is built from missing notebooks"


def test_site_refuses_an_executed_notebook_that_stopped_with_an_error(tmp_path):
    nb = read(NOTEBOOKS[0])
    cell = next(c for c in nb.cells if c.cell_type == "code")
    cell.outputs = [{"output_type": "error", "ename": "ValueError", "evalue": "boom", "traceback": []}]
    (tmp_path / NOTEBOOKS[0].name).write_text(json.dumps(nb))
    with pytest.raises(site.SiteError, match=r"stopped with an error .*run_course.py --profile smoke"):
        site.check_inputs("smoke", tmp_path, NOTEBOOKS[:1])


def test_lesson_links_say_what_was_not_recorded_or_built():
    links = site.lesson_links("01_soft_targets", "full", has_deck=False)
    assert (
        "none recorded for `full`" in links["digest"]
        and "results/default/01_soft_targets.md" in links["digest"]
    )
    assert "make slides-vendor" in links["slides"]
    assert links["time"].startswith("not measured yet in the `full` profile")
    assert "/student/01_soft_targets.ipynb" in links["student"]
