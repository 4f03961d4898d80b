"""Regenerate the generated parts of the docs from the code.

A generated part sits between two markers in a page::

    <!-- BEGIN GENERATED diagram:item -->
    ...
    <!-- END GENERATED diagram:item -->

Diagrams and tables come from the built-in definitions of the default policy
(``Process.standard()``) and the role and deadline presets; the error tree from the
exception classes themselves; the hook order and the counting rules from the
docstrings of ``_hooks.py`` and ``_figures.py`` — so the docs say what the code says.
``tests/test_docs.py`` fails when a page is out of date.

    python docs/generate.py            rewrite docs/*.md in place
    python docs/generate.py --check    list the pages that are out of date; exit 1 if any
"""

from __future__ import annotations

import argparse
import ast
import inspect
import itertools
import re
import sys
from collections.abc import Callable
from pathlib import Path

import xuncha_flow
from xuncha_flow import (
    DeadlinePolicy,
    Process,
    Role,
    RolePolicy,
    _errors,
    _figures,
    _hooks,
    _limits,
    mermaid,
)
from xuncha_flow._deadlines import BASE_LADDERS, ladder_table, rules_table
from xuncha_flow._diagram import roles_table, states_table
from xuncha_flow._process import KINDS

DOCS = Path(__file__).resolve().parent
MARKER = re.compile(
    r"(<!-- BEGIN GENERATED (?P<name>[\w:-]+) -->\n)(?P<body>.*?)"
    r"(<!-- END GENERATED (?P=name) -->)",
    re.DOTALL,
)
PRESETS: tuple[Callable[[], RolePolicy], ...] = (
    RolePolicy.supervision_office,
    RolePolicy.joint_supervision,
    RolePolicy.three_party,
)


def _md(text: str) -> str:
    """reST markup of our docstrings as markdown."""
    text = re.sub(r":[a-z]+:`~[\w.]*?(\w+)`", r"`\1`", text)
    text = re.sub(r":[a-z]+:`([\w.]+)`", r"`\1`", text)
    return re.sub(r"``([^`]+)``", r"`\1`", text)


def _after_summary(doc: str | None) -> str:
    """A module docstring without its first paragraph (the summary line)."""
    paragraphs = (doc or "").strip().split("\n\n")
    return _md("\n\n".join(paragraphs[1:])).strip() + "\n"


def _drawn_descriptions() -> dict[str, str]:
    """Class name → the short description drawn in ``_errors.py``'s docstring."""
    doc = _errors.__doc__ or ""
    tree = doc.split("::\n\n", 1)[1].split("\n\n", 1)[0]
    out = {}
    for line in tree.splitlines():
        match = re.match(r"^[\s│├└─]*(\w+)(?: \(\w+\))?\s{2,}(.+)$", line)
        if match:
            out[match[1]] = match[2].strip()
    return out


def _summary(cls: type) -> str:
    first = (cls.__doc__ or "").strip().split("\n\n")[0]
    text = _md(" ".join(first.split())).split(". ")[0].rstrip(".")
    return text[:1].lower() + text[1:]


def _error_tree() -> str:
    """The exception tree of every public error, drawn from the classes themselves."""
    public = {
        obj
        for name in xuncha_flow.__all__
        if isinstance(obj := getattr(xuncha_flow, name), type)
        and issubclass(obj, xuncha_flow.XunchaError)
    }
    drawn = _drawn_descriptions()

    def order(cls: type) -> tuple[int, str, int]:
        module = sys.modules[cls.__module__]
        line = inspect.getsourcelines(cls)[1]
        return (module is not _errors, cls.__module__, line)

    def builtin(cls: type) -> str:
        base = next((b for b in cls.__bases__ if b.__module__ == "builtins"), None)
        return f" ({base.__name__})" if base is not None else ""

    rows: list[tuple[str, str]] = []

    def walk(cls: type, prefix: str, branch: str) -> None:
        text = drawn.get(cls.__name__) or _summary(cls)
        rows.append((f"{prefix}{branch}{cls.__name__}{builtin(cls)}", text))
        subclasses: list[type] = cls.__subclasses__()
        children = sorted((c for c in subclasses if c in public), key=order)
        inner = prefix + ("" if not branch else ("    " if branch == "└── " else "│   "))
        for n, child in enumerate(children):
            walk(child, inner, "└── " if n == len(children) - 1 else "├── ")

    walk(xuncha_flow.XunchaError, "", "")
    width = max(len(name) for name, _ in rows) + 3
    lines = [f"{name:<{width}}{text}".rstrip() for name, text in rows]
    return "```text\n" + "\n".join(lines) + "\n```\n"


def _role_enum() -> str:
    rows = [f"| `{r.value}` | {r.label} | `Role.{r.name}` |" for r in Role]
    return "\n".join(["| stored value | 中文 | member |", "|---|---|---|", *rows]) + "\n"


def _roles_cell(roles: frozenset[Role]) -> str:
    return ", ".join(r.label for r in Role if r in roles)


