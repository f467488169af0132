"""Run the Python examples in README.md and docs/**/*.md.

Every fenced block whose info string is ``python`` is executed. The blocks of
one document run in order in one fresh namespace (like a doctest session), as
one test per document. Blocks fenced as ``python no-run`` are skipped.

Each document runs inside a temporary working directory, so an example that
creates a SQLite file leaves nothing behind in the repository. Line numbers in
tracebacks are line numbers of the Markdown file.

A document holding the line ``<!-- docs-test: fresh interpreter -->`` runs in a new
Python process instead (``python tests/package/test_docs.py DOC``, in the temporary
directory): for examples that set process-wide state once, such as Django's
``settings.configure()``.
"""

from __future__ import annotations

import linecache
import os
import re
import subprocess
import sys
import traceback
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

# A CommonMark fence: up to 3 spaces of indent, then >= 3 backticks or tildes.
_FENCE_OPEN = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})\s*(?P<info>.*?)\s*$")


@dataclass(frozen=True)
class CodeBlock:
    """One fenced code block of a Markdown document."""

    info: str
    line: int  # 1-based line number of the block's first code line
    source: str

    @property
    def words(self) -> list[str]:
        return self.info.split()

    @property
    def is_python(self) -> bool:
        return bool(self.words) and self.words[0].lower() == "python"

    @property
    def runnable(self) -> bool:
        return self.is_python and "no-run" not in self.words[1:]


def find_docs() -> list[Path]:
    docs = [REPO_ROOT / "README.md"]
    docs += sorted((REPO_ROOT / "docs").glob("**/*.md"))
    return [p for p in docs if p.is_file()]


def parse_blocks(text: str) -> list[CodeBlock]:
    """Return all fenced code blocks of a Markdown text, in order."""
    blocks: list[CodeBlock] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = _FENCE_OPEN.match(lines[i])
        # A backtick fence's info string may not contain backticks.
        if m is None or (m["fence"][0] == "`" and "`" in m["info"]):
            i += 1
            continue
        indent = len(m["indent"])
        fence = m["fence"]
        close = re.compile(rf"^ {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}\s*$")
        body: list[str] = []
        j = i + 1
        while j < len(lines) and not close.match(lines[j]):
            # Remove up to the opening fence's indentation from each line.
            line = lines[j]
            strip = len(line) - len(line.lstrip(" "))
            body.append(line[min(indent, strip) :])
            j += 1
        blocks.append(CodeBlock(info=m["info"], line=i + 2, source="\n".join(body) + "\n"))
        i = j + 1  # continue after the closing fence (or past EOF if unclosed)
    return blocks


def _rel(path: Path) -> str:
    if not path.is_relative_to(REPO_ROOT):  # a page a test wrote
        return path.name
    return path.relative_to(REPO_ROOT).as_posix()


# Only documents with runnable blocks become tests: a prose-only page has nothing to run.
DOCS = [
    p for p in find_docs()
    if any(b.runnable for b in parse_blocks(p.read_text(encoding="utf-8")))
]


#: the line that makes a document run in a fresh interpreter (see the module docstring)
FRESH_INTERPRETER = "<!-- docs-test: fresh interpreter -->"


def run_blocks(doc: Path, setitem: Callable[[Any, str, Any], None]) -> None:
    """Run the document's runnable blocks in order in one module's namespace, in the
    current directory; ``setitem(mapping, key, value)`` sets the process-wide entries
    (``sys.modules``, ``linecache``), e.g. ``monkeypatch.setitem``."""
    rel = _rel(doc)
    blocks = [b for b in parse_blocks(doc.read_text(encoding="utf-8")) if b.runnable]
    assert blocks, f"{rel} has no runnable python blocks"

    # A real module object, so pickling, typing.get_type_hints, dataclasses and
    # attrs work for classes defined in the examples.
    mod_name = "_loyaltykit_doc_" + re.sub(r"\W", "_", rel)
    module = types.ModuleType(mod_name)
    module.__file__ = str(doc)
    setitem(sys.modules, mod_name, module)
    namespace = module.__dict__

    for block in blocks:
        filename = f"{rel}:{block.line}"
        # Pad so that traceback line numbers are line numbers of the document.
        source = "\n" * (block.line - 1) + block.source
        # Let tracebacks show the example's source (restored at teardown).
        setitem(linecache.cache, filename, (len(source), None, source.splitlines(True), filename))
        try:
            code = compile(source, filename, "exec", dont_inherit=True)
            exec(code, namespace)
        except Exception as exc:
            tb = "".join(traceback.format_exception(exc))
            raise AssertionError(
                f"python block at {rel}:{block.line} failed "
                f"(traceback line numbers are lines of {rel}):\n{tb}"
            ) from exc


def run_in_fresh_interpreter(doc: Path, cwd: Path,
                             env: Mapping[str, str] | None = None) -> None:
    """Run the document's blocks in a new Python process in ``cwd`` (``env`` added to
    this process's environment); a failure raises AssertionError with its output."""
    proc = subprocess.run(
        [sys.executable, __file__, str(doc)], cwd=cwd, env={**os.environ, **(env or {})},
        capture_output=True, text=True, timeout=600, check=False)
    assert 0 == proc.returncode, f"{_rel(doc)} failed:\n{proc.stdout}{proc.stderr}"


@pytest.mark.parametrize("doc", DOCS, ids=[_rel(p) for p in DOCS])
def test_doc_examples(doc: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if FRESH_INTERPRETER in doc.read_text(encoding="utf-8").splitlines():
        run_in_fresh_interpreter(doc, tmp_path)
        return
    monkeypatch.chdir(tmp_path)
    run_blocks(doc, monkeypatch.setitem)


def test_a_fresh_interpreter_reports_the_failing_block(tmp_path: Path) -> None:
    doc = tmp_path / "page.md"
    doc.write_text(f"{FRESH_INTERPRETER}\n\n```python\nx = 1\n```\n\n"
                   "```python\nassert x == 2, 'x is one'\n```\n", encoding="utf-8")
    with pytest.raises(AssertionError, match="x is one") as caught:
        run_in_fresh_interpreter(doc, tmp_path)
    assert "page.md:8" in str(caught.value)  # the line of the failing block


ALL_DOCS = find_docs()


@pytest.mark.parametrize("doc", ALL_DOCS, ids=[_rel(p) for p in ALL_DOCS])
def test_doc_json_examples_are_json(doc: Path) -> None:
    """Every ``json`` block is one JSON document: an example a reader may copy (a block
    left unclosed swallows the prose after it, and the blocks after it shift)."""
    import json

    text = doc.read_text(encoding="utf-8")
    for block in parse_blocks(text):
        if block.words[:1] == ["json"]:
            try:
                json.loads(block.source)
            except ValueError as exc:
                pytest.fail(f"{_rel(doc)}:{block.line}: not JSON: {exc}")


if __name__ == "__main__":  # run_in_fresh_interpreter's process
    run_blocks(Path(sys.argv[1]).resolve(),
               lambda mapping, key, value: mapping.__setitem__(key, value))
