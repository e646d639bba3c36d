"""scripts/release: bounds, changelogs, __version__, what changed since a tag, and a bump."""

from __future__ import annotations

import datetime
import shutil
import subprocess
from pathlib import Path

import pytest
from packaging.version import Version

from scripts.release import (
    ReleaseError,
    bound_problems,
    compatible_bound,
    load_members,
    main,
    metadata_problems,
    note_unreleased,
    raised_requirement,
    release_changelog,
    set_version_line,
    unreleased_notes,
)

LICENSE = b"the license text\n"
CHANGELOG = """# Changelog

## [Unreleased]

### Fixed

- A fix.

## [0.1.0] - 2026-01-01

### Added

- Everything.
"""


def make_member(
    root: Path, name: str, version: str = "0.1.0", dependencies: tuple[str, ...] = ()
) -> Path:
    folder = root / "packages" / name
    module = folder / "src" / name.replace("-", "_")
    module.mkdir(parents=True)
    deps = "".join(f'    "{d}",\n' for d in dependencies)
    (folder / "pyproject.toml").write_text(
        f'[project]\nname = "{name}"\nversion = "{version}"\nrequires-python = ">=3.11"\n'
        f"dependencies = [\n{deps}]\n\n"
        '[build-system]\nrequires = ["hatchling>=1.27"]\nbuild-backend = "hatchling.build"\n',
        encoding="utf-8",
    )
    (module / "__init__.py").write_text(
        f'"""{name}."""\n\n__version__ = "{version}"\n\n__all__ = ["__version__"]\n',
        encoding="utf-8",
    )
    (folder / "CHANGELOG.md").write_text(CHANGELOG.replace("0.1.0", version), encoding="utf-8")
    (folder / "LICENSE").write_bytes(LICENSE)
    return folder


