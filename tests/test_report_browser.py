"""The report page and the `dvc plots show` page, rendered in headless Chromium with the network cut off.

Chromium resolves every host name to an error and sends every request to a proxy where nothing listens,
so only what the page itself carries can draw. The checks: every chart became an SVG holding drawn marks,
the page reports no failed chart, and a screenshot is not blank. A CDN-only page is rendered the same way
first, to show that the network really is unreachable. Skipped only where Debian's ``chromium`` is absent
(``.ci/run`` installs it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml
from test_report import RUNS
from test_report_page import evaluate_tree

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium")

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (`apt-get install chromium`; "
                                                          ".ci/run installs it)")

NO_NETWORK = ["--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=http://127.0.0.1:9"]


def render(page: Path, workdir: Path, width: int = 1280, height: int = 1400) -> tuple[str, Path]:
    """Open ``page`` in headless Chromium without network; return the DOM after scripts ran and a screenshot."""
    shot = workdir / f"{page.stem}.png"
    cmd = [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
           "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--mute-audio", *NO_NETWORK,
           f"--user-data-dir={workdir / 'chromium-profile'}", "--virtual-time-budget=20000",
           f"--window-size={width},{height}", f"--screenshot={shot}", "--dump-dom", page.resolve().as_uri()]
    env = dict(os.environ, HOME=str(workdir))
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert shot.exists(), f"no screenshot: {proc.stderr[-3000:]}"
    return proc.stdout, shot


class Charts(HTMLParser):
    """Per chart container (``div.plot`` of the report, or a dvc-render plot ``div``): SVGs and drawn marks.

    A drawn mark is an element inside a Vega ``<g class="... role-mark ...">`` group (lines, bars, points,
    text of the data itself; axes and legends are other roles).
    """

    def __init__(self, is_chart) -> None:
        super().__init__()
        self.is_chart = is_chart
        self.charts: list[dict] = []
        self._divs: list[dict | None] = []  # one entry per open div: the chart it starts, or None
        self._marks = 0  # depth inside role-mark groups
        self.body: dict[str, str] = {}

    def _current(self) -> dict | None:
        return next((d for d in reversed(self._divs) if d is not None), None)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "body":
            self.body = {k: v or "" for k, v in attrs.items()}
        if tag == "div":
            chart = {"name": attrs.get("data-name") or attrs.get("id"), "svg": 0, "canvas": 0, "marks": 0,
                     "img": 0, "error": False} if self.is_chart(attrs) and self._current() is None else None
            if chart is not None:
                self.charts.append(chart)
            self._divs.append(chart)
            return
        chart = self._current()
        if chart is None:
            return
        if tag == "svg" and "marks" in (attrs.get("class") or ""):
            chart["svg"] += 1
        elif tag == "canvas":
            chart["canvas"] += 1
        elif tag == "img":
            chart["img"] += 1
        elif tag == "p" and "plot-error" in (attrs.get("class") or ""):
            chart["error"] = True
        if self._marks and tag in ("path", "line", "rect", "text", "circle", "image"):
            chart["marks"] += 1
        if tag == "g":
            self._marks += 1 if (self._marks or "role-mark" in (attrs.get("class") or "").split()) else 0

    def handle_endtag(self, tag):
        if tag == "div" and self._divs:
            self._divs.pop()
        elif tag == "g" and self._marks:
            self._marks -= 1


def assert_not_blank(shot: Path) -> None:
    from PIL import Image, ImageStat

    with Image.open(shot) as image:
        gray = image.convert("L")
        stat = ImageStat.Stat(gray)
        assert gray.size[0] > 500 and gray.size[1] > 500, gray.size
        assert stat.stddev[0] > 20, f"{shot.name} looks blank (pixel std {stat.stddev[0]:.1f})"
        histogram = gray.histogram()
        assert max(histogram) < 0.97 * sum(histogram), f"{shot.name}: one shade covers almost everything"


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory) -> Path:
    return evaluate_tree(tmp_path_factory.mktemp("browser"))


def test_network_is_really_cut_off(tmp_path):
    page = tmp_path / "cdn.html"
    page.write_text('<!DOCTYPE html><html><head><script src="https://cdn.jsdelivr.net/npm/vega@5.33.1"></script>'
                    "</head><body><script>document.body.setAttribute('data-vega', typeof vega);</script>"
                    "<p>CDN only</p></body></html>")
    dom, _ = render(page, tmp_path, 800, 600)
    parser = Charts(lambda attrs: False)
    parser.feed(dom)
    assert parser.body.get("data-vega") == "undefined"


def test_report_page_draws_every_chart_offline(evaluated, tmp_path):
    page = evaluated / "plots" / "report.html"
    dom, shot = render(page, tmp_path)
    parser = Charts(lambda attrs: "plot" in (attrs.get("class") or "").split() and "data-spec" in attrs)
    parser.feed(dom)
    expected = page.read_text(encoding="utf-8").count('<div class="plot" data-spec=')
    assert len(parser.charts) == expected >= 3 * len(RUNS) + 4  # ROC, PR, confusion per run; training curves
    failed = [c["name"] for c in parser.charts if c["svg"] != 1 or c["marks"] < 2 or c["error"]]
    assert not failed, f"charts not drawn: {failed}"
    assert parser.body.get("data-plots-drawn") == str(expected) and parser.body.get("data-plots-failed") == "0"
    assert_not_blank(shot)


def test_dvc_plots_page_draws_offline(evaluated, tmp_path):
    """`dvc plots show` with the committed template and config, on the evaluated plot data."""
    repo = tmp_path / "repo"
    (repo / ".dvc" / "plots").mkdir(parents=True)
    shutil.copy2(ROOT / ".dvc" / "config", repo / ".dvc" / "config")
    for template in (ROOT / ".dvc" / "plots").iterdir():
        shutil.copy2(template, repo / ".dvc" / "plots" / template.name)
    spec = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    # the classification plots (the rec track's plots_rec/ entries have their data in another stage's output)
    ours = [p for p in spec["plots"] if (p if isinstance(p, str) else next(iter(p))).startswith("plots/")]
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"plots": ours}, sort_keys=False))
    shutil.copytree(evaluated / "plots", repo / "plots")
    env = dict(os.environ, DVC_NO_ANALYTICS="1", HOME=str(tmp_path),
               PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
    proc = subprocess.run(["dvc", "plots", "show", "-o", "dvc_plots"], cwd=repo, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    page = repo / "dvc_plots" / "index.html"
    source = page.read_text(encoding="utf-8")
    assert "cdn.jsdelivr" not in source and "vega-embed" in source
    dom, shot = render(page, tmp_path)
    parser = Charts(lambda attrs: attrs.get("id", "").startswith("plots_"))
    parser.feed(dom)
    vega_charts = [c for c in parser.charts if c["img"] == 0]
    images = [c for c in parser.charts if c["img"]]
    # ROC, PR and confusion per run, training curves of the one run with DVCLive output
    assert len(vega_charts) == source.count("vegaEmbed('#") == 3 * len(RUNS) + 1
    failed = [c["name"] for c in vega_charts if c["svg"] != 1 or c["marks"] < 1]
    assert not failed, f"dvc plots not drawn: {failed}"
    assert len(images) == 2  # leaderboard_heatmap.png and gaf_examples.png, from the dvc_plots/static folder
    assert_not_blank(shot)


class Sections(HTMLParser):
    """Table rows (first cell) and figure alt texts of the page, grouped by the last ``h2``/``h3`` heading."""

    def __init__(self) -> None:
        super().__init__()
        self.h2 = self.h3 = ""
        self._heading: str | None = None
        self._cell: list[str] | None = None
        self._first_cell = False
        self.rows: dict[tuple[str, str], list[str]] = {}
        self.figures: dict[str, list[str]] = {}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in ("h2", "h3"):
            self._heading = tag
            if tag == "h2":
                self.h2, self.h3 = attrs.get("id") or "", ""
            else:
                self.h3 = ""
        elif tag == "tr":
            self._first_cell = True
        elif tag == "td" and self._first_cell:
            self._cell, self._first_cell = [], False
        elif tag == "img" and "figure" in (attrs.get("class") or ""):
            self.figures.setdefault(self.h2, []).append(attrs.get("alt") or "")

    def handle_data(self, data):
        if self._heading == "h3":
            self.h3 += data
        if self._cell is not None:
            self._cell.append(data)

    def handle_endtag(self, tag):
        if tag in ("h2", "h3"):
            self._heading = None
        elif tag == "td" and self._cell is not None:
            self.rows.setdefault((self.h2, self.h3.strip()), []).append("".join(self._cell).strip())
            self._cell = None


def test_committed_report_page_draws_every_chart_and_the_recommendation_section(tmp_path):
    """The committed ``report/index.html`` (what a reader opens first), not a page generated for the test."""
    import json

    page = ROOT / "report" / "index.html"
    source = page.read_text(encoding="utf-8")
    dom, shot = render(page, tmp_path, height=2400)
    charts = Charts(lambda attrs: "plot" in (attrs.get("class") or "").split() and "data-spec" in attrs)
    charts.feed(dom)
    expected = source.count('<div class="plot" data-spec=')
    assert len(charts.charts) == expected > 0
    failed = [c["name"] for c in charts.charts if c["svg"] != 1 or c["marks"] < 2 or c["error"]]
    assert not failed, f"charts not drawn: {failed}"
    assert charts.body.get("data-plots-drawn") == str(expected) and charts.body.get("data-plots-failed") == "0"
    assert_not_blank(shot)

    # The recommendation section: a leaderboard per dataset of metrics/rec_leaderboard.json, listing every
    # model that has results there, and its figures.
    sections = Sections()
    sections.feed(dom)
    board = json.loads((ROOT / "metrics" / "rec_leaderboard.json").read_text())
    assert board, "metrics/rec_leaderboard.json lists no dataset"
    for dataset, entry in board.items():
        models = entry["models"]
        shown = sections.rows.get(("rec", dataset))
        assert shown, f"the page has no recommendation table for {dataset}"
        assert set(models) <= set(shown), f"{dataset}: models missing on the page: {set(models) - set(shown)}"
    figures = sum(sections.figures.values(), [])
    assert {"ndcg_at_k.png", "accuracy_coverage.png"} <= set(figures), figures
