"""Model references: parsed once at the edge into a frozen value, never guessed.

Accepted forms (``@REVISION`` is optional and defaults to ``main``)::

    hf:ORG/REPO[@REVISION]              the repository; the .gguf file is chosen by rule
    hf:ORG/REPO:FILE.gguf[@REVISION]    one file of the repository (FILE may contain '/')
    file:/ABSOLUTE/PATH.gguf            a model file already on this machine
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Literal

import attrs

from rbee_hive_provisioner.exceptions import InvalidModelRef

MAX_REF_LENGTH = 512
DEFAULT_REVISION = "main"

ACCEPTED_FORMS = (
    "hf:ORG/REPO, hf:ORG/REPO:FILE.gguf, either optionally followed by @REVISION "
    "(for example hf:TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF or "
    "hf:TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF:tinyllama-1.1b-chat-v1.0.Q4_K_M.gguf@main), "
    "or file:/absolute/path.gguf"
)

# The Hub's repo-name rules: letters, digits, '.', '_', '-'; no leading '-' or '.'; no '..'.
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,95}")
# One segment of a file name or path: the same conservative set plus '+'; never a shell
# metacharacter, a space, a control character or anything outside ASCII.
_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._+-]*")
_REVISION_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")


def _shown(text: str) -> str:
    # Quoted with repr (escapes control characters) and cut short: never echo input raw.
    return repr(text if len(text) <= 80 else text[:77] + "...")


def _invalid(text: str, why: str) -> InvalidModelRef:
    shown = _shown(text)
    return InvalidModelRef(
        f"invalid model reference {shown}: {why}; accepted forms: {ACCEPTED_FORMS}"
    )


def _check_name(text: str, value: str, what: str) -> None:
    if not _NAME.fullmatch(value) or ".." in value:
        raise _invalid(
            text,
            f"{what} {_shown(value)} must be 1-96 characters of letters, digits, '.', '_' or '-', "
            "not start with '.' or '-', and not contain '..'",
        )


def _check_path(text: str, value: str, what: str, segment: re.Pattern[str]) -> None:
    parts = value.split("/")
    if not all(segment.fullmatch(p) and p not in {".", ".."} for p in parts):
        raise _invalid(
            text,
            f"{what} {_shown(value)} may only hold '/'-separated parts of letters, digits, "
            "'.', '_', '+' or '-' that do not start with '.', '-' and are not '..'",
        )


def _check_gguf(text: str, value: str) -> None:
    if not value.lower().endswith(".gguf"):
        raise _invalid(text, f"file {_shown(value)} must end in .gguf")


@attrs.frozen
class ModelRef:
    """A validated model reference; ``str(ref)`` is its canonical text.

    ``provider`` is ``"hf"`` (``repo``, ``file`` or None, ``revision``) or ``"file"``
    (``path``). The canonical text omits ``@main``, so ``hf:a/b@main`` and ``hf:a/b`` are
    one reference.
    """

    provider: Literal["hf", "file"]
    repo: str | None = None
    file: str | None = None
    revision: str = DEFAULT_REVISION
    path: PurePosixPath | None = None

    @classmethod
    def parse(cls, text: str) -> ModelRef:
        """Parse and validate; raises ``InvalidModelRef`` naming the accepted forms."""
        if not isinstance(text, str):
            raise InvalidModelRef(
                f"a model reference must be a string, got {type(text).__name__}; "
                f"accepted forms: {ACCEPTED_FORMS}"
            )
        if not text:
            raise _invalid(text, "it is empty")
        if len(text) > MAX_REF_LENGTH:
            raise _invalid(
                text, f"it is {len(text)} characters long, the limit is {MAX_REF_LENGTH}"
            )
        if not text.isascii() or not text.isprintable():
            raise _invalid(text, "it contains control or non-ASCII characters")
        if text.startswith("file:"):
            return cls._parse_file(text)
        if text.startswith("hf:"):
            return cls._parse_hf(text)
        raise _invalid(text, "it must start with 'hf:' or 'file:'")

    @classmethod
    def _parse_file(cls, text: str) -> ModelRef:
        raw = text[len("file:") :]
        if not raw.startswith("/"):
            raise _invalid(text, "a file: reference needs an absolute path")
        _check_path(text, raw[1:], "path", _SEGMENT)
        _check_gguf(text, raw)
        return cls(provider="file", path=PurePosixPath(raw))

    @classmethod
    def _parse_hf(cls, text: str) -> ModelRef:
        body = text[len("hf:") :]
        revision = DEFAULT_REVISION
        if "@" in body:
            body, revision = body.rsplit("@", 1)
            if len(revision) > 255:
                raise _invalid(text, "the revision is longer than 255 characters")
            _check_path(text, revision, "revision", _REVISION_SEGMENT)
        repo, sep, file = body.partition(":")
        if sep and not file:
            raise _invalid(text, "the file after ':' is empty")
        if repo.count("/") != 1:
            raise _invalid(text, f"repository {_shown(repo)} must be ORG/REPO")
        org, name = repo.split("/")
        _check_name(text, org, "organisation")
        _check_name(text, name, "repository name")
        if sep:
            _check_path(text, file, "file", _SEGMENT)
            _check_gguf(text, file)
        return cls(provider="hf", repo=repo, file=file or None, revision=revision)

    def with_file(self, file: str) -> ModelRef:
        """The same repository and revision, naming ``file`` (the result of the file choice)."""
        if self.provider != "hf":
            raise ValueError("only hf: references name a file inside a repository")
        return attrs.evolve(self, file=file)

    def __str__(self) -> str:
        if self.provider == "file":
            return f"file:{self.path}"
        text = f"hf:{self.repo}"
        if self.file is not None:
            text += f":{self.file}"
        if self.revision != DEFAULT_REVISION:
            text += f"@{self.revision}"
        return text
