"""Which .gguf file of a repository a reference without a file means.

The rule, in order:

1. Candidates are the repository's ``*.gguf`` files, except split parts
   (``NAME-00001-of-00003.gguf``) and multimodal projectors (``mmproj*.gguf``): one such file
   is not a whole model, so it is only downloaded when named explicitly.
2. Exactly one candidate: take it.
3. Otherwise walk the quantization preference (setting ``quantization_preference``, default
   ``Q4_K_M, Q4_K_S, Q5_K_M, Q8_0``); the first entry that appears, case-insensitively and as a
   whole token, in exactly one candidate's name picks that file.
4. Anything else raises ``AmbiguousModel`` listing the files: name one with
   ``hf:ORG/REPO:FILE.gguf``. Nothing is ever substituted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from rbee_hive_provisioner.exceptions import AmbiguousModel, ModelNotFound

DEFAULT_QUANTIZATION_PREFERENCE = ("Q4_K_M", "Q4_K_S", "Q5_K_M", "Q8_0")

_SPLIT_PART = re.compile(r"-\d{5}-of-\d{5}\.gguf$", re.IGNORECASE)


def is_gguf(name: str) -> bool:
    """Whether a repository file name is a GGUF file."""
    return name.lower().endswith(".gguf")


def _is_whole_model(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return not _SPLIT_PART.search(base) and not base.lower().startswith("mmproj")


def _mentions(name: str, token: str) -> bool:
    # A whole token: "Q4_K_M" matches "x.Q4_K_M.gguf" and "x-q4_k_m.gguf", not "x.IQ4_K_M" or
    # "x.Q4_K_M_L".
    pattern = rf"(?<![A-Za-z0-9]){re.escape(token)}(?![A-Za-z0-9_])"
    return re.search(pattern, name, re.IGNORECASE) is not None


def choose_gguf(repo: str, revision: str, files: Iterable[str], preference: Sequence[str]) -> str:
    """Pick the file a file-less reference means; see the module docstring for the rule."""
    ggufs = sorted(f for f in files if is_gguf(f))
    candidates = [f for f in ggufs if _is_whole_model(f)]
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        if ggufs:
            raise AmbiguousModel(
                f"repository {repo} at revision {revision} has only split parts or "
                f"projector .gguf files ({', '.join(ggufs[:20])}); name the file to download "
                f"as hf:{repo}:FILE.gguf",
                tuple(ggufs),
            )
        raise ModelNotFound(
            f"repository {repo} at revision {revision} has no .gguf file; rbee-hive serves "
            "GGUF models: pick a repository that publishes .gguf files"
        )
    for token in preference:
        matches = [f for f in candidates if _mentions(f, token)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            candidates = matches
            break
    shown = ", ".join(candidates[:20]) + (" ..." if len(candidates) > 20 else "")
    raise AmbiguousModel(
        f"repository {repo} at revision {revision} has several .gguf files and the "
        f"quantization preference ({', '.join(preference) or 'empty'}) picks none of them "
        f"alone: {shown}; name one as hf:{repo}:FILE.gguf or change the setting "
        "quantization_preference",
        tuple(candidates),
    )
