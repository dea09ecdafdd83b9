"""course_lib.paths.data_dir: where the cache goes, and clear errors when COURSE_DATA is unusable."""
import os
from pathlib import Path

import pytest

from course_lib import paths


def test_tilde_is_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COURSE_DATA", "~/cache")
    assert paths.data_dir() == tmp_path / "home" / "cache"
    assert (tmp_path / "home" / "cache").is_dir() and not (tmp_path / "~").exists()


def test_a_relative_course_data_is_resolved_once(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COURSE_DATA", "rel/cache")
    first = paths.data_dir()
    assert first == tmp_path / "rel" / "cache" and first.is_absolute()
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # a lesson that changes directory keeps its cache
    assert paths.data_dir() == first and os.environ["COURSE_DATA"] == str(first)
    assert not (tmp_path / "elsewhere" / "rel").exists()


def test_a_file_as_course_data_is_named(tmp_path, monkeypatch):
    (tmp_path / "afile").write_text("x")
    monkeypatch.setenv("COURSE_DATA", str(tmp_path / "afile"))
    with pytest.raises(NotADirectoryError, match="COURSE_DATA=.*afile.* is a file"):
        paths.data_dir()
    monkeypatch.setenv("COURSE_DATA", str(tmp_path / "afile" / "below"))
    with pytest.raises(NotADirectoryError, match="COURSE_DATA"):
        paths.data_dir()


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_an_unwritable_course_data_is_named(tmp_path, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        monkeypatch.setenv("COURSE_DATA", str(locked / "cache"))
        with pytest.raises(PermissionError, match="COURSE_DATA"):
            paths.data_dir()
        monkeypatch.setenv("COURSE_DATA", str(locked))
        with pytest.raises(PermissionError, match="COURSE_DATA.*not writable"):
            paths.data_dir()
    finally:
        locked.chmod(0o700)


def test_an_unwritable_course_data_is_named_whoever_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA", str(tmp_path / "cache"))

    def refuse(self, *a, **k):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "mkdir", refuse)
    with pytest.raises(PermissionError, match="COURSE_DATA=.*cannot be created"):
        paths.data_dir()
