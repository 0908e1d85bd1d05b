"""The console's texts in both languages, checked on the files (no browser): every text a page
passes to t()/tn() has its German in i18n-de.js; no page writes a user-facing text around t()."""

from __future__ import annotations

import json
import re
from pathlib import Path

from omshub.cloud.web import console as web

STATIC = Path(web.__file__).parent / "static"
STRING = r'"(?:[^"\\]|\\.)*"'
# a string literal, or several joined with +
TEXT = re.compile(r"\s*(" + STRING + r"(?:\s*\+\s*" + STRING + r")*)")


def _texts(source: str) -> list[str]:
    """The English texts of the t("…") and tn(n, "…", "…") calls of a file."""
    found = []
    for call in re.finditer(r"(?<![\w.])(t|tn)\(", source):
        rest = source[call.end() :]
        if call.group(1) == "tn":
            rest = rest[rest.index(",") + 1 :]  # the count: a name or a short expression
        for _ in range(2 if call.group(1) == "tn" else 1):
            m = TEXT.match(rest)
            if not m:
                break
            found.append("".join(json.loads(s) for s in re.findall(STRING, m.group(1))))
            rest = rest[m.end() :].lstrip().removeprefix(",")
    return found


def _catalogue() -> dict[str, str]:
    source = (STATIC / "i18n-de.js").read_text()
    block = source[source.index("export const DE = {") : source.index("export const VALUE_DE")]
    return {
        json.loads(k): json.loads(v)
        for k, v in re.findall(r"^\s*(" + STRING + r"):\s*(" + STRING + r"),$", block, re.M)
    }


def _tables(source: str) -> list[str]:
    """Texts kept in tables and passed to t() by name (menu, roles, alarm texts, configuration words)."""
    out = []
    for name in ("NAV", "ROLE_NAMES", "ALARM_TEXT", "CONFIG_WORDS", "ACTIONS", "ROLE_TEXT"):
        m = re.search(r"\b" + name + r" = \{(.*?)\};", source, re.S)
        if m:
            out += [json.loads(s) for s in re.findall(r":\s*(" + STRING + ")", m.group(1))]
    return out


def test_every_text_of_the_console_has_its_german():
    german = _catalogue()
    missing = {}
    for path in sorted(STATIC.glob("*.js")):
        source = path.read_text()
        texts = _texts(source) + _tables(source)
        lacking = [t for t in texts if t not in german and t != "English text"]
        if lacking:
            missing[path.name] = lacking
    assert missing == {}
    assert len(german) > 300


def test_no_page_shows_a_bare_english_text():
    """A label, heading or message written as a plain string (not through t()) would stay English."""
    bare = re.compile(
        r'(?:label|empty|title|placeholder|"aria-label"):\s*"[A-Z][a-z]+[^"]*"|h\("h[1-3]", \{[^}]*\}, "[A-Z]'
    )
    for path in sorted(STATIC.glob("page-*.js")) + [STATIC / "app.js", STATIC / "ui.js", STATIC / "config-form.js"]:
        assert not bare.findall(path.read_text()), path.name


def test_the_extractor_reads_joined_and_counted_texts():
    source = 'x = t("A " +\n  "b {n}", { n }); y = tn(items.length, "one", "{n} many"); z = split(",")'
    assert _texts(source) == ["A b {n}", "one", "{n} many"]
