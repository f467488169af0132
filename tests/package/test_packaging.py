"""What PyPI will show: the built metadata (long description, classifiers, extras).

The metadata comes from the build backend itself (hatchling's
``prepare_metadata_for_build_wheel``, which runs hatch_build.py as a wheel build does);
with ``LOYALTYKIT_DIST=DIR`` (as .ci/run sets after ``python -m build``) it is read from
the wheel in DIR instead, so the file that would be uploaded is the one checked.
"""

from __future__ import annotations

import email.parser
import email.policy
import importlib.util
import os
import re
import sys
import tomllib
import zipfile
from email.message import Message
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
SOURCE = "https://github.com/loyaltykit/loyaltykit"
_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def _hook_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("hatch_build", REPO / "hatch_build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def metadata(tmp_path_factory: pytest.TempPathFactory) -> Message:
    dist = os.environ.get("LOYALTYKIT_DIST")
    if dist:
        [wheel] = Path(dist).glob("loyaltykit-*.whl")
        with zipfile.ZipFile(wheel) as archive:
            [name] = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
            text = archive.read(name).decode("utf-8")
    else:
        from hatchling.build import prepare_metadata_for_build_wheel

        out = tmp_path_factory.mktemp("metadata")
        cwd = Path.cwd()
        os.chdir(REPO)  # the backend builds the project in the working directory
        try:
            info = prepare_metadata_for_build_wheel(str(out))
        finally:
            os.chdir(cwd)
        text = (out / info / "METADATA").read_text(encoding="utf-8")
    return email.parser.Parser(policy=email.policy.compat32).parsestr(text)


def _description(metadata: Message) -> str:
    payload = metadata.get_payload()
    assert isinstance(payload, str)
    return payload


def test_the_description_is_markdown_and_starts_with_pip_install(metadata: Message) -> None:
    assert "text/markdown" == metadata["Description-Content-Type"]
    text = _description(metadata)
    assert text.startswith("# loyaltykit\n")
    first_block = text.split("```")[1]
    assert "$ pip install loyaltykit" == first_block.splitlines()[1]
    # README.md's sections follow, without the checkout-only ones
    assert "\n## What it is\n" in text and "\n## A first program\n" in text
    assert "## Development" not in text and "scripts/test" not in text
    assert ".venv/bin/pip install -e ." not in text


def test_the_description_has_no_relative_link(metadata: Message) -> None:
    links = _LINK.findall(_description(metadata))
    assert len(links) >= 10  # the docs pages and the changelog
    relative = [link for link in links if not link.startswith("https://")]
    assert [] == relative
    # links into the project point at files that exist on its main branch
    prefix = f"{SOURCE}/blob/main/"
    ours = [link[len(prefix):] for link in links if link.startswith(prefix)]
    assert "docs/quickstart.md" in ours and "CHANGELOG.md" in ours
    assert [] == [path for path in ours if not (REPO / path.split("#")[0]).is_file()]


def test_the_project_urls_are_the_one_base(metadata: Message) -> None:
    urls = dict(entry.split(", ", 1) for entry in metadata.get_all("Project-URL") or [])
    assert SOURCE == urls["Source"]
    assert all(url.startswith(SOURCE) for url in urls.values()), urls


def test_the_classifiers_name_the_python_versions_the_suite_runs_on(
    metadata: Message,
) -> None:
    classifiers = metadata.get_all("Classifier") or []
    versions = sorted(c.rsplit(" ", 1)[1] for c in classifiers
                      if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c))
    assert ["3.11", "3.12", "3.13"] == versions
    assert ">=3.11" == metadata["Requires-Python"]
    assert f"{sys.version_info.major}.{sys.version_info.minor}" in versions
    for expected in ("Typing :: Typed", "Operating System :: OS Independent",
                     "Framework :: Pytest"):
        assert expected in classifiers
    assert "MIT" == metadata["License-Expression"]


def test_the_extras_explained_are_the_extras_there_are(metadata: Message) -> None:
    table = _description(metadata).split("\n## Extras\n", 1)[1].split("\n## ", 1)[0]
    explained = re.findall(r"^\| `([a-z]+)` \|", table, flags=re.MULTILINE)
    provided = metadata.get_all("Provides-Extra") or []
    assert sorted(provided) == sorted(explained)
    assert {"postgresql", "async", "analytics", "test", "plot", "docs"} <= set(provided)
    with (REPO / "pyproject.toml").open("rb") as handle:
        declared = tomllib.load(handle)["project"]["optional-dependencies"]
    assert sorted(declared) == sorted(provided)


def test_relative_links_become_absolute_against_the_source() -> None:
    hook = _hook_module()
    text = ("See [the ledger](docs/ledger.md#lots), [here](./CHANGELOG.md), "
            "[PyPI](https://pypi.org/p/x), [top](#install), ![chart](docs/img/a.png).\n"
            "[ref]: docs/reports.md\n")
    assert ("See [the ledger](S/blob/main/docs/ledger.md#lots), "
            "[here](S/blob/main/CHANGELOG.md), [PyPI](https://pypi.org/p/x), "
            "[top](#install), ![chart](S/raw/main/docs/img/a.png).\n"
            "[ref]: S/blob/main/docs/reports.md\n") == hook.absolute_links(text, "S/")


def test_the_description_needs_the_readme_sections(tmp_path: Path) -> None:
    hook = _hook_module()
    (tmp_path / "README.pypi.md").write_text("# x\n")
    (tmp_path / "README.md").write_text("# x\n\n## Usage\n\ntext\n")
    with pytest.raises(ValueError, match="lacks the sections"):
        hook.pypi_description(tmp_path, SOURCE)
