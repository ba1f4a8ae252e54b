"""tfdphpe.files.atomic_write: whole or absent, never torn; a secret's mode from the start."""

import os
import stat

import pytest

from tfdphpe.files import atomic_write


def test_atomic_write_replaces_whole_and_sets_the_mode(tmp_path):
    path = str(tmp_path / "a.json")
    atomic_write(path, "one")
    atomic_write(path, "two", mode=0o600)
    assert open(path).read() == "two"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert os.listdir(tmp_path) == ["a.json"]          # no temporary file left behind


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = str(tmp_path / "a.json")
    atomic_write(path, "old")

    def fail(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, "new")
    assert open(path).read() == "old" and os.listdir(tmp_path) == ["a.json"]