def make_workspace(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text(
        '[project]\nname = "ws"\nversion = "0"\nrequires-python = ">=3.11"\n\n'
        '[tool.uv]\npackage = false\n\n[tool.uv.workspace]\nmembers = ["packages/*"]\n\n'
        "[tool.uv.sources]\nlow = { workspace = true }\n",
        encoding="utf-8",
    )
    (root / "LICENSE").write_bytes(LICENSE)
    make_member(root, "low", "0.1.0")
    make_member(root, "high", "1.4.2", ("attrs>=24.2", "low[fast]>=0.1.0,<0.2"))


def git(root: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
        cwd=root,
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout


# ---------------------------------------------------------------- pure rules


def test_a_sibling_bound_admits_its_release_line_and_no_further() -> None:
    assert compatible_bound(Version("0.1.0")) == ">=0.1.0,<0.2"
    assert compatible_bound(Version("0.9.3")) == ">=0.9.3,<0.10"
    assert compatible_bound(Version("1.4.2")) == ">=1.4.2,<2"


def test_a_requirement_moves_only_when_it_stops_admitting_the_new_version() -> None:
    assert raised_requirement("low>=0.1.0,<0.2", Version("0.1.1")) is None
    assert raised_requirement("low>=0.1.0,<0.2", Version("0.2.0")) == "low>=0.2.0,<0.3"
    moved = raised_requirement('low[b,a]>=0.1,<0.2; sys_platform == "linux"', Version("1.0.0"))
    assert moved == 'low[a,b]>=1.0.0,<2; sys_platform == "linux"'


def test_bound_check_names_missing_bounds_and_versions_they_refuse(tmp_path: Path) -> None:
    make_workspace(tmp_path)
    assert bound_problems(load_members(tmp_path)) == []

    pyproject = tmp_path / "packages/high/pyproject.toml"
    for requirement, complaint in [
        ("low", "has no lower bound"),
        ("low>=0.1.0", "has no upper bound"),
        ("low>=0.2,<0.3", "does not admit low 0.1.0"),
    ]:
        text = pyproject.read_text(encoding="utf-8")
        text = text.replace(next(r for r in text.split('"') if r.startswith("low")), requirement)
        pyproject.write_text(text, encoding="utf-8")
        problems = bound_problems(load_members(tmp_path))
        assert any(complaint in p for p in problems), (requirement, problems)
        assert all("write 'low>=0.1.0,<0.2'" in p for p in problems)


def test_metadata_check_finds_a_stale_version_changelog_or_license(tmp_path: Path) -> None:
    make_workspace(tmp_path)
    assert metadata_problems(load_members(tmp_path), LICENSE) == []

    init = tmp_path / "packages/low/src/low/__init__.py"
    init.write_text(init.read_text(encoding="utf-8").replace("0.1.0", "0.0.9"), encoding="utf-8")
    changelog = tmp_path / "packages/high/CHANGELOG.md"
    changelog.write_text("# Changelog\n\n## [1.4.1] - 2025-01-01\n", encoding="utf-8")
    (tmp_path / "packages/high/LICENSE").write_bytes(b"another license\n")

    problems = "\n".join(metadata_problems(load_members(tmp_path), LICENSE))
    assert "__version__ is '0.0.9' but pyproject.toml says 0.1.0" in problems
    assert "no '## [Unreleased]' heading" in problems
    assert "no '## [1.4.2] - DATE' heading" in problems
    assert "not the root LICENSE" in problems


def test_releasing_a_changelog_moves_the_unreleased_notes_under_the_version() -> None:
    released = release_changelog(CHANGELOG, Version("0.2.0"), datetime.date(2026, 12, 2))
    assert released.split("\n## ")[1:] == [
        "[Unreleased]\n",
        "[0.2.0] - 2026-12-02\n\n### Fixed\n\n- A fix.\n",
        "[0.1.0] - 2026-01-01\n\n### Added\n\n- Everything.\n",
    ]
    with pytest.raises(ReleaseError, match=r"already has a heading for 0\.1\.0"):
        release_changelog(CHANGELOG, Version("0.1.0"), datetime.date(2026, 12, 2))
    with pytest.raises(ReleaseError, match=r"no '## \[Unreleased\]' heading"):
        release_changelog("# Changelog\n", Version("0.2.0"), datetime.date(2026, 12, 2))


def test_the_unreleased_notes_end_at_the_next_version() -> None:
    assert unreleased_notes(CHANGELOG) == "### Fixed\n\n- A fix."
    assert unreleased_notes("## [Unreleased]\n\n## [0.1.0] - 2026-01-01\n\n- x\n") == ""


def test_a_note_joins_its_section_of_the_unreleased_part() -> None:
    fixed = note_unreleased(CHANGELOG, "Fixed", "Another fix.")
    assert "### Fixed\n\n- A fix.\n- Another fix.\n\n## [0.1.0]" in fixed
    changed = note_unreleased(CHANGELOG, "Changed", "Requires `low>=0.2.0,<0.3`.")
    assert "- A fix.\n\n### Changed\n\n- Requires `low>=0.2.0,<0.3`.\n\n## [0.1.0]" in changed


def test_the_version_line_is_rewritten_in_place() -> None:
    source = '"""Doc."""\n\n__version__ = "0.1.0"  # kept equal\n'
    assert set_version_line(source, Version("0.2.0")) == (
        '"""Doc."""\n\n__version__ = "0.2.0"  # kept equal\n'
    )
    with pytest.raises(ReleaseError, match="no `__version__"):
        set_version_line('"""Doc."""\n', Version("0.2.0"))


# ---------------------------------------------------------------- git and uv


def test_changed_lists_untagged_members_and_those_edited_since_their_tag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_workspace(tmp_path)
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-qm", "start")
    assert main(["changed"], root=tmp_path) == 0
    assert capsys.readouterr().out.split() == ["high", "low"]  # neither has a tag

    git(tmp_path, "tag", "low-v0.1.0")
    git(tmp_path, "tag", "high-v1.4.2")
    assert main(["changed"], root=tmp_path) == 0
    assert capsys.readouterr().out == ""

    readme = tmp_path / "packages/low/README.md"
    readme.write_text("new, not even committed\n", encoding="utf-8")
    assert main(["changed", "--why"], root=tmp_path) == 0
    assert capsys.readouterr().out == "low\tpackages/low/README.md changed since low-v0.1.0\n"

    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-qm", "readme")
    assert main(["changed", "--since", "HEAD"], root=tmp_path) == 0
    assert capsys.readouterr().out == ""


def test_tag_and_build_refuse_a_version_that_was_released_already(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_workspace(tmp_path)
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-qm", "start")
    git(tmp_path, "tag", "low-v0.1.0")
    assert main(["tag"], root=tmp_path) == 0  # by default: every version not tagged yet
    assert capsys.readouterr().out == "tagged high-v1.4.2\n"
    assert git(tmp_path, "tag", "--list").split() == ["high-v1.4.2", "low-v0.1.0"]

    assert main(["tag", "low"], root=tmp_path) == 1
    assert "low-v0.1.0 exist already: bump (low)" in capsys.readouterr().err
    (tmp_path / "packages/low/README.md").write_text("changed\n", encoding="utf-8")
    assert main(["build", "--out-dir", str(tmp_path / "dist")], root=tmp_path) == 1
    assert "low-v0.1.0 exist already: bump (low) before building" in capsys.readouterr().err
    assert not (tmp_path / "dist").exists()


@pytest.mark.skipif(shutil.which("uv") is None, reason="bump runs `uv version`")
def test_bump_sets_versions_changelogs_and_moves_dependents_bounds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_workspace(tmp_path)
    assert main(["bump", "minor", "low", "--no-lock"], root=tmp_path) == 0
    out = capsys.readouterr().out
    assert "low 0.1.0 -> 0.2.0" in out
    assert "high: low[fast]>=0.1.0,<0.2 -> low[fast]>=0.2.0,<0.3 (release it too)" in out
    assert "Unreleased section was empty" not in out  # low had notes to release

    members = load_members(tmp_path)
    assert members["low"].version == Version("0.2.0")
    assert members["high"].version == Version("1.4.2")  # moved bound, not bumped
    assert "low[fast]>=0.2.0,<0.3" in members["high"].requirements
    low_init = (tmp_path / "packages/low/src/low/__init__.py").read_text(encoding="utf-8")
    assert '__version__ = "0.2.0"' in low_init
    today = datetime.date.today().isoformat()
    low_log = (tmp_path / "packages/low/CHANGELOG.md").read_text(encoding="utf-8")
    assert f"## [Unreleased]\n\n## [0.2.0] - {today}\n\n### Fixed\n\n- A fix." in low_log
    high_log = (tmp_path / "packages/high/CHANGELOG.md").read_text(encoding="utf-8")
    assert "### Changed\n\n- Requires `low[fast]>=0.2.0,<0.3`." in high_log
    # the bumped workspace passes the check CI runs
    assert main(["check"], root=tmp_path) == 0
    capsys.readouterr()
    assert main(["bump", "patch", "low", "--no-lock"], root=tmp_path) == 0
    assert "low: its Unreleased section was empty; write under [0.2.1]" in capsys.readouterr().out


def test_bump_refuses_an_unknown_member(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_workspace(tmp_path)
    assert main(["bump", "patch", "nope", "--no-lock"], root=tmp_path) == 1
    assert "no member 'nope'; the members are: high, low" in capsys.readouterr().err
