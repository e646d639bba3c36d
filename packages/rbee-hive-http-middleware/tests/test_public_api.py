from __future__ import annotations

import subprocess
import sys

import rbee_hive_http_middleware as package


def test_all_lists_exactly_the_public_names() -> None:
    public = {name for name in vars(package) if not name.startswith("_")} | {"__version__"}
    public -= {"exceptions"}  # the submodule, importable by its own name
    assert set(package.__all__) == public
    assert len(package.__all__) == len(set(package.__all__))


def test_every_public_class_and_function_has_a_docstring() -> None:
    for name in package.__all__:
        thing = getattr(package, name)
        module = getattr(thing, "__module__", None) or ""
        if callable(thing) and module.startswith("rbee_hive_http_middleware"):
            assert (thing.__doc__ or "").strip(), name


def test_importing_the_package_pulls_in_no_web_framework() -> None:
    code = (
        "import sys, rbee_hive_http_middleware; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'starlette', 'fastapi', 'aiohttp', 'hypercorn', 'anyio'}); "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
