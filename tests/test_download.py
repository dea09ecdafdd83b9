"""Download and archive helpers: checksum, atomic write, no overwrite, safe extraction, offline."""
import hashlib
import io
import tarfile
import zipfile

import pytest

from course_lib import notebook
from course_lib.datasets import download as dl
from course_lib.datasets import pennfudan as pf
from course_lib.models.finetune import detector

PAYLOAD = b"penn-fudan, but tiny\n" * 100
SHA = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture
def served(tmp_path, monkeypatch):
    """A file:// URL of PAYLOAD, and the network reported as reachable."""
    src = tmp_path / "src" / "archive.bin"
    src.parent.mkdir()
    src.write_bytes(PAYLOAD)
    monkeypatch.setattr(notebook, "is_online", lambda *a, **k: True)
    return src.as_uri()


def test_download_verifies_and_writes_atomically(served, tmp_path):
    dest = tmp_path / "out" / "a.bin"
    assert dl.download(served, dest, SHA) == dest
    assert dest.read_bytes() == PAYLOAD
    assert [p.name for p in dest.parent.iterdir()] == ["a.bin"]  # no temp file left
    assert dl.download(served, dest, SHA.upper()) == dest  # present and right: reused


def test_checksum_mismatch_leaves_nothing(served, tmp_path):
    dest = tmp_path / "out" / "a.bin"
    with pytest.raises(dl.ChecksumError, match="does not match"):
        dl.download(served, dest, "0" * 64)
    assert list(dest.parent.iterdir()) == []


def test_existing_different_file_is_not_overwritten(served, tmp_path):
    dest = tmp_path / "a.bin"
    dest.write_bytes(b"my own notes")
    with pytest.raises(dl.ChecksumError, match="exists"):
        dl.download(served, dest, SHA)
    assert dest.read_bytes() == b"my own notes"


def test_bad_sha256_argument(served, tmp_path):
    with pytest.raises(ValueError, match="sha256"):
        dl.download(served, tmp_path / "a.bin", "abc")


def test_offline_fails_fast(tmp_path, monkeypatch):
    monkeypatch.setattr(notebook, "is_online", lambda *a, **k: False)
    with pytest.raises(notebook.OfflineError, match="COURSE_PROFILE=quick"):
        dl.download("https://example.org/x.zip", tmp_path / "x.zip", SHA)
    with pytest.raises(notebook.OfflineError):
        pf.pennfudan(tmp_path)
    with pytest.raises(notebook.OfflineError):
        detector.resnet50_fpn("DEFAULT")
    with pytest.raises(notebook.OfflineError):
        detector.build_detector(detector.FULL, 2)
    assert list(tmp_path.iterdir()) == []


def _zip(path, entries):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return path


def _tar(path, entries, links=()):
    with tarfile.open(path, "w:gz") as tf:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for name, target in links:
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tf.addfile(info)
    return path


def test_extract_zip_and_tar(tmp_path):
    entries = {"PennFudanPed/PNGImages/a.png": b"x", "PennFudanPed/readme.txt": b"y"}
    for maker, name in ((_zip, "a.zip"), (_tar, "a.tar.gz")):
        out = dl.extract_archive(maker(tmp_path / name, entries), tmp_path / name.split(".")[0])
        assert (out / "PennFudanPed" / "PNGImages" / "a.png").read_bytes() == b"x"


@pytest.mark.parametrize("name", ["../evil.txt", "/tmp/evil.txt", "a/../../evil.txt"])
@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_extract_rejects_escaping_entries(tmp_path, name, kind):
    entries = {"ok.txt": b"fine", name: b"evil"}
    archive = _zip(tmp_path / "a.zip", entries) if kind == "zip" else _tar(tmp_path / "a.tgz", entries)
    dest = tmp_path / "dest"
    with pytest.raises(ValueError, match="outside"):
        dl.extract_archive(archive, dest)
    assert not (tmp_path / "evil.txt").exists()
    assert list(dest.iterdir()) == []  # checked before anything is written


def test_extract_rejects_symlink_out(tmp_path):
    archive = _tar(tmp_path / "a.tgz", {"ok.txt": b"fine"}, links=[("link", "../../etc")])
    with pytest.raises(ValueError, match="outside"):
        dl.extract_archive(archive, tmp_path / "dest")
    inner = _tar(tmp_path / "b.tgz", {"d/ok.txt": b"fine"}, links=[("d/link", "ok.txt")])
    assert (dl.extract_archive(inner, tmp_path / "dest2") / "d" / "link").read_bytes() == b"fine"


def test_extract_rejects_non_archive(tmp_path):
    path = tmp_path / "plain.txt"
    path.write_text("not an archive")
    with pytest.raises(ValueError, match="zip or tar"):
        dl.extract_archive(path, tmp_path / "dest")
