"""Model references are parsed strictly at the edge and never substituted."""

from __future__ import annotations

from pathlib import PurePosixPath

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rbee_hive_provisioner import ACCEPTED_FORMS, InvalidModelRef, ModelRef


def test_queen_style_reference_names_the_repository_at_main() -> None:
    ref = ModelRef.parse("hf:TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF")
    assert ref.provider == "hf"
    assert ref.repo == "TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF"
    assert ref.file is None
    assert ref.revision == "main"
    assert str(ref) == "hf:TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF"


def test_file_and_revision_are_parsed() -> None:
    ref = ModelRef.parse("hf:TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF:tinyllama.Q4_K_M.gguf@v1.0")
    assert ref.file == "tinyllama.Q4_K_M.gguf"
    assert ref.revision == "v1.0"
    assert str(ref) == "hf:TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF:tinyllama.Q4_K_M.gguf@v1.0"


def test_revision_without_file_and_a_file_in_a_subfolder() -> None:
    ref = ModelRef.parse("hf:org/repo@abc123")
    assert (ref.file, ref.revision) == (None, "abc123")
    sub = ModelRef.parse("hf:org/repo:Q4_K_M/model-00001-of-00002.gguf")
    assert sub.file == "Q4_K_M/model-00001-of-00002.gguf"


def test_explicit_main_is_the_same_reference_as_none() -> None:
    assert ModelRef.parse("hf:org/repo:m.gguf@main") == ModelRef.parse("hf:org/repo:m.gguf")
    assert str(ModelRef.parse("hf:org/repo@main")) == "hf:org/repo"


def test_file_reference_needs_an_absolute_gguf_path() -> None:
    ref = ModelRef.parse("file:/srv/models/tiny.gguf")
    assert ref.provider == "file"
    assert ref.path == PurePosixPath("/srv/models/tiny.gguf")
    assert str(ref) == "file:/srv/models/tiny.gguf"
    for bad in ("file:relative/tiny.gguf", "file:/srv/models/tiny.bin", "file:///x.gguf"):
        with pytest.raises(InvalidModelRef):
            ModelRef.parse(bad)


INJECTIONS = [
    "hf:org/repo\n",
    "hf:org/repo:m.gguf\nX-Evil: 1",
    "hf:org/\x1b[31mrepo",
    "hf:org/repo\x00",
    "hf:org/repo;rm -rf /",
    "hf:org/repo|cat /etc/passwd",
    "hf:org/repo:`id`.gguf",
    "hf:org/repo:$(id).gguf",
    "hf:org/../etc/passwd",
    "hf:../repo",
    "hf:org/repo:../../etc/passwd.gguf",
    "hf:org/repo:sub/../../x.gguf",
    "file:/srv/../etc/shadow.gguf",
    "file:/srv/models/a b.gguf",
    "hf:org/répo",
    "hf:org/repo:modèle.gguf",
    "hf:org/repo\u202e",
    "hf:org/<script>alert(1)</script>",
    "hf:org/repo'; DROP TABLE models; --",
    "hf:org/repo:m.gguf@main;id",
    "hf:org/repo:m.gguf@../../x",
    "hf:-org/repo",
    "hf:.org/repo",
    "hf:org/repo/extra",
    "hf:org",
    "hf:org/repo:",
    "hf:org/repo:m.bin",
    "hf:org/repo@",
    "HF:org/repo",
    "tinyllama",
    "",
    "hf:" + "a" * 600,
]


@pytest.mark.parametrize("text", INJECTIONS)
def test_malformed_and_hostile_references_are_rejected(text: str) -> None:
    with pytest.raises(InvalidModelRef) as info:
        ModelRef.parse(text)
    message = str(info.value)
    assert ACCEPTED_FORMS in message
    assert info.value.code == "INVALID_MODEL_REF"
    assert info.value.code == "INVALID_MODEL_REF"
    # The message quotes the input escaped: no raw control characters reach a log line.
    assert message.isprintable()


def test_error_message_does_not_echo_a_long_input_in_full() -> None:
    with pytest.raises(InvalidModelRef) as info:
        ModelRef.parse("hf:org/" + "x" * 500 + ";")
    assert "x" * 200 not in str(info.value)


_name = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,20}", fullmatch=True)


@given(org=_name, name=_name, file=st.none() | _name, revision=st.none() | _name)
def test_canonical_text_parses_back_to_the_same_reference(
    org: str, name: str, file: str | None, revision: str | None
) -> None:
    text = f"hf:{org}/{name}"
    if file is not None:
        text += f":{file}.gguf"
    if revision is not None:
        text += f"@{revision}"
    ref = ModelRef.parse(text)
    assert ModelRef.parse(str(ref)) == ref
