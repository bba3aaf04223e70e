"""Offline Vega: the vendored Vega, Vega-Lite and vega-embed builds, inlined into HTML pages.

The three minified builds live in ``hmspar/report/vendor/`` (versions, checksums and licences in its
``README.md``). :func:`inline_scripts` returns them as inline ``<script>`` elements, preceded by their
licence notices, for pages that must draw with no network: the report page (:mod:`hmspar.report.page`)
and the page template of ``dvc plots show`` (:func:`dvc_page_template`, committed as
``.dvc/plots/offline_page.html`` and named by ``plots.html_template`` in ``.dvc/config``).

``python -m hmspar.report.vega`` rewrites the committed template; ``--check`` only compares it.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from pathlib import Path

from hmspar.errors import HmsparError

#: Folder of the vendored builds and their licences.
VENDOR_DIR = Path(__file__).resolve().parent / "vendor"

#: ``(package, version, file, licence file, sha256)`` in load order (vega-lite and vega-embed need vega).
LIBRARIES: tuple[tuple[str, str, str, str, str], ...] = (
    ("vega", "5.33.1", "vega.min.js", "LICENSE.vega",
     "463f3db6a40b20e9747b4ed38f37ed0add508838f9141b1cf8366784b07b30c8"),
    ("vega-lite", "5.23.0", "vega-lite.min.js", "LICENSE.vega-lite",
     "58c27358e26f2d319cf62f45bc17a4c8362f08645001df2ec8d341eee4097c7f"),
    ("vega-embed", "6.29.0", "vega-embed.min.js", "LICENSE.vega-embed",
     "12d02acfbe3ec59ef9a37dd4822a2e04e2961b5bbb671bbe661d2221715b99da"),
)

#: Where the ``dvc plots show`` template is committed (``plots.html_template`` is relative to ``.dvc/``).
DVC_TEMPLATE_PATH = Path(".dvc") / "plots" / "offline_page.html"

#: Placeholders that dvc-render replaces (plain ``str.replace``) in a page template.
DVC_PLACEHOLDERS = ("{plot_divs}", "{refresh_tag}", "{scripts}")


#: Wraps the global ``vegaEmbed`` so that SVG is the default renderer (dvc-render's calls pass no options).
SVG_DEFAULT_JS = """(function () {
  var embed = window.vegaEmbed;
  window.vegaEmbed = function (el, spec, opts) {
    return embed(el, spec, Object.assign({renderer: "svg"}, opts || {}));
  };
})();
"""


def _read_library(file: str, sha256: str) -> str:
    path = VENDOR_DIR / file
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise HmsparError(f"{path}: cannot read the vendored script ({exc.strerror})") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise HmsparError(f"{path}: sha256 {digest} differs from the pinned {sha256} "
                          "(see hmspar/report/vendor/README.md to update a library)")
    text = data.decode("utf-8")
    # The trailing source-map comment points at a file we do not ship; drop it from the inlined copy.
    lines = text.rstrip("\n").split("\n")
    if lines and lines[-1].startswith("//# sourceMappingURL="):
        lines = lines[:-1]
    text = "\n".join(lines)
    lowered = text.lower()
    if "</script" in lowered or "<!--" in text:
        raise HmsparError(f"{path}: contains '</script' or '<!--' and cannot be inlined in an HTML page")
    return text


def licence_notice() -> str:
    """An HTML comment naming each vendored library, its version and its full licence text."""
    parts = ["Offline copies of the following libraries are inlined below, unmodified except for their",
             "trailing source-map comment (hmspar/report/vendor/README.md lists what they bundle).", ""]
    for name, version, file, licence, _ in LIBRARIES:
        text = (VENDOR_DIR / licence).read_text(encoding="utf-8").strip().replace("--", "- -")
        parts += [f"{name} {version} ({file}), BSD-3-Clause:", text, ""]
    return "<!--\n" + "\n".join(parts).rstrip() + "\n-->"


def inline_scripts() -> str:
    """The licence notice and one inline ``<script>`` per library, in load order.

    Returns
    -------
    str
        HTML to place in a page's ``<head>``; it defines the globals ``vega``, ``vegaLite`` and ``vegaEmbed``.

    Raises
    ------
    HmsparError
        When a vendored file is missing or differs from its pinned checksum.
    """
    scripts = [licence_notice()]
    for name, version, file, _, sha256 in LIBRARIES:
        scripts.append(f'<script data-library="{name}" data-version="{version}">\n'
                       f"{_read_library(file, sha256)}\n</script>")
    return "\n".join(scripts)


def dvc_page_template() -> str:
    """The HTML page template for ``dvc plots show``, with Vega inlined instead of loaded from a CDN.

    dvc-render fills ``{plot_divs}`` (one ``<div>`` per plot, each calling ``vegaEmbed``) and
    ``{refresh_tag}``; the template leaves out ``{scripts}``, where dvc-render would put its CDN
    ``<script src=...>`` tags, so the page needs no network. A small wrapper makes ``vegaEmbed`` draw SVG
    unless a call asks otherwise (sharp when zoomed or printed, and checkable in the page's DOM).
    """
    scripts = inline_scripts()
    for placeholder in DVC_PLACEHOLDERS:
        if placeholder in scripts:
            raise HmsparError(f"a vendored script contains {placeholder!r}, which dvc-render would replace")
    return (
        "<!DOCTYPE html>\n<html>\n<head>\n"
        '<meta charset="utf-8">\n'
        "{refresh_tag}\n"
        "<title>DVC plots (offline)</title>\n"
        "<!-- Written by `python -m hmspar.report.vega` from hmspar/report/vendor/: do not edit by hand. -->\n"
        f"{scripts}\n"
        f"<script>\n{SVG_DEFAULT_JS}</script>\n"
        "<style>\n"
        "  body { font-family: sans-serif; }\n"
        "  table { border-spacing: 15px; }\n"
        "</style>\n"
        "</head>\n<body>\n"
        "{plot_divs}\n"
        "</body>\n</html>\n"
    )


def main(argv: list[str] | None = None) -> int:
    """Write (or with ``--check`` compare) the committed ``dvc plots show`` template; 0 when up to date."""
    parser = argparse.ArgumentParser(prog="python -m hmspar.report.vega", description=main.__doc__)
    parser.add_argument("--path", type=Path, default=DVC_TEMPLATE_PATH, help="template file (default: %(default)s)")
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when the file differs")
    args = parser.parse_args(argv)
    try:
        text = dvc_page_template()
    except HmsparError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    current = args.path.read_text(encoding="utf-8") if args.path.exists() else None
    if args.check:
        if current != text:
            print(f"{args.path}: out of date (run `python -m hmspar.report.vega`)", file=sys.stderr)
            return 1
        return 0
    if current != text:
        args.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.path.with_name(f".{args.path.name}.tmp-{os.getpid()}")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, args.path)
    print(f"{args.path}: {len(text.encode('utf-8')):,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
