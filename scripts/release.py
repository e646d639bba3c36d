"""Release tooling for the independently versioned distributions of this workspace.

Every member under ``packages/`` and ``apps/`` is released on its own: its version lives in its
``pyproject.toml`` (and, for a package, as ``__version__`` in its ``__init__.py``), a release is
the git tag ``<dist>-v<version>``, and its ``CHANGELOG.md`` keeps an ``## [Unreleased]`` section.

    scripts/release changed [--since REF] [--why]   members changed since their release tag
    scripts/release bump PART [DIST ...]            bump (default: the changed members)
    scripts/release build [--since REF] [--out-dir DIR] [DIST ...]
    scripts/release tag [DIST ...]                  tag <dist>-v<version> at HEAD
    scripts/release check                           the invariants CI checks

A release, start to end: ``bump`` (versions, changelogs, sibling bounds, uv.lock), review and
commit, ``build``, publish the files in ``dist/``, ``tag``. A member with no release tag yet
counts as changed, so its first release is ``build`` + ``tag`` at the version it has.

``bump`` runs ``uv version --package NAME --bump PART``, rewrites ``__version__``, turns the
changelog's Unreleased heading into ``## [VERSION] - DATE`` and, when a sibling's requirement in
another member no longer admits the new version, moves that bound (``>=NEW,<NEXT``) and notes
it in that member's changelog: that member then counts as changed and needs a release too.
"""

from __future__ import annotations

import argparse
import datetime
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
MEMBER_FOLDERS = ("packages", "apps")
BUMP_PARTS = ("major", "minor", "patch", "stable", "alpha", "beta", "rc", "post", "dev")
UNRELEASED = "## [Unreleased]"
_VERSION_LINE = re.compile(r'^__version__ = "([^"]*)"', re.MULTILINE)


class ReleaseError(Exception):
    """A release step cannot go on; the message says what to fix."""


@dataclass(frozen=True)
class Member:
    """One distribution of the workspace, as its files describe it now."""

    name: str
    path: Path
    version: Version
    requirements: tuple[str, ...]

    @property
    def tag(self) -> str:
        return f"{self.name}-v{self.version}"

    @property
    def init_file(self) -> Path | None:
        """The ``__init__.py`` that holds ``__version__`` (None for a member with no code)."""
        init = self.path / "src" / self.name.replace("-", "_") / "__init__.py"
        return init if init.is_file() else None

    @property
    def pyproject(self) -> Path:
        return self.path / "pyproject.toml"

    @property
    def changelog(self) -> Path:
        return self.path / "CHANGELOG.md"


def load_members(root: Path) -> dict[str, Member]:
    """Every member under packages/ and apps/, by canonical name."""
    members: dict[str, Member] = {}
    for folder in MEMBER_FOLDERS:
        for pyproject in sorted((root / folder).glob("*/pyproject.toml")):
            project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
            name = canonicalize_name(project["name"])
            members[name] = Member(
                name=name,
                path=pyproject.parent,
                version=Version(project["version"]),
                requirements=tuple(project.get("dependencies", [])),
            )
    return members


# ---------------------------------------------------------------- pure rules


def compatible_bound(version: Version) -> str:
    """The specifier a sibling requirement carries: this release line, from this version.

    0.x counts the minor as the breaking part (``>=0.3.1,<0.4``); from 1.0 on, the major does
    (``>=1.2.0,<2``).
    """
    upper = f"0.{version.minor + 1}" if version.major == 0 else f"{version.major + 1}"
    return f">={version},<{upper}"


def raised_requirement(requirement: str, version: Version) -> str | None:
    """``requirement`` moved so that it admits ``version``; None when it already does."""
    req = Requirement(requirement)
    if req.specifier.contains(version, prereleases=True):
        return None
    extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
    marker = f"; {req.marker}" if req.marker is not None else ""
    return f"{req.name}{extras}{compatible_bound(version)}{marker}"


