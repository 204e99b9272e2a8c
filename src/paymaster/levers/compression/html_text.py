"""HTML → readable text: headings, paragraphs, list items and table rows on their own lines;
scripts, styles, navigation, headers, footers, forms and other page furniture left out.

The standard library's tokenizer (`html.parser`), which reads broken markup without complaint;
the output is plain text with light Markdown (`#` headings, `-` list items, `|` table cells).
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

# elements whose content is never read: code, styling, and page furniture around the content
SKIP = frozenset(
    {"script", "style", "noscript", "template", "svg", "canvas", "iframe", "nav", "footer", "aside", "form",
     "button", "select", "head", "dialog", "object", "embed"}
)  # fmt: skip
BLOCK = frozenset(
    {"p", "div", "section", "article", "main", "br", "hr", "ul", "ol", "dl", "dt", "dd", "table", "thead",
     "tbody", "tfoot", "blockquote", "pre", "figure", "figcaption", "address", "h1", "h2", "h3", "h4", "h5",
     "h6", "li", "tr", "caption", "details", "summary"}
)  # fmt: skip
VOID = frozenset({"br", "hr", "img", "input", "meta", "link", "source", "wbr", "area", "base", "col", "track", "param"})

_LOOKS_HTML = re.compile(r"<(?:!doctype\s+html|html|body|div|p|span|table|ul|li|a\s|h[1-6]|article|section)\b", re.I)


def looks_like_html(text: str) -> bool:
    """A page or fragment: starts like a document, or carries several block-level tags."""
    head = text.lstrip()[:64].lower()
    if head.startswith(("<!doctype html", "<html")):
        return True
    return text.lstrip().startswith("<") and len(_LOOKS_HTML.findall(text[:20000])) >= 4


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skip = 0  # depth inside skipped elements
        self.title: list[str] = []
        self.in_title = False
        self.cells = 0  # cells in the current table row
        self.pre = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self.in_title = True
            return
        if tag in SKIP:
            if tag not in VOID:
                self.skip += 1
            return
        if self.skip:
            return
        if tag == "pre":
            self.pre += 1
        if tag in BLOCK:
            self.out.append("\n")
        if tag in ("h1", "h2", "h3", "h4", "h5", "h6"):
            self.out.append("#" * int(tag[1]) + " ")
        elif tag == "li":
            self.out.append("- ")
        elif tag == "tr":
            self.cells = 0
        elif tag in ("td", "th"):
            if self.cells:
                self.out.append(" | ")
            self.cells += 1
        elif tag == "img":
            alt = dict(attrs).get("alt")
            if alt:
                self.out.append(f"[image: {alt.strip()}]")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self.in_title = False
            return
        if tag in SKIP:
            if tag not in VOID and self.skip:
                self.skip -= 1
            return
        if self.skip:
            return
        if tag == "pre" and self.pre:
            self.pre -= 1
        if tag in BLOCK:
            self.out.append("\n")

    def handle_data(self, data: str) -> None:
        if self.in_title:
            self.title.append(data)
        elif not self.skip:
            self.out.append(data if self.pre else _SPACES.sub(" ", data))


_SPACES = re.compile(r"\s+")
_LINE_SPACES = re.compile(r"[ \t\u00a0]+")


def html_to_text(html: str) -> str:
    p = _Text()
    p.feed(html)
    p.close()
    body = "".join(p.out)
    lines: list[str] = []
    for raw in body.split("\n"):
        line = _LINE_SPACES.sub(" ", raw).strip()
        if line and line not in ("-", "|"):
            if line.startswith("#") and lines:
                lines.append("")  # a heading opens a section
            lines.append(line)
    text = "\n".join(lines)
    title = " ".join("".join(p.title).split())
    if title and not text.startswith(f"# {title}"):
        text = f"# {title}\n\n{text}" if text else f"# {title}"
    return text
