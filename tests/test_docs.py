"""The docs are part of the product: generated parts match the code, examples run.

* every generated part of ``docs/*.md`` equals what ``docs/generate.py`` makes now,
  so diagrams and tables cannot drift from the definitions;
* every ```python block of ``docs/*.md`` and ``README.md`` runs (blocks of one page
  share a namespace, in order) and its assertions hold;
* the mermaid diagrams declare every state and draw every transition;
* the error tree drawn in ``_errors.py`` is the real class hierarchy;
* every guard of the registry is explained in ``docs/rules.md``.
"""

from __future__ import annotations

import builtins
import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import xuncha_flow
from xuncha_flow import Definition, Process, RolePolicy, XunchaError, mermaid
from xuncha_flow._builtin import VERSION
from xuncha_flow._diagram import roles_table, states_table
from xuncha_flow._process import KINDS
from xuncha_flow._rules import GUARDS

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))
EXAMPLE_PAGES = [*PAGES, ROOT / "README.md"]
FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)
PRESETS = [RolePolicy.supervision_office, RolePolicy.joint_supervision, RolePolicy.three_party]


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("xuncha_docs_generate", DOCS / "generate.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


GENERATE = _generator()


def _strip_generated(text: str) -> str:
    return GENERATE.MARKER.sub("", text)


# -- generated parts -------------------------------------------------------------------
def test_the_docs_exist() -> None:
    names = {p.name for p in PAGES}
    expected = {"index.md", "concepts.md", "process.md", "roles.md", "rules.md"}
    assert expected | {"hooks.md", "errors.md"} <= names


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_generated_parts_are_current(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    assert GENERATE.render(text) == text, (
        f"{page.name} is out of date with the code: run `python docs/generate.py`"
    )


def test_every_generated_part_is_placed_once() -> None:
    placed = [m["name"] for p in PAGES for m in GENERATE.MARKER.finditer(p.read_text("utf-8"))]
    assert sorted(placed) == sorted(GENERATE.blocks())


def test_render_refuses_an_unknown_part() -> None:
    text = "<!-- BEGIN GENERATED nonsense -->\nx\n<!-- END GENERATED nonsense -->\n"
    with pytest.raises(KeyError, match="nonsense"):
        GENERATE.render(text)


def test_render_replaces_a_stale_part() -> None:
    text = "intro\n<!-- BEGIN GENERATED roles -->\nstale\n<!-- END GENERATED roles -->\nend\n"
    out = GENERATE.render(text)
    assert "stale" not in out
    assert "| `supervision_office` | 整改监督办公室 |" in out
    assert out.startswith("intro\n")
    assert out.endswith("end\n")


def test_check_mode_reports_stale_pages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    page = tmp_path / "p.md"
    page.write_text("<!-- BEGIN GENERATED roles -->\nold\n<!-- END GENERATED roles -->\n")
    monkeypatch.setattr(GENERATE, "DOCS", tmp_path)
    assert GENERATE.main(["--check"]) == 1
    assert "old" in page.read_text()
    assert GENERATE.main([]) == 0
    assert GENERATE.main(["--check"]) == 0


def test_every_page_is_linked_from_the_index() -> None:
    index = (DOCS / "index.md").read_text("utf-8")
    for page in PAGES:
        if page.name != "index.md":
            assert f"({page.name})" in index, page.name


# -- runnable examples -----------------------------------------------------------------
def _blocks(page: Path) -> list[tuple[int, str]]:
    text = page.read_text(encoding="utf-8")
    return [(text.count("\n", 0, m.start(1)), m.group(1)) for m in FENCE.finditer(text)]


@pytest.mark.parametrize("page", EXAMPLE_PAGES, ids=lambda p: p.name)
def test_examples_run(page: Path) -> None:
    namespace: dict[str, Any] = {"__name__": f"docs_{page.stem}"}
    for line, code in _blocks(page):
        # pad so that a traceback points at the line in the page
        compiled = compile("\n" * line + code, str(page), "exec")
        exec(compiled, namespace)


@pytest.mark.parametrize("page", [p for p in PAGES if p.name != "index.md"], ids=lambda p: p.name)
def test_pages_with_prose_have_examples_that_assert(page: Path) -> None:
    blocks = _blocks(page)
    assert blocks, f"{page.name} has no python example"
    assert any("assert" in code for _, code in blocks)


def test_the_quickstart_is_short() -> None:
    blocks = _blocks(DOCS / "index.md")
    assert blocks
    assert len(blocks[0][1].strip().splitlines()) <= 25


# -- diagrams --------------------------------------------------------------------------
LINE = re.compile(
    r"^(stateDiagram-v2"
    r"|    %% [^\n]*"
    r'|    state "[^":;\n]+" as [a-z][a-z0-9_]*'
    r"|    (\[\*\]|[a-z][a-z0-9_]*) --> ([a-z][a-z0-9_]*|\[\*\])( : [^:;\"\n]+)?"
    r"|    note right of [a-z][a-z0-9_]* : [^:;\"\n]+)$"
)


def _definitions() -> list[tuple[str, Definition]]:
    return [
        (f"{make.__name__}-{kind}", Process.standard(make()).definition(kind))
        for make in PRESETS
        for kind in KINDS
    ]


@pytest.mark.parametrize(("name", "definition"), _definitions(), ids=lambda v: str(v))
def test_diagram_declares_every_state_and_draws_every_transition(
    name: str, definition: Definition
) -> None:
    text = mermaid(definition)
    lines = text.splitlines()
    assert lines[0] == "stateDiagram-v2"
    bad = [line for line in lines if not LINE.match(line)]
    assert not bad, f"{name}: lines outside the subset of mermaid we write: {bad}"
    for s in definition.states:
        assert f'    state "{s.label} {s.name}" as {s.name}' in lines
    create = definition.event(definition.data.create.event)
    assert f"    [*] --> {definition.initial.name} : {create.label} {create.name}" in lines
    arrows = [line for line in lines if " --> " in line]
    for t in definition.transitions:
        label = f"{definition.event(t.event).label} {t.event}"
        for src in t.source:
            if t.dest is None:
                notes = [ln for ln in lines if ln.startswith(f"    note right of {src} : ")]
                assert len(notes) == 1
                assert label in notes[0]
            else:
                head = f"    {src} --> {t.dest} : {label}"
                assert any(a.startswith(head) for a in arrows), f"{name}: no arrow {head!r}"
    terminal = {s.name for s in definition.states if s.terminal}
    assert {a.split(" --> ")[0].strip() for a in arrows if a.endswith("--> [*]")} == terminal
    drawn = sum(len(t.source) for t in definition.transitions if t.dest is not None)
    assert len(arrows) == drawn + 1 + len(terminal)


def test_diagram_marks_automatic_backward_and_branches() -> None:
    lines = mermaid(Process.standard().definition("item")).splitlines()
    assert "    confirmed --> fed_back : 反馈 feed_back (自动)" in lines
    assert "    closed --> rectifying : 回头看重新整改 reopen (回退)" in lines
    assert "    closed --> refined : 子项重新整改 reopen_parent (自动, 回退)" in lines
    assert "    submitted --> immediate : 退回整改 reject [is_immediate] (回退)" in lines
    assert "    submitted --> rectifying : 退回整改 reject (回退)" in lines
    assert "    verified --> closed : 销号 close" in lines  # one guard, no branch: not shown
    assert "    note right of long_term : 内部事件 完成阶段目标 complete_milestone" in lines


def test_diagram_is_deterministic_and_independent_of_the_process_instance() -> None:
    a = [mermaid(Process.standard().definition(k)) for k in KINDS]
    b = [mermaid(Process.standard().definition(k)) for k in KINDS]
    assert a == b
    assert a[0].startswith(f"stateDiagram-v2\n    %% round version {VERSION}\n")


def test_roles_and_states_tables_cover_the_definition() -> None:
    d = Process.standard().definition("item")
    roles = roles_table(d).splitlines()
    assert len(roles) == 2 + 1 + len(d.transitions)  # header, rule, creation, transitions
    assert roles[2].startswith("| `record` | 记录问题 | — (creates) | 发现 `found` |")
    assert any(
        r.startswith("| `verify` | 核验 | 已提交销号 `submitted` | 已核验 `verified` |")
        and "整改监督办公室 `supervision_office`" in r
        and "independent of the organization concerned" in r
        for r in roles
    )
    states = states_table(d).splitlines()
    assert len(states) == 2 + len(d.states)
    assert "| `found` | 发现 | `found` | 0 | initial |" in states
    assert "| `withdrawn` | 已撤销 | `withdrawn` | 10 | terminal |" in states


# -- the error tree and the rules ------------------------------------------------------
def test_the_error_tree_is_the_class_hierarchy() -> None:
    tree = GENERATE.blocks()["errors:tree"].splitlines()[1:-1]
    parents: list[type[BaseException]] = []
    drawn = set()
    for line in tree:
        match = re.match(r"^([│ ]*(?:[├└]── )?)(\w+)(?: \((\w+)\))?", line)
        assert match, line
        depth = len(match.group(1)) // 4
        cls = getattr(xuncha_flow, match.group(2))
        drawn.add(cls)
        if match.group(3):
            assert issubclass(cls, getattr(builtins, match.group(3))), line
        if depth:
            assert parents[depth - 1] in cls.__bases__, line
        del parents[depth:]
        parents.append(cls)
    assert drawn == set(_exported_errors())


def _exported_errors() -> list[type[XunchaError]]:
    found = [getattr(xuncha_flow, n) for n in xuncha_flow.__all__]
    return [c for c in found if isinstance(c, type) and issubclass(c, XunchaError)]


def test_every_guard_is_explained_in_rules() -> None:
    prose = _strip_generated((DOCS / "rules.md").read_text("utf-8"))
    missing = [g for g in GUARDS if not re.search(rf"^#+ `{g}`$", prose, re.MULTILINE)]
    assert not missing, f"guards without a section in docs/rules.md: {missing}"


def test_every_error_is_explained_in_errors() -> None:
    prose = _strip_generated((DOCS / "errors.md").read_text("utf-8"))
    missing = [
        c.__name__
        for c in _exported_errors()
        if not re.search(rf"^#+ `{c.__name__}`$", prose, re.MULTILINE)
    ]
    assert not missing, f"errors without a section in docs/errors.md: {missing}"
