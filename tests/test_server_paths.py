"""server.paths: profile filenames <-> editor documents, on real files and symlinks."""

from __future__ import annotations

import os

import pytest

from server.paths import PathMatcher


def touch(path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("x = 1\n")
    return str(path)


@pytest.fixture
def tree(tmp_path):
    """real/pkg/mod.py, a symlinked directory link -> real, a symlinked file alias.py."""
    real = touch(tmp_path / "real" / "pkg" / "mod.py")
    (tmp_path / "link").symlink_to(tmp_path / "real", target_is_directory=True)
    (tmp_path / "alias.py").symlink_to(tmp_path / "real" / "pkg" / "mod.py")
    return tmp_path, real


def test_same_string_even_without_a_local_file() -> None:
    m = PathMatcher(["/nowhere/pkg/mod.py", "~", "<string>"])
    assert m.filename_for("/nowhere/pkg/mod.py") == "/nowhere/pkg/mod.py"
    assert m.filename_for("/nowhere/pkg/other.py") is None
    assert m.doc_path_for("/nowhere/pkg/mod.py") is None  # nothing to open


def test_symlinked_directory_both_directions(tree) -> None:
    tmp, real = tree
    via_link = str(tmp / "link" / "pkg" / "mod.py")
    # profile taken through the link, document opened at the real path
    assert PathMatcher([via_link]).filename_for(real) == via_link
    # profile has the real path, document opened through the link
    assert PathMatcher([real]).filename_for(via_link) == real
    assert PathMatcher([real]).doc_path_for(real) == real


def test_symlinked_file_both_directions(tree) -> None:
    tmp, real = tree
    alias = str(tmp / "alias.py")
    assert PathMatcher([alias]).filename_for(real) == alias
    assert PathMatcher([real]).filename_for(alias) == real
    assert PathMatcher([alias]).doc_path_for(alias) == alias


def test_dot_dot_segments(tree) -> None:
    tmp, real = tree
    odd = str(tmp / "real" / "pkg" / ".." / "pkg" / "mod.py")
    assert PathMatcher([odd]).filename_for(real) == odd
    assert PathMatcher([real]).filename_for(odd) == real


def test_relative_names_against_cwd_then_roots(tmp_path) -> None:
    in_cwd = touch(tmp_path / "cwd" / "pkg" / "mod.py")
    in_root = touch(tmp_path / "root" / "pkg" / "mod.py")
    only_root = touch(tmp_path / "root" / "pkg" / "util.py")
    m = PathMatcher(["pkg/mod.py", "pkg/util.py"], cwd=str(tmp_path / "cwd"), roots=[str(tmp_path / "root")])
    assert m.filename_for(in_cwd) == "pkg/mod.py"
    assert m.doc_path_for("pkg/mod.py") == in_cwd
    # the target ran in cwd: its pkg/mod.py is that one, not the root's copy
    assert m.filename_for(in_root) is None
    # a file the cwd does not have is found under a root
    assert m.filename_for(only_root) == "pkg/util.py"
    assert m.doc_path_for("pkg/util.py") == only_root

    no_cwd = PathMatcher(["pkg/mod.py"], roots=[str(tmp_path / "root")])
    assert no_cwd.filename_for(in_root) == "pkg/mod.py"
    assert no_cwd.doc_path_for("pkg/mod.py") == in_root


def test_opened_from_another_root(tmp_path) -> None:
    proj = tmp_path / "home" / "proj"
    doc = touch(proj / "pkg" / "mod.py")
    elsewhere = touch(proj / "tools" / "mod.py")
    m = PathMatcher(["/app/pkg/mod.py", "/app/pkg/__init__.py", "/app/main.py"], roots=[str(proj)])
    assert m.filename_for(doc) == "/app/pkg/mod.py"
    assert m.doc_path_for("/app/pkg/mod.py") == doc
    # the file name alone is no evidence
    assert m.filename_for(elsewhere) is None
    assert m.doc_path_for("/app/main.py") is None  # no local copy anywhere


def test_bare_file_names_of_collapsed_profiles(tmp_path) -> None:
    doc = touch(tmp_path / "proj" / "pkg" / "mod.py")
    # Collapsed stacks keep only file names: a bare name is all the evidence there is.
    m = PathMatcher(["mod.py", "other.py"], roots=[str(tmp_path / "proj")])
    assert m.filename_for(doc) == "mod.py"
    # ...unless two profile files share it.
    m = PathMatcher(["mod.py", "/app/x/mod.py"], roots=[str(tmp_path / "proj")])
    assert m.filename_for(doc) is None


def test_longest_suffix_wins_and_a_tie_is_no_match(tmp_path) -> None:
    doc = touch(tmp_path / "proj" / "a" / "pkg" / "mod.py")
    plain = touch(tmp_path / "proj" / "pkg" / "mod.py")
    m = PathMatcher(["/app/a/pkg/mod.py", "/srv/b/pkg/mod.py"], roots=[str(tmp_path / "proj")])
    assert m.filename_for(doc) == "/app/a/pkg/mod.py"  # 3 components beat 2
    assert m.filename_for(plain) is None  # 2 and 2: never guess
    # the root has a/pkg/mod.py (3 components): it maps back to the same profile filename
    assert m.doc_path_for("/app/a/pkg/mod.py") == doc
    # /srv/b/pkg/mod.py would land on proj/pkg/mod.py, which shows no heat (a tie): no jump
    assert m.doc_path_for("/srv/b/pkg/mod.py") is None


def test_suffix_never_matches_a_different_local_file(tmp_path) -> None:
    other = touch(tmp_path / "checkout1" / "pkg" / "mod.py")
    doc = touch(tmp_path / "checkout2" / "pkg" / "mod.py")
    m = PathMatcher([other])
    assert m.filename_for(doc) is None
    assert m.filename_for(other) == other


def test_ambiguous_local_copies_under_two_roots(tmp_path) -> None:
    r1 = touch(tmp_path / "r1" / "pkg" / "mod.py")
    touch(tmp_path / "r2" / "pkg" / "mod.py")
    m = PathMatcher(["/app/pkg/mod.py"], roots=[str(tmp_path / "r1"), str(tmp_path / "r2")])
    assert m.doc_path_for("/app/pkg/mod.py") is None
    assert m.filename_for(r1) == "/app/pkg/mod.py"  # the document side is still unique


def test_synthetic_names_never_match(tmp_path) -> None:
    names = ["~", "<frozen runpy>", "<string>", "<stdin>"]
    m = PathMatcher(names, cwd=str(tmp_path), roots=[str(tmp_path)])
    for name in names:
        touch(tmp_path / name)  # even a file of that name next to the target
        assert m.doc_path_for(name) is None
        assert m.filename_for(str(tmp_path / name)) is None
    assert m.filename_for("<string>") is None


def test_each_path_is_resolved_once(tree, monkeypatch) -> None:
    tmp, real = tree
    calls: list[str] = []
    original = os.path.realpath

    def counting(path, *args, **kwargs):
        calls.append(path)
        return original(path, *args, **kwargs)

    monkeypatch.setattr(os.path, "realpath", counting)
    m = PathMatcher([real, "/app/pkg/other.py"])
    via_link = str(tmp / "link" / "pkg" / "mod.py")
    for _ in range(3):
        assert m.filename_for(via_link) == real
        assert m.filename_for(str(tmp / "nothing.py")) is None
    assert len(calls) == len(set(calls))
    assert via_link in calls and real in calls
