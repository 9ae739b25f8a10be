from __future__ import annotations

import pytest

from schemas.names import check_notebook_path, check_username, normalise_relative_path


@pytest.mark.parametrize("name", ["alice", "a", "bob-1", "x.y_z", "0user"])
def test_valid_usernames(name: str) -> None:
    assert check_username(name) == name


@pytest.mark.parametrize(
    "name", ["", "Alice", "-bob", "a/b", "a b", "a" * 65, "ünï", "a@b", "../x"]
)
def test_invalid_usernames(name: str) -> None:
    with pytest.raises(ValueError):
        check_username(name)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("a.ipynb", "a.ipynb"), ("x//y/./z.ipynb", "x/y/z.ipynb"), ("dir/nb.ipynb", "dir/nb.ipynb")],
)
def test_notebook_paths_normalised(raw: str, expected: str) -> None:
    assert check_notebook_path(raw) == expected


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("/etc/passwd.ipynb", "relative"),
        ("../up.ipynb", ".."),
        ("a/../../b.ipynb", ".."),
        ("a.txt", ".ipynb"),
        (".ipynb_checkpoints/a.ipynb", "hidden"),
        ("a\\b.ipynb", "forbidden"),
        ("a\x00.ipynb", "forbidden"),
        (" a.ipynb", "whitespace"),
        ("", "empty"),
        ("x/" * 200 + "a.ipynb", "at most"),
    ],
)
def test_bad_notebook_paths_say_why(raw: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        check_notebook_path(raw)


def test_folder_path_needs_no_suffix() -> None:
    assert normalise_relative_path("a/b/") == "a/b"
