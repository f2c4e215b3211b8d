"""A page's title block holds words only: markup there is shown as text in the browser's tab
(a script tag once sat in the import key page's title)."""

import re
from pathlib import Path

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
TITLE_BLOCK = re.compile(r"{%\s*block title\s*%}(.*?){%\s*endblock", re.S)


def test_no_title_block_holds_markup():
    offending = {
        str(path.relative_to(TEMPLATES)): block
        for path in TEMPLATES.rglob("*.html")
        for block in TITLE_BLOCK.findall(path.read_text())
        if "<" in block or "\n" in block.strip()
    }
    assert offending == {}


def test_the_check_finds_title_blocks():
    titles = [
        block
        for path in TEMPLATES.rglob("*.html")
        for block in TITLE_BLOCK.findall(path.read_text())
    ]
    assert len(titles) > 20
