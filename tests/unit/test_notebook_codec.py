from __future__ import annotations

import pytest

from consumers.errors import InvalidNotebook
from consumers.notebook_codec import canonicalise, empty_notebook


def _nb(source: str | list[str]) -> dict[str, object]:
    nb = empty_notebook()
    nb["cells"] = [
        {
            "cell_type": "code",
            "id": "c1",
            "metadata": {},
            "source": source,
            "outputs": [],
            "execution_count": None,
        }
    ]
    return nb


def test_joined_and_split_sources_hash_equal() -> None:
    joined = canonicalise(_nb("a = 1\nb = 2"))
    split = canonicalise(_nb(["a = 1\n", "b = 2"]))
    assert joined.sha256 == split.sha256
    assert joined.size == len(joined.text.encode())


def test_different_content_hashes_differ() -> None:
    assert canonicalise(_nb("a = 1")).sha256 != canonicalise(_nb("a = 2")).sha256


def test_invalid_notebook_says_why() -> None:
    with pytest.raises(InvalidNotebook, match="not a valid notebook"):
        canonicalise({"cells": "nope", "nbformat": 4})
