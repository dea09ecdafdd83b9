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
        out = dl.extract_archive(maker(tmp_path / name, entries), tmp_path / f"out_{name}")
        assert (out / "PennFudanPed" / "PNGImages" / "a.png").read_bytes() == b"x"
        one = dl.extract_archive(tmp_path / name, tmp_path / f"member_{name}", member="PennFudanPed")
        assert sorted(p.name for p in one.iterdir()) == ["PNGImages", "readme.txt"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporaries left


@pytest.mark.parametrize("name", ["../evil.txt", "/tmp/evil.txt", "a/../../evil.txt"])
@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_extract_rejects_escaping_entries(tmp_path, name, kind):
    entries = {"ok.txt": b"fine", name: b"evil"}
    archive = _zip(tmp_path / "a.zip", entries) if kind == "zip" else _tar(tmp_path / "a.tgz", entries)
    dest = tmp_path / "dest"
    with pytest.raises(ValueError, match="outside"):
        dl.extract_archive(archive, dest)
    assert not (tmp_path / "evil.txt").exists()
    assert not dest.exists()  # checked before anything is written
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_extract_refuses_every_link(tmp_path):
    archive = _tar(tmp_path / "a.tgz", {"ok.txt": b"fine"}, links=[("link", "../../etc")])
    with pytest.raises(ValueError, match="link"):
        dl.extract_archive(archive, tmp_path / "dest")
    # Even a link that stays inside: the course's archives have none, and a chain of them escapes.
    inner = _tar(tmp_path / "b.tgz", {"d/ok.txt": b"fine"}, links=[("d/link", "ok.txt")])
    with pytest.raises(ValueError, match="link"):
        dl.extract_archive(inner, tmp_path / "dest2")
    assert not (tmp_path / "dest").exists() and not (tmp_path / "dest2").exists()


def test_extract_refuses_a_chain_of_symlinks_without_the_tar_data_filter(tmp_path, monkeypatch):
    # a -> ., a/b -> .., then a/b/evil: each link alone stays inside, together they climb out.
    monkeypatch.setattr(dl, "_tar_filter", lambda: {})  # as on a Python without tarfile.data_filter
    path = tmp_path / "work" / "chain.tar"
    path.parent.mkdir()
    with tarfile.open(path, "w") as tf:
        for name, target in (("a", "."), ("a/b", "..")):
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tf.addfile(info)
        info = tarfile.TarInfo("a/b/evil.txt")
        info.size = 4
        tf.addfile(info, io.BytesIO(b"evil"))
    with pytest.raises(ValueError, match="link"):
        dl.extract_archive(path, tmp_path / "work" / "dest")
    assert not list(tmp_path.rglob("evil.txt"))


def test_extract_refuses_hard_links_and_zip_symlinks(tmp_path):
    path = tmp_path / "h.tar"
    with tarfile.open(path, "w") as tf:
        info = tarfile.TarInfo("ok.txt")
        info.size = 2
        tf.addfile(info, io.BytesIO(b"ok"))
        info = tarfile.TarInfo("hard")
        info.type, info.linkname = tarfile.LNKTYPE, "ok.txt"
        tf.addfile(info)
    with pytest.raises(ValueError, match="link"):
        dl.extract_archive(path, tmp_path / "dest")
    zpath = tmp_path / "s.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        info = zipfile.ZipInfo("link")
        info.external_attr = (0o120777 << 16)
        zf.writestr(info, "ok.txt")
    with pytest.raises(ValueError, match="link"):
        dl.extract_archive(zpath, tmp_path / "dest")


def test_zip_with_a_crc_error_leaves_nothing(tmp_path):
    path = _zip(tmp_path / "crc.zip", {"a/first.txt": b"fine", "a/second.txt": b"0123456789" * 50})
    raw = bytearray(path.read_bytes())
    at = raw.index(b"0123456789")  # stored uncompressed: flip a byte of the second file's data
    raw[at] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="corrupt zip archive") as err:
        dl.extract_archive(path, tmp_path / "dest")
    assert "crc.zip" in str(err.value)
    assert not (tmp_path / "dest").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["crc.zip"]