def bound_problems(members: dict[str, Member]) -> list[str]:
    """Each sibling requirement that lacks a bound or does not admit the sibling's version."""
    problems: list[str] = []
    for member in members.values():
        for text in member.requirements:
            req = Requirement(text)
            sibling = members.get(canonicalize_name(req.name))
            if sibling is None:
                continue
            where = f"{member.pyproject.relative_to(member.path.parent.parent)}"
            operators = {spec.operator for spec in req.specifier}
            if not operators & {">=", ">", "==", "~=", "==="}:
                problems.append(
                    f"{where}: {text!r} has no lower bound; write "
                    f"'{sibling.name}{compatible_bound(sibling.version)}'"
                )
            if not operators & {"<", "<=", "==", "~=", "==="}:
                problems.append(
                    f"{where}: {text!r} has no upper bound, so a breaking release of "
                    f"{sibling.name} would be accepted; write "
                    f"'{sibling.name}{compatible_bound(sibling.version)}'"
                )
            if not req.specifier.contains(sibling.version, prereleases=True):
                problems.append(
                    f"{where}: {text!r} does not admit {sibling.name} {sibling.version}, the "
                    f"version in the workspace; write "
                    f"'{sibling.name}{compatible_bound(sibling.version)}'"
                )
    return problems


def metadata_problems(members: dict[str, Member], root_license: bytes) -> list[str]:
    """``__version__``, the changelog and the license text of each member agree with it."""
    problems: list[str] = []
    for member in members.values():
        init = member.init_file
        if init is not None:
            found = _VERSION_LINE.search(init.read_text(encoding="utf-8"))
            if found is None:
                problems.append(f'{init}: no line `__version__ = "{member.version}"`')
            elif Version(found.group(1)) != member.version:
                problems.append(
                    f"{init}: __version__ is {found.group(1)!r} but pyproject.toml says "
                    f"{member.version}; `scripts/release bump` keeps them equal"
                )
        if not member.changelog.is_file():
            problems.append(f"{member.changelog}: missing (Keep a Changelog format)")
        else:
            headings = _headings(member.changelog.read_text(encoding="utf-8"))
            if UNRELEASED not in headings:
                problems.append(f"{member.changelog}: no '{UNRELEASED}' heading")
            if not any(h.startswith(f"## [{member.version}]") for h in headings):
                problems.append(
                    f"{member.changelog}: no '## [{member.version}] - DATE' heading for the "
                    "version in pyproject.toml; `scripts/release bump` writes it"
                )
        license_file = member.path / "LICENSE"
        if not license_file.is_file() or license_file.read_bytes() != root_license:
            problems.append(
                f"{license_file}: missing or not the root LICENSE; copy it (an sdist cannot "
                "carry a link that leaves the package folder)"
            )
    return problems


def _headings(changelog: str) -> list[str]:
    return [line.rstrip() for line in changelog.splitlines() if line.startswith("## ")]


def release_changelog(changelog: str, version: Version, date: datetime.date) -> str:
    """The Unreleased notes become ``version``'s, under a fresh, empty Unreleased heading."""
    headings = _headings(changelog)
    if UNRELEASED not in headings:
        raise ReleaseError(f"the changelog has no '{UNRELEASED}' heading to release")
    if any(h.startswith(f"## [{version}]") for h in headings):
        raise ReleaseError(f"the changelog already has a heading for {version}")
    return changelog.replace(UNRELEASED, f"{UNRELEASED}\n\n## [{version}] - {date.isoformat()}", 1)


def unreleased_notes(changelog: str) -> str:
    """The text under the Unreleased heading, up to the next version's heading."""
    _, found, rest = changelog.partition(UNRELEASED + "\n")
    if not found:
        raise ReleaseError(f"the changelog has no '{UNRELEASED}' heading")
    return rest.split("\n## ", 1)[0].strip()


def note_unreleased(changelog: str, section: str, note: str) -> str:
    """Add the bullet ``note`` under ``### section`` of the Unreleased part."""
    lines = changelog.splitlines()
    try:
        start = lines.index(UNRELEASED)
    except ValueError:
        raise ReleaseError(f"the changelog has no '{UNRELEASED}' heading") from None
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    heading = f"### {section}"
    if heading in lines[start:end]:
        at = lines.index(heading, start, end) + 1
        while at < end and lines[at].strip() == "":
            at += 1
        while at < end and lines[at].strip() != "" and not lines[at].startswith("#"):
            at += 1
        lines[at:at] = [f"- {note}"]
    else:
        while end > start + 1 and lines[end - 1].strip() == "":
            end -= 1
        lines[end:end] = ["", heading, "", f"- {note}"]
    return "\n".join(lines) + "\n"


def set_version_line(init_source: str, version: Version) -> str:
    """``init_source`` with its ``__version__`` literal set to ``version``."""
    if _VERSION_LINE.search(init_source) is None:
        raise ReleaseError('no `__version__ = "..."` line to update')
    return _VERSION_LINE.sub(f'__version__ = "{version}"', init_source, count=1)


