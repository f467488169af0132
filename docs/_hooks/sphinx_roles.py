"""A Griffe extension that makes loyaltykit's reST-flavoured docstrings render as Markdown.

mkdocstrings renders docstring text as Markdown; loyaltykit's docstrings are written for
``help()`` and Sphinx habits. Before the docstrings are parsed this extension rewrites:

- Sphinx roles (``:class:`~loyaltykit.Balance```, ``:meth:`bind```, ``:mod:`.names```,
  ``:func:``, ``:attr:``, ``:data:``, ``:exc:``, ``:obj:``, with an optional
  ``title <target>``) into cross-references. A target is resolved from the docstring's
  own scope, as Sphinx would; the link is *optional* (an mkdocs-autorefs ``<autoref
  optional>``): it links where the target is rendered in the API reference and stays code
  where it is not (a private helper, SQLAlchemy), so no reference can break the build;
- doctest paragraphs (``>>> ...``) into ``pycon`` code blocks (Markdown would read ``>``
  as a quote);
- reST literal blocks (a paragraph ending in ``::`` and an indented block) into fenced
  code blocks;
- ``.. versionadded::`` / ``.. versionchanged::`` into a line of text.

It also gives the facades' delegates a page entry: ``earn = _to("_ledger",
LedgerService.earn)`` on :class:`loyaltykit.Loyalty` and ``earn = _via(Loyalty.earn)``
on :class:`loyaltykit.aio.AsyncLoyalty` are attributes to static analysis; they become
functions with the signature (less ``self``) and docstring of the method they hand off to.

Loaded by mkdocs.yml (``plugins: mkdocstrings: ... extensions:``).
"""

from __future__ import annotations

import html
import itertools
import re
import textwrap
from typing import Any

import griffe

_ROLE = re.compile(
    r":(?:py:)?(?P<role>class|meth|mod|func|attr|data|exc|obj|const):"
    r"`(?P<body>[^`]+)`"
)
_TITLED = re.compile(r"^(?P<title>.*?)\s*<(?P<target>[^<>]+)>$", re.DOTALL)
_CALLABLE_ROLES = {"meth", "func"}
_VERSION = re.compile(r"^(?P<indent>\s*)\.\. version(?P<kind>added|changed)::\s*(?P<rest>.*)$")
_DELEGATE_BUILDERS = {"_to", "_via"}
_BORDER = re.compile(r"^\s*={2,}(\s+={2,})+\s*$")


def _resolve(obj: griffe.Object, target: str) -> str | None:
    """The full path of ``target`` as seen from ``obj``'s scope, or None."""
    target = target.lstrip(".")
    if target.startswith("loyaltykit.") or target == "loyaltykit":
        return target
    first, _, rest = target.partition(".")
    try:
        base = obj.resolve(first)
    except (griffe.NameResolutionError, AttributeError, KeyError):
        return None
    if not base.startswith("loyaltykit"):
        return None  # SQLAlchemy, the standard library: shown as code
    return f"{base}.{rest}" if rest else base


def _role(obj: griffe.Object, match: re.Match[str]) -> str:
    role, body = match["role"], match["body"].strip()
    titled = _TITLED.match(body)
    if titled:
        title, target = titled["title"], titled["target"].strip()
    else:
        target = body.lstrip("!")
        shown = target.lstrip("~")
        title = shown.rsplit(".", 1)[-1] if target.startswith("~") else shown.lstrip(".")
        target = shown
        if role in _CALLABLE_ROLES:
            title += "()"
    code = f"<code>{html.escape(title)}</code>"
    path = _resolve(obj, target.lstrip("~"))
    if path is None:
        return code
    return f'<autoref identifier="{html.escape(path)}" optional>{code}</autoref>'


def _fence_doctests(lines: list[str]) -> list[str]:
    """Wrap each run of doctest lines (``>>>`` up to a blank line) in a pycon fence."""
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.lstrip()
        if stripped.startswith(">>>"):
            indent = line[: len(line) - len(stripped)]
            out.append(f"{indent}```pycon")
            while i < len(lines) and lines[i].strip():
                out.append(lines[i])
                i += 1
            out.append(f"{indent}```")
            continue
        out.append(line)
        i += 1
    return out


def _fence_literals(lines: list[str]) -> list[str]:
    """Turn reST literal blocks (``para::``, a blank line, an indented block) into fences."""
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.rstrip().endswith("::") and not line.lstrip().startswith(".."):
            indent = len(line) - len(line.lstrip())
            text = line.rstrip()[:-2].rstrip()
            j = i + 1
            while j < len(lines) and not lines[j].strip():
                j += 1
            block_start = j
            while j < len(lines) and (
                not lines[j].strip() or len(lines[j]) - len(lines[j].lstrip()) > indent
            ):
                j += 1
            while j > block_start and not lines[j - 1].strip():
                j -= 1
            if j > block_start:
                if text:
                    out.append(text + ":")
                body = textwrap.dedent("\n".join(lines[block_start:j])).splitlines()
                pad = " " * indent
                out += ["", pad + "```text", *(pad + b if b else "" for b in body), pad + "```"]
                i = j
                continue
        out.append(line)
        i += 1
    return out


def _cells(line: str, starts: list[int]) -> list[str]:
    """Cut a simple-table row at the column starts, moving a cut right past text that
    overflows its column (reST allows it in the last; the docstrings do it anywhere)."""
    cuts = [0]
    for start in starts[1:]:
        pos = max(start, cuts[-1])
        while 0 < pos < len(line) and line[pos - 1] != " ":
            pos += 1
        cuts.append(pos)
    cuts.append(max(len(line), cuts[-1]))
    return [line[a:b].strip() for a, b in itertools.pairwise(cuts)]


