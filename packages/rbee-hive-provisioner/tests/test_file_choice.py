"""A reference without a file picks one by a documented rule, or refuses."""

from __future__ import annotations

import pytest

from rbee_hive_provisioner import (
    DEFAULT_QUANTIZATION_PREFERENCE,
    AmbiguousModel,
    ModelNotFound,
    choose_gguf,
)

TINYLLAMA = [
    ".gitattributes",
    "README.md",
    "config.json",
    "tinyllama-1.1b-chat-v1.0.Q2_K.gguf",
    "tinyllama-1.1b-chat-v1.0.Q4_K_M.gguf",
    "tinyllama-1.1b-chat-v1.0.Q4_K_S.gguf",
    "tinyllama-1.1b-chat-v1.0.Q8_0.gguf",
]


def choose(files: list[str], preference: tuple[str, ...] = DEFAULT_QUANTIZATION_PREFERENCE) -> str:
    return choose_gguf("org/repo", "main", files, preference)


def test_default_preference_picks_q4_k_m() -> None:
    assert choose(TINYLLAMA) == "tinyllama-1.1b-chat-v1.0.Q4_K_M.gguf"


def test_preference_is_configurable_and_case_insensitive() -> None:
    files = ["qwen2.5-0.5b-instruct-q8_0.gguf", "qwen2.5-0.5b-instruct-q4_k_m.gguf"]
    assert choose(files, ("Q8_0",)) == "qwen2.5-0.5b-instruct-q8_0.gguf"
    assert choose(files) == "qwen2.5-0.5b-instruct-q4_k_m.gguf"


def test_a_single_gguf_is_taken_whatever_its_quantization() -> None:
    assert choose(["README.md", "Phi-3-mini-4k-instruct-fp16.gguf"]) == (
        "Phi-3-mini-4k-instruct-fp16.gguf"
    )


def test_a_token_matches_whole_only() -> None:
    files = ["m.IQ4_K_M.gguf", "m.Q4_K_M_L.gguf", "m.Q5_K_M.gguf"]
    assert choose(files) == "m.Q5_K_M.gguf"


def test_no_match_is_ambiguous_and_lists_the_choices() -> None:
    with pytest.raises(AmbiguousModel) as info:
        choose(["m.f16.gguf", "m.bf16.gguf"])
    assert info.value.choices == ("m.bf16.gguf", "m.f16.gguf")
    assert "m.f16.gguf" in str(info.value)
    assert "hf:org/repo:FILE.gguf" in str(info.value)
    assert info.value.code == "AMBIGUOUS_MODEL"


def test_two_files_of_the_preferred_quantization_are_ambiguous() -> None:
    with pytest.raises(AmbiguousModel) as info:
        choose(["base.Q4_K_M.gguf", "chat.Q4_K_M.gguf", "chat.Q8_0.gguf"])
    assert info.value.choices == ("base.Q4_K_M.gguf", "chat.Q4_K_M.gguf")


def test_split_parts_and_projectors_are_not_chosen_automatically() -> None:
    files = [
        "big-Q4_K_M-00001-of-00002.gguf",
        "big-Q4_K_M-00002-of-00002.gguf",
        "mmproj-model-f16.gguf",
        "small.Q8_0.gguf",
    ]
    assert choose(files) == "small.Q8_0.gguf"
    with pytest.raises(AmbiguousModel) as info:
        choose(files[:3])
    assert "split parts" in str(info.value)


def test_a_repository_without_gguf_is_not_found() -> None:
    with pytest.raises(ModelNotFound, match=r"no \.gguf file"):
        choose(["model.safetensors", "config.json"])
