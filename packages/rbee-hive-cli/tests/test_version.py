"""The package says which release it is."""

import tomllib
from pathlib import Path

import rbee_hive_cli


def test_version_is_the_pyproject_version_and_is_exported() -> None:
    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    assert rbee_hive_cli.__version__ == project["version"]
    assert "__version__" in rbee_hive_cli.__all__