def _policies() -> str:
    policies = [make() for make in PRESETS]
    processes = [Process.standard(p) for p in policies]
    out = [
        "| preset | verifiers (审核整改方案、核验、销号) | approvers (延期、暂停) "
        "| deciders (处理建议) |",
        "|---|---|---|---|",
    ]
    out += [
        f"| `RolePolicy.{p.name}()` | {_roles_cell(p.verifiers)} | {_roles_cell(p.approvers)} "
        f"| {_roles_cell(p.deciders)} |"
        for p in policies
    ]
    out += ["", "| transition | " + " | ".join(f"`{p.name}`" for p in policies) + " |"]
    out.append("|---|" + "---|" * len(policies))
    base = processes[0]
    for kind in KINDS:
        definition = base.definition(kind)
        for n, t in enumerate(definition.transitions):
            roles = [p.definition(kind).transitions[n].roles for p in processes]
            if len(set(roles)) == 1:
                continue
            to = t.dest or "(internal)"
            where = f"`{kind}.{t.event}` {', '.join(t.source)} → {to}"
            out.append(f"| {where} | " + " | ".join(_roles_cell(r) for r in roles) + " |")
    return "\n".join(out) + "\n"


def _guard_index() -> str:
    process = Process.standard()
    used: dict[str, list[str]] = {name: [] for name in process.guards}
    for kind in KINDS:
        d = process.definition(kind)
        for g in d.data.create.guards:
            used[g].append(f"`{kind}.{d.data.create.event}`")
        for t in d.transitions:
            for g in t.guards:
                label = f"`{kind}.{t.event}`"
                if label not in used[g]:
                    used[g].append(label)
    rows = [f"| [`{g}`](#{g}) | {', '.join(where) or '—'} |" for g, where in used.items()]
    return "\n".join(["| guard | used by |", "|---|---|", *rows]) + "\n"


def _limits_table() -> str:
    """Every limit of ``_limits.py``: its name, value and what it caps (its docstring)."""
    tree = ast.parse(inspect.getsource(_limits))
    rows = ["| limit | value | what it caps |", "|---|---|---|"]
    for node, after in itertools.pairwise(tree.body):
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        name = node.target.id
        doc = after.value.value if isinstance(after, ast.Expr) else ""
        assert isinstance(doc, str), f"{name} has no docstring in _limits.py"
        assert doc, f"{name} has an empty docstring in _limits.py"
        value = getattr(_limits, name)
        text = _md(" ".join(doc.split()))
        rows.append(f"| `{name}` | {value:,} | {text} |")
    return "\n".join(rows) + "\n"


def blocks() -> dict[str, str]:
    """Every generated part, by marker name."""
    process = Process.standard()
    out: dict[str, str] = {}
    for kind in KINDS:
        d = process.definition(kind)
        out[f"diagram:{kind}"] = "```mermaid\n" + mermaid(d) + "```\n"
        out[f"states:{kind}"] = states_table(d)
        out[f"roles:{kind}"] = roles_table(d)
    out["roles"] = _role_enum()
    out["policies"] = _policies()
    out["guards"] = _guard_index()
    out["limits"] = _limits_table()
    out["errors:tree"] = _error_tree()
    out["hooks:order"] = _after_summary(_hooks.__doc__)
    out["figures:rules"] = _after_summary(_figures.__doc__)
    out.update(_deadline_parts())
    return out


def _deadline_parts() -> dict[str, str]:
    """The deadline presets' rules (the county preset: only where it differs) and ladders."""
    standard = rules_table(DeadlinePolicy.standard())
    county = rules_table(DeadlinePolicy.county())
    rows = set(standard.splitlines())
    out = {
        "deadline-rules:standard": standard + "\n",
        "deadline-rules:county": "\n".join(r for r in county.splitlines() if r not in rows) + "\n",
    }
    for ladder in BASE_LADDERS:
        out[f"ladder:{ladder.name}"] = ladder_table(ladder) + "\n"
    return out


def render(text: str, parts: dict[str, str] | None = None) -> str:
    """``text`` with every generated part replaced by its current content."""
    parts = parts if parts is not None else blocks()

    def fill(match: re.Match[str]) -> str:
        name = match["name"]
        if name not in parts:
            raise KeyError(f"unknown generated part {name!r}")
        return match.group(1) + parts[name] + match.group(4)

    return MARKER.sub(fill, text)


def pages() -> list[Path]:
    return sorted(DOCS.glob("*.md"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Regenerate the generated parts of docs/.")
    parser.add_argument("--check", action="store_true", help="only report stale pages")
    args = parser.parse_args(argv)
    parts = blocks()
    stale = []
    for page in pages():
        old = page.read_text(encoding="utf-8")
        new = render(old, parts)
        if new != old:
            stale.append(page.name)
            if not args.check:
                page.write_text(new, encoding="utf-8")
    verb = "out of date" if args.check else "regenerated"
    print(f"{verb}: {', '.join(stale)}" if stale else "docs are up to date")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