def _tables(lines: list[str]) -> list[str]:
    """Turn reST simple tables (``====  ====`` borders) into Markdown tables."""
    out: list[str] = []
    i = 0
    while i < len(lines):
        if not _BORDER.match(lines[i]):
            out.append(lines[i])
            i += 1
            continue
        border = lines[i]
        starts = [m.start() for m in re.finditer(r"=+", border)]
        j = i + 1
        rows: list[list[str]] = []
        borders = 1
        while j < len(lines) and borders < 3:
            line = lines[j]
            j += 1
            if _BORDER.match(line):
                borders += 1
            elif line.strip():
                cells = _cells(line, starts)
                if rows and not cells[0] and borders > 1:
                    rows[-1] = [f"{a} {b}".strip() for a, b in zip(rows[-1], cells,
                                                                     strict=False)]
                else:
                    rows.append(cells)
        if borders < 3 or not rows:
            out.append(border)
            i += 1
            continue
        pad = border[: len(border) - len(border.lstrip())]
        out.append("")
        for k, row in enumerate(rows):
            out.append(pad + "| " + " | ".join(c.replace("|", "\\|") for c in row) + " |")
            if k == 0:
                out.append(pad + "|" + " --- |" * len(row))
        out.append("")
        i = j
    return out


def _versions(lines: list[str]) -> list[str]:
    out = []
    for line in lines:
        m = _VERSION.match(line)
        if m:
            word = "Added" if m["kind"] == "added" else "Changed"
            line = f"{m['indent']}*{word} in version {m['rest'].strip()}.*"
        out.append(line)
    return out


def markdown_docstring(obj: griffe.Object, text: str) -> str:
    """``text`` (a docstring of ``obj``) with reST habits turned into Markdown."""
    lines = _versions(_tables(_fence_literals(_fence_doctests(text.splitlines()))))
    text = "\n".join(lines)
    # no role inside a code fence: split on fences, rewrite the prose parts only
    parts = re.split(r"(^\s*```[^\n]*\n.*?^\s*```$)", text, flags=re.MULTILINE | re.DOTALL)
    for k in range(0, len(parts), 2):
        parts[k] = _ROLE.sub(lambda m: _role(obj, m), parts[k])
    return "".join(parts)


def _walk(obj: griffe.Object) -> list[griffe.Object]:
    found = [obj]
    for member in obj.members.values():
        if not member.is_alias and isinstance(member, griffe.Object):
            found += _walk(member)
    return found


def _comment_docstring(attr: griffe.Attribute) -> None:
    """Give ``attr`` the ``#:`` comment lines above it as its docstring (Sphinx's
    autodoc habit, which Griffe does not read)."""
    if attr.lineno is None or attr.filepath is None or isinstance(attr.filepath, list):
        return
    try:
        lines = attr.lines_collection[attr.filepath]
    except KeyError:
        return
    comment: list[str] = []
    k = attr.lineno - 2  # the line above, 0-based
    while k >= 0 and lines[k].strip().startswith("#:"):
        comment.insert(0, lines[k].strip()[2:].strip())
        k -= 1
    if comment:
        attr.docstring = griffe.Docstring("\n".join(comment), lineno=k + 2, parent=attr)


class SphinxRoles(griffe.Extension):
    """Rewrite the docstrings of a loaded package (see the module docstring)."""

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader,
                   **kwargs: Any) -> None:
        objects = _walk(pkg)
        for obj in objects:
            if isinstance(obj, griffe.Attribute) and obj.docstring is None:
                _comment_docstring(obj)
            if obj.docstring is not None:
                obj.docstring.value = markdown_docstring(obj, obj.docstring.value)
        done: set[str] = set()
        for obj in objects:
            if isinstance(obj, griffe.Class):
                self._delegates(obj, loader, done)

    def _delegates(self, cls: griffe.Class, loader: griffe.GriffeLoader,
                   done: set[str]) -> None:
        if cls.path in done:
            return
        done.add(cls.path)
        for name, member in list(cls.members.items()):
            if member.is_alias or not isinstance(member, griffe.Attribute):
                continue
            call = member.value
            if not (isinstance(call, griffe.ExprCall)
                    and str(call.function) in _DELEGATE_BUILDERS):
                continue
            target_expr = next((a for a in reversed(call.arguments)
                                if isinstance(a, griffe.ExprAttribute)), None)
            if target_expr is None:
                continue
            owner_path, _, method = target_expr.canonical_path.rpartition(".")
            try:
                owner = loader.modules_collection[owner_path]
            except (KeyError, griffe.AliasResolutionError):
                continue
            if isinstance(owner, griffe.Class):
                self._delegates(owner, loader, done)  # a delegate of a delegate
            try:
                target = owner[method]
                if target.is_alias:  # inherited: an alias of the base class's method
                    target = target.final_target
            except (KeyError, griffe.AliasResolutionError, griffe.CyclicAliasError):
                continue
            if not isinstance(target, griffe.Function):
                continue
            # less ``self`` (a delegate of a delegate has none left)
            params = [griffe.Parameter(p.name, annotation=p.annotation, kind=p.kind,
                                       default=p.default)
                      for k, p in enumerate(target.parameters)
                      if not (k == 0 and p.name == "self")]
            function = griffe.Function(
                name, lineno=member.lineno, endlineno=member.endlineno,
                parameters=griffe.Parameters(*params), returns=target.returns,
                docstring=(griffe.Docstring(target.docstring.value,
                                            lineno=target.docstring.lineno)
                           if target.docstring else None),
            )
            function.labels = set(target.labels)
            if str(call.function) == "_via":
                function.labels.add("async")
            cls.set_member(name, function)
