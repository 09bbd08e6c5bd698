"""The import rules of docs/architecture.md, checked on the source (every import, including the
ones inside functions), and the size rule for modules.

    etl ─► runs ─► crypto ─► floor (kasparro.core)      settings/urls/celery: the framework's
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("kasparro", "crypto", "etl", "runs")
COMPOSITION = (
    "kasparro.settings",
    "kasparro.urls",
    "kasparro.celery",
    "kasparro.wsgi",
    "kasparro.asgi",
)
MAX_LINES = 300


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" not in path.parts:
                found[module_name(path)] = path
    return found


def imports_of(path: Path) -> set[str]:
    """Every module an import statement in the file names (absolute imports only: the project
    uses no relative ones)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import"
            names.add(node.module or "")
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def within(name: str, *packages: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def violations(rule) -> list[str]:
    found = []
    for module, path in modules().items():
        for imported in sorted(imports_of(path)):
            reason = rule(module, imported)
            if reason:
                found.append(f"{module} imports {imported}: {reason}")
    return found


def floor_rule(module: str, imported: str) -> str | None:
    if within(module, "kasparro.core") and within(imported, "crypto", "etl", "runs"):
        return "the floor imports no app"
    composition = within(imported, *COMPOSITION) or imported in ("kasparro", "kasparro.celery_app")
    if within(module, "kasparro.core") and composition:
        return "the floor does not import the composition"
    return None


def direction_rule(module: str, imported: str) -> str | None:
    if within(module, "crypto") and within(imported, "etl", "runs"):
        return "crypto imports neither etl nor runs"
    if within(module, "runs") and within(imported, "etl"):
        return "runs never imports etl"
    return None


def apps_use_the_floor_only(module: str, imported: str) -> str | None:
    app = within(module, "crypto", "etl", "runs")
    if app and within(imported, "kasparro") and not within(imported, "kasparro.core"):
        return "apps import the floor (kasparro.core), never the composition"
    return None


def composition_rule(module: str, imported: str) -> str | None:
    allowed = module == "kasparro" and imported.startswith("kasparro.celery")  # Celery's idiom
    if within(imported, *COMPOSITION) and not allowed:
        return "only the framework imports settings, urls and the Celery app"
    return None


def sources_rule(module: str, imported: str) -> str | None:
    if not within(module, "etl.sources"):
        return None
    if imported.endswith(".models") or ".models." in imported or within(imported, "django.db"):
        return "sources import no models and no database"
    if within(imported, "crypto", "runs", "etl.services", "etl.pipeline", "etl.models"):
        return "sources know nothing of storage or the pipeline"
    return None


@pytest.mark.parametrize(
    "rule",
    [floor_rule, direction_rule, apps_use_the_floor_only, composition_rule, sources_rule],
    ids=lambda rule: rule.__name__,
)
def test_imports_follow_the_rules(rule):
    assert violations(rule) == []


# What runs and crypto must not name even as text: etl's modules, tasks and admin pages.
NAMED_DOWNWARD = {
    "runs": re.compile(r"""["'](etl\.[a-z_]+|admin:etl_[a-z_]+)"""),
    "crypto": re.compile(r"""["'](etl\.[a-z_]+|runs\.[a-z_]+|admin:(etl|runs)_[a-z_]+)"""),
}


def named_downward() -> list[str]:
    found = []
    for app, pattern in NAMED_DOWNWARD.items():
        for path in sorted((ROOT / app).rglob("*")):
            if path.suffix in (".py", ".html") and "migrations" not in path.parts:
                found += [
                    f"{path.relative_to(ROOT)}: {m.group(0)}"
                    for m in pattern.finditer(path.read_text())
                ]
    return found


def test_runs_and_crypto_do_not_name_what_depends_on_them_even_as_text():
    assert named_downward() == []


def test_the_rules_catch_a_violation(tmp_path, monkeypatch):
    """The checker itself: a module breaking each rule is reported."""
    bad = {
        "kasparro/core/bad.py": "from etl.models import RawRecord\n",
        "crypto/bad.py": "def f():\n    from runs.models import Run\n",
        "runs/bad.py": "import etl.tasks\n",
        "etl/bad.py": "from kasparro.urls import urlpatterns\n",
        "etl/sources/bad.py": "from crypto.models import Asset\n",
        "kasparro/core/worse.py": "from kasparro import celery_app\n",
        "runs/named.py": "URL = reverse('admin:etl_driftevent_change')\n",
    }
    for relative, text in bad.items():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(text)
    monkeypatch.setattr(__import__(__name__, fromlist=["ROOT"]), "ROOT", tmp_path)

    def offenders(rule) -> set[str]:
        return {found.split(" imports ")[0] for found in violations(rule)}

    assert offenders(floor_rule) == {"kasparro.core.bad", "kasparro.core.worse"}
    assert named_downward() == ["runs/named.py: 'admin:etl_driftevent_change"]
    assert offenders(direction_rule) == {"crypto.bad", "runs.bad"}
    assert offenders(composition_rule) == {"etl.bad"}
    assert offenders(apps_use_the_floor_only) == {"etl.bad"}
    assert offenders(sources_rule) == {"etl.sources.bad"}


def test_a_module_over_300_lines_says_why_in_its_docstring():
    """Long modules are allowed only with a reason: their docstring gives their length ("About
    350 lines, on purpose: …")."""
    unexplained = []
    for module, path in modules().items():
        text = path.read_text()
        lines = text.count("\n")
        docstring = ast.get_docstring(ast.parse(text)) or ""
        if lines > MAX_LINES and not re.search(r"\b\d[\d,]* lines\b", docstring):
            unexplained.append(f"{module}: {lines} lines")
    assert unexplained == []