def replace_requirement(pyproject: str, old: str, new: str) -> str:
    """``pyproject`` with the quoted requirement ``old`` replaced by ``new``."""
    quoted = f'"{old}"'
    if quoted not in pyproject:
        raise ReleaseError(f"cannot find the requirement {quoted} to rewrite")
    return pyproject.replace(quoted, f'"{new}"')


# ---------------------------------------------------------------- git and uv


def _run(
    argv: Sequence[str], root: Path, *, check: bool = True
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=root, check=check, text=True, capture_output=True)


def tag_exists(root: Path, tag: str) -> bool:
    return (
        _run(
            ["git", "rev-parse", "-q", "--verify", f"refs/tags/{tag}"], root, check=False
        ).returncode
        == 0
    )


def changed_files(root: Path, ref: str, folder: Path) -> list[str]:
    """Files under ``folder`` that differ from ``ref`` (committed or not), and new ones."""
    rel = str(folder.relative_to(root))
    diff = _run(["git", "diff", "--name-only", ref, "--", rel], root)
    new = _run(["git", "ls-files", "--others", "--exclude-standard", "--", rel], root)
    return sorted({*diff.stdout.split(), *new.stdout.split()})


def changed_members(
    root: Path, members: dict[str, Member], since: str | None = None
) -> list[tuple[Member, str]]:
    """Members with files changed since ``since`` or, without it, since their release tag."""
    changed: list[tuple[Member, str]] = []
    for member in members.values():
        ref = since or (member.tag if tag_exists(root, member.tag) else None)
        if ref is None:
            changed.append((member, f"never released (no tag {member.tag})"))
            continue
        files = changed_files(root, ref, member.path)
        if files:
            more = f" and {len(files) - 1} more" if len(files) > 1 else ""
            changed.append((member, f"{files[0]}{more} changed since {ref}"))
    return changed


def _select(members: dict[str, Member], names: Iterable[str]) -> list[Member]:
    chosen: list[Member] = []
    for name in names:
        key = canonicalize_name(name)
        if key not in members and canonicalize_name(f"rbee-hive-{name}") in members:
            key = canonicalize_name(f"rbee-hive-{name}")
        if key not in members:
            raise ReleaseError(f"no member {name!r}; the members are: {', '.join(members)}")
        chosen.append(members[key])
    return chosen


def bump(
    root: Path, members: dict[str, Member], targets: list[Member], part: str, today: datetime.date
) -> list[str]:
    """Bump ``targets`` by ``part``; returns what was done, one line each."""
    if part not in BUMP_PARTS:
        raise ReleaseError(f"unknown part {part!r}; choose one of {', '.join(BUMP_PARTS)}")
    report: list[str] = []
    for member in targets:
        _run(["uv", "version", "--package", member.name, "--bump", part, "--frozen"], root)
        new = load_members(root)[member.name].version
        if member.init_file is not None:
            member.init_file.write_text(
                set_version_line(member.init_file.read_text(encoding="utf-8"), new),
                encoding="utf-8",
            )
        changelog = member.changelog.read_text(encoding="utf-8")
        member.changelog.write_text(release_changelog(changelog, new, today), encoding="utf-8")
        report.append(f"{member.name} {member.version} -> {new}")
        if not unreleased_notes(changelog):
            report.append(
                f"{member.name}: its Unreleased section was empty; write under [{new}] in "
                f"{member.changelog.relative_to(root)} what changed"
            )
    members = load_members(root)
    bumped = {m.name: members[m.name].version for m in targets}
    for dependent in members.values():
        source = dependent.pyproject.read_text(encoding="utf-8")
        notes: list[str] = []
        for text in dependent.requirements:
            name = canonicalize_name(Requirement(text).name)
            if name not in bumped:
                continue
            moved = raised_requirement(text, bumped[name])
            if moved is not None:
                source = replace_requirement(source, text, moved)
                notes.append(f"Requires `{moved}`.")
                report.append(f"{dependent.name}: {text} -> {moved} (release it too)")
        if notes:
            dependent.pyproject.write_text(source, encoding="utf-8")
            changelog = dependent.changelog.read_text(encoding="utf-8")
            for note in notes:
                changelog = note_unreleased(changelog, "Changed", note)
            dependent.changelog.write_text(changelog, encoding="utf-8")
    return report


# ---------------------------------------------------------------- the command line


def _targets(
    root: Path, members: dict[str, Member], names: Sequence[str], since: str | None = None
) -> list[Member]:
    if names:
        return _select(members, names)
    return [member for member, _ in changed_members(root, members, since)]