@pytest.mark.parametrize("kind", ["zip", "tgz", "tar"])
def test_truncated_archive_is_reported_as_such(tmp_path, kind):
    blob = bytes(range(256)) * 400
    if kind == "zip":
        path = _zip(tmp_path / "t.zip", {"d/a.bin": blob, "d/b.bin": blob[::-1]})
    else:
        path = tmp_path / f"t.{kind}"
        with tarfile.open(path, "w:gz" if kind == "tgz" else "w") as tf:
            for name, data in (("d/a.bin", blob), ("d/b.bin", blob[::-1])):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    path.write_bytes(path.read_bytes()[: path.stat().st_size * 2 // 3])
    with pytest.raises(ValueError, match="truncated or corrupt") as err:
        dl.extract_archive(path, tmp_path / "dest")
    assert path.name in str(err.value)
    assert not (tmp_path / "dest").exists()


def test_extract_removes_stale_temporaries_only(tmp_path):
    import os

    archive = _zip(tmp_path / "a.zip", {"x/a.txt": b"a"})
    dead = tmp_path / ".dest.999999999-0123abcd.tmp"  # a pid that cannot exist: a killed run
    live = tmp_path / f".dest.{os.getpid()}-89abcdef.tmp"  # a run still writing
    for d in (dead, live):
        (d / "x").mkdir(parents=True)
    dl.extract_archive(archive, tmp_path / "dest")
    assert not dead.exists() and live.exists()


def test_download_accepts_a_published_md5(served, tmp_path):
    md5 = hashlib.md5(PAYLOAD).hexdigest()
    assert dl.download(served, tmp_path / "a.bin", md5).read_bytes() == PAYLOAD
    assert dl.download(served, tmp_path / "b.bin", f"MD5:{md5.upper()}").read_bytes() == PAYLOAD
    with pytest.raises(dl.ChecksumError, match="MD5"):
        dl.download(served, tmp_path / "c.bin", "0" * 32)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "b.bin", "src"]


def test_download_removes_stale_partial_files(served, tmp_path):
    import os

    out = tmp_path / "out"
    out.mkdir()
    dead = out / ".a.bin.999999999-0123abcd.part"
    live = out / f".a.bin.{os.getpid()}-89abcdef.part"
    dead.write_bytes(b"half")
    live.write_bytes(b"half")
    dl.download(served, out / "a.bin", SHA)
    assert sorted(p.name for p in out.iterdir()) == sorted(["a.bin", live.name])


def test_mirror_redirects_downloads_and_the_online_probe(monkeypatch):
    monkeypatch.setenv("COURSE_MIRROR", "http://127.0.0.1:8765/")
    assert dl.mirrored("https://www.cis.upenn.edu/~jshi/ped_html/PennFudanPed.zip") == \
        "http://127.0.0.1:8765/www.cis.upenn.edu/~jshi/ped_html/PennFudanPed.zip"
    assert notebook.probe_address() == ("127.0.0.1", 8765)
    monkeypatch.setenv("COURSE_MIRROR", "127.0.0.1:8765")
    with pytest.raises(ValueError, match="COURSE_MIRROR"):
        notebook.probe_address()
    monkeypatch.delenv("COURSE_MIRROR")
    assert dl.mirrored("https://a.org/x.zip") == "https://a.org/x.zip"
    assert notebook.probe_address() == notebook.ONLINE_PROBE


def test_extract_rejects_non_archive(tmp_path):
    path = tmp_path / "plain.txt"
    path.write_text("not an archive")
    with pytest.raises(ValueError, match="zip or tar"):
        dl.extract_archive(path, tmp_path / "dest")
