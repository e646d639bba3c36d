"""Check that each distribution declares exactly the third-party packages its code imports,
and depends only on workspace siblings in a layer below its own.

Run inside the synced workspace (every distribution installed):

    uv run python scripts/check_dependencies.py

It reads every ``import`` in ``src/`` (including ones inside functions and TYPE_CHECKING
blocks), maps import names to distributions with ``importlib.metadata``, and compares them
with ``[project] dependencies``. Exit status 1 lists every problem with the file and line.

Optional extras (``[project.optional-dependencies]``) are understood: what ``import PACKAGE``
loads (the top-level ``__init__`` and every module it reaches through the package's own
imports) may use only the base dependencies, so a bare ``pip install`` can import it; the other
modules (say ``PACKAGE.app``, behind the ``server`` extra) may also use the extras.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# architecture.md section 2, bottom layer first. Siblings on one line are independent.
LAYERS: list[set[str]] = [
    {"rbee-hive-restart", "rbee-hive-metrics", "rbee-hive-resources", "rbee-hive-http-middleware"},
    {"rbee-hive-registry", "rbee-hive-provisioner"},
    {"rbee-hive-monitor"},
    {"rbee-hive-http-server", "rbee-hive-shutdown"},
    {"rbee-hive-cli"},
]
LAYER_OF = {name: index for index, layer in enumerate(LAYERS) for name in layer}


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    if match is None:
        raise ValueError(f"cannot read a name from requirement {requirement!r}")
    return normalise(match.group(1))


def imports_of(path: Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((alias.name.split(".")[0], node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module.split(".")[0], node.lineno))
    return found


def own_imports_of(path: Path, own_module: str) -> set[str]:
    """The modules of the package itself that ``path`` imports (``pkg._x``, ``pkg.app``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == own_module)
        elif (
            isinstance(node, ast.ImportFrom)
            and node.level == 0
            and node.module
            and node.module.split(".")[0] == own_module
        ):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return found


def core_sources(src: Path, own_module: str) -> set[Path]:
    """The files ``import OWN_MODULE`` loads: its ``__init__`` and all it reaches."""
    by_module: dict[str, Path] = {}
    for source in src.rglob("*.py"):
        parts = list(source.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        by_module[".".join(parts)] = source
    seen: set[Path] = set()
    todo = [own_module]
    while todo:
        name = todo.pop()
        # importing a.b.c runs a/__init__ and a/b/__init__ first
        chain = [".".join(name.split(".")[: i + 1]) for i in range(len(name.split(".")))]
        for module in chain:
            found = by_module.get(module)
            if found is not None and found not in seen:
                seen.add(found)
                todo.extend(own_imports_of(found, own_module))
    return seen


def check(package_dir: Path, module_to_dists: dict[str, list[str]]) -> list[str]:
    meta = tomllib.loads((package_dir / "pyproject.toml").read_text(encoding="utf-8"))
    dist = normalise(meta["project"]["name"])
    base = {requirement_name(r) for r in meta["project"].get("dependencies", [])}
    extras = {
        name: {requirement_name(r) for r in requirements}
        for name, requirements in meta["project"].get("optional-dependencies", {}).items()
    }
    declared = base.union(*extras.values())
    own_module = dist.replace("-", "_")
    core = core_sources(package_dir / "src", own_module)
    problems: list[str] = []
    used: dict[str, tuple[Path, int]] = {}
    for source in sorted((package_dir / "src").rglob("*.py")):
        for module, line in imports_of(source):
            if module in sys.stdlib_module_names or module == own_module:
                continue
            if module.startswith("rbee_hive_"):
                dists = [module.replace("_", "-")]
            else:
                dists = [normalise(d) for d in module_to_dists.get(module, [])]
            if not dists:
                problems.append(
                    f"{source.relative_to(ROOT)}:{line}: imports {module!r}, which no "
                    "installed distribution provides (run `uv sync --all-packages`)"
                )
                continue
            for name in dists:
                used.setdefault(name, (source, line))
                if source in core and name not in base and name in declared:
                    problems.append(
                        f"{source.relative_to(ROOT)}:{line}: imports {module!r} from an extra "
                        f"of {dist}, but `import {own_module}` loads this module, so a bare "
                        f"`pip install {dist}` fails; import it only in modules the extra "
                        "serves, or make it a base dependency"
                    )
    for name, (source, line) in sorted(used.items()):
        if name not in declared:
            problems.append(
                f"{source.relative_to(ROOT)}:{line}: {dist} imports {name!r} "
                f"but does not declare it in {package_dir.name}/pyproject.toml"
            )
    for name in sorted(declared - set(used)):
        problems.append(
            f"{package_dir.name}/pyproject.toml: {dist} declares {name!r} but never imports it"
        )
    if dist in LAYER_OF:
        for name in sorted(declared):
            if name in LAYER_OF and LAYER_OF[name] >= LAYER_OF[dist]:
                problems.append(
                    f"{package_dir.name}/pyproject.toml: {dist} (layer {LAYER_OF[dist]}) "
                    f"depends on {name} (layer {LAYER_OF[name]}); siblings may only depend "
                    "on rooms below them (architecture.md section 2)"
                )
    return problems


def main() -> int:
    module_to_dists = {k: list(v) for k, v in packages_distributions().items()}
    package_dirs = sorted((ROOT / "packages").iterdir())
    problems: list[str] = []
    for package_dir in package_dirs:
        problems.extend(check(package_dir, module_to_dists))
    app = tomllib.loads((ROOT / "apps/rbee-hive/pyproject.toml").read_text(encoding="utf-8"))
    app_deps = {requirement_name(r) for r in app["project"]["dependencies"]}
    missing = {normalise(p.name) for p in package_dirs} - app_deps
    if missing:
        problems.append(f"apps/rbee-hive/pyproject.toml: does not depend on {sorted(missing)}")
    for problem in problems:
        print(problem)
    print(
        f"dependency check: {len(package_dirs)} distributions, "
        f"{'OK' if not problems else f'{len(problems)} problem(s)'}"
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