def _unreleased(root: Path, targets: list[Member]) -> list[Member]:
    """``targets``, refusing any whose current version was released already (tagged)."""
    stale = [m for m in targets if tag_exists(root, m.tag)]
    if stale:
        raise ReleaseError(
            f"{', '.join(m.tag for m in stale)} exist already: bump "
            f"({' '.join(m.name for m in stale)}) before building or tagging again"
        )
    return targets


def cmd_changed(root: Path, members: dict[str, Member], args: argparse.Namespace) -> int:
    for member, why in changed_members(root, members, args.since):
        print(f"{member.name}\t{why}" if args.why else member.name)
    return 0


def cmd_bump(root: Path, members: dict[str, Member], args: argparse.Namespace) -> int:
    targets = _targets(root, members, args.dists)
    if not targets:
        print("nothing changed since the last releases; name the members to bump")
        return 1
    for line in bump(root, members, targets, args.part, datetime.date.today()):
        print(line)
    if not args.no_lock:
        _run(["uv", "lock"], root)
    return 0


def cmd_build(root: Path, members: dict[str, Member], args: argparse.Namespace) -> int:
    out_dir = args.out_dir or root / "dist"
    for member in _unreleased(root, _targets(root, members, args.dists, args.since)):
        command = ["uv", "build", "--package", member.name, "--no-sources"]
        _run([*command, "--out-dir", str(out_dir)], root)
        print(f"built {member.name} {member.version} into {out_dir}")
    return 0


def cmd_tag(root: Path, members: dict[str, Member], args: argparse.Namespace) -> int:
    names = args.dists or [m.name for m in members.values() if not tag_exists(root, m.tag)]
    for member in _unreleased(root, _select(members, names)):
        if changed_files(root, "HEAD", member.path):
            raise ReleaseError(
                f"{member.path.relative_to(root)} has uncommitted changes; commit them "
                "first, a tag names what was built"
            )
        _run(["git", "tag", member.tag], root)
        print(f"tagged {member.tag}")
    return 0


def cmd_check(root: Path, members: dict[str, Member], args: argparse.Namespace) -> int:
    license_text = (root / "LICENSE").read_bytes()
    problems = bound_problems(members) + metadata_problems(members, license_text)
    for problem in problems:
        print(problem)
    verdict = "OK" if not problems else f"{len(problems)} problem(s)"
    print(f"release check: {len(members)} members, {verdict}")
    return 1 if problems else 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="scripts/release", description=__doc__.split("\n")[0])
    commands = top.add_subparsers(dest="command", required=True)
    changed = commands.add_parser("changed", help="list members changed since their release")
    changed.add_argument("--since", help="compare with this git ref instead of each tag")
    changed.add_argument("--why", action="store_true", help="say what changed")
    changed.set_defaults(run=cmd_changed)
    bump_ = commands.add_parser("bump", help="bump versions (default: the changed members)")
    bump_.add_argument("part", choices=BUMP_PARTS)
    bump_.add_argument("dists", nargs="*")
    bump_.add_argument("--no-lock", action="store_true", help="do not run `uv lock` after")
    bump_.set_defaults(run=cmd_bump)
    build = commands.add_parser("build", help="build sdist and wheel of the changed members")
    build.add_argument("dists", nargs="*", help="these instead of the changed ones")
    build.add_argument("--since", help="compare with this git ref instead of each tag")
    build.add_argument("--out-dir", type=Path, help="where the files go (default: dist/)")
    build.set_defaults(run=cmd_build)
    tag = commands.add_parser("tag", help="tag <dist>-v<version> at HEAD (default: untagged)")
    tag.add_argument("dists", nargs="*", help="these instead of every untagged version")
    tag.set_defaults(run=cmd_tag)
    check = commands.add_parser("check", help="bounds, __version__, changelogs, license files")
    check.set_defaults(run=cmd_check)
    return top


def main(argv: Sequence[str] | None = None, root: Path = ROOT) -> int:
    args = parser().parse_args(argv)
    try:
        status: int = args.run(root, load_members(root), args)
    except ReleaseError as err:
        print(f"scripts/release: {err}", file=sys.stderr)
        return 1
    except subprocess.CalledProcessError as err:
        print(
            f"scripts/release: {' '.join(err.cmd)} failed ({err.returncode}):\n{err.stderr}",
            file=sys.stderr,
        )
        return 1
    return status


if __name__ == "__main__":
    sys.exit(main())
