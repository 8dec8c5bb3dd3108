"""`lash_core.unique_name`, the one way names are told apart and shortened (gateway naming and the adapters)."""

from __future__ import annotations

import hashlib

import pytest

from lash_core import unique_name


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_the_suffix_is_a_digest_of_the_source_and_grows_only_when_taken() -> None:
    assert unique_name("tool", "Tool") == f"tool_{sha('Tool')[:8]}"
    assert unique_name("tool", "Tool", digits=6) == f"tool_{sha('Tool')[:6]}"
    taken = {f"tool_{sha('Tool')[:8]}"}
    assert unique_name("tool", "Tool", taken) == f"tool_{sha('Tool')[:12]}"


def test_the_stem_is_cut_to_fit_the_limit() -> None:
    name = unique_name("x" * 100, "long", limit=64)
    assert len(name) == 64 and name.endswith(f"_{sha('long')[:8]}")


def test_even_when_every_digest_length_is_taken_the_name_is_unique() -> None:
    digest = sha("s")
    taken = {f"n_{digest[:length]}" for length in (8, 12, 16, 24, 32)}
    name = unique_name("n", "s", taken)
    assert name not in taken and name.startswith("n_")


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="digits"):
        unique_name("n", "s", digits=7)
    with pytest.raises(ValueError, match="no room"):
        unique_name("n", "s", limit=5)
