"""Small copies of the `full` profile's archives, generated in their official layouts, and a local
HTTP server that plays the part of their hosts (through COURSE_MIRROR).

Layouts, as the real archives have them:
- PennFudanPed.zip: PennFudanPed/{Annotation,PedMasks,PNGImages}/, readme.txt, added-object-list.txt
  (masks are palette PNGs whose indices are instance ids; folders are stored in that order, so
  masks come before images);
- WIDER_val.zip: WIDER_val/images/<event>/<name>.jpg; wider_face_split.zip:
  wider_face_split/wider_face_{train,val}_bbx_gt.txt and wider_face_test_filelist.txt, the val
  file with zero-face entries ("0" then a line of ten zeros) and faces flagged invalid;
- VOCtrainval_06-Nov-2007.tar / VOCtest_06-Nov-2007.tar: VOCdevkit/VOC2007/{Annotations,
  JPEGImages,ImageSets/Main} with VOC's XML (1-based inclusive boxes) and per-class listings.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import http.server
import io
import shutil
import tarfile
import threading
import urllib.parse
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

VOC_NAMES = ("person", "dog", "car")


def sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _png(array, mode=None, palette=None) -> bytes:
    im = Image.fromarray(array, mode) if mode else Image.fromarray(array)
    if palette is not None:
        im.putpalette(palette)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def _jpg(array) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _scene(rng, h, w, boxes):
    """An image with a bright rectangle per box (`xyxy` px) on a dark noisy background."""
    img = rng.integers(0, 60, (h, w, 3), dtype=np.uint8)
    for x1, y1, x2, y2 in boxes:
        img[y1:y2, x1:x2] = rng.integers(150, 255, 3, dtype=np.uint8)
    return img


def penn_fudan_zip(path, n: int = 8, size=(72, 96), seed: int = 0) -> Path:
    """PennFudanPed.zip with n images (FudanPed*/PennPed*), 1-2 pedestrians each; returns path."""
    rng = np.random.default_rng(seed)
    h, w = size
    files = {}
    for i in range(n):
        name = f"{'FudanPed' if i % 2 == 0 else 'PennPed'}{i + 1:05d}"
        ids = np.zeros((h, w), np.uint8)
        boxes = []
        for k in range(1 + i % 2):
            x1 = int(rng.integers(2, w // 2)) if k == 0 else w // 2 + 2
            y1 = int(rng.integers(2, h // 3))
            x2, y2 = x1 + int(rng.integers(12, w // 2 - 4)), y1 + int(rng.integers(h // 3, 2 * h // 3 - 2))
            ids[y1:y2, x1:x2] = k + 1
            boxes.append((x1, y1, x2, y2))
        palette = [0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * (768 - 9)
        files[f"PennFudanPed/Annotation/{name}.txt"] = (
            f'Image filename : "PennFudanPed/PNGImages/{name}.png"\n'
            + "".join(f'Bounding box for object {k + 1} "PASpersonWalking" (Xmin, Ymin) - (Xmax, Ymax) : '
                      f"({b[0]}, {b[1]}) - ({b[2] - 1}, {b[3] - 1})\n" for k, b in enumerate(boxes))).encode()
        files[f"PennFudanPed/PedMasks/{name}_mask.png"] = _png(ids, "P", palette)
        files[f"PennFudanPed/PNGImages/{name}.png"] = _png(_scene(rng, h, w, boxes))
    files["PennFudanPed/added-object-list.txt"] = b"small copy for tests\n"
    files["PennFudanPed/readme.txt"] = b"Penn-Fudan Database for Pedestrian Detection and Segmentation\n"
    order = sorted(files, key=lambda n: (n.count("/") == 1, n))  # folders first: Annotation, PedMasks, PNGImages
    with zipfile.ZipFile(path, "w") as zf:
        for folder in ("PennFudanPed/", "PennFudanPed/Annotation/", "PennFudanPed/PedMasks/", "PennFudanPed/PNGImages/"):
            zf.writestr(zipfile.ZipInfo(folder), b"")
        for name in order:
            zf.writestr(name, files[name])
    return Path(path)


# x y w h blur expression illumination invalid occlusion pose, per face, per image
WIDER_VAL = {
    "0--Parade/0_Parade_marchingband_1_20.jpg": [[60, 50, 40, 52, 0, 0, 0, 0, 0, 0], [150, 60, 22, 28, 1, 0, 0, 0, 1, 0]],
    "0--Parade/0_Parade_Parade_0_194.jpg": [],                                       # zero faces
    "1--Handshaking/1_Handshaking_Handshaking_1_35.jpg": [[30, 30, 8, 8, 2, 0, 0, 1, 0, 0]],  # only invalid
    "1--Handshaking/1_Handshaking_Handshaking_1_94.jpg": [[90, 70, 48, 60, 0, 1, 0, 0, 0, 1],
                                                           [20, 20, 10, 12, 2, 0, 1, 0, 2, 0]],
    "2--Demonstration/2_Demonstration_Protesters_2_46.jpg": [[120, 40, 60, 70, 0, 0, 0, 0, 0, 0]],
    "2--Demonstration/2_Demonstration_Political_Rally_2_71.jpg": [],                 # zero faces
    "3--Riot/3_Riot_Riot_3_22.jpg": [[40, 90, 36, 44, 1, 0, 0, 0, 1, 0]],
}


def wider_gt_text(entries) -> str:
    lines = []
    for name, faces in entries.items():
        lines += [name, str(len(faces))]
        # The real file writes a line of zeros after a zero count, and ends face lines with a space.
        lines += [" ".join(map(str, f)) + " " for f in (faces or [[0] * 10])]
    return "\n".join(lines) + "\n"


def wider_zips(folder, size=(240, 320), seed: int = 1) -> tuple[Path, Path]:
    """(WIDER_val.zip, wider_face_split.zip) holding WIDER_VAL in the official layout."""
    rng = np.random.default_rng(seed)
    folder = Path(folder)
    val = folder / "WIDER_val.zip"
    with zipfile.ZipFile(val, "w") as zf:
        for name, faces in WIDER_VAL.items():
            boxes = [(x, y, x + w, y + h) for x, y, w, h, *_ in faces]
            zf.writestr(f"WIDER_val/images/{name}", _jpg(_scene(rng, *size, boxes)))
    split = folder / "wider_face_split.zip"
    with zipfile.ZipFile(split, "w") as zf:
        zf.writestr("wider_face_split/readme.txt", "Attached the mappings between attribute names and label values.\n")
        zf.writestr("wider_face_split/wider_face_val_bbx_gt.txt", wider_gt_text(WIDER_VAL))
        zf.writestr("wider_face_split/wider_face_train_bbx_gt.txt", wider_gt_text({}))
        zf.writestr("wider_face_split/wider_face_test_filelist.txt", "0--Parade/0_Parade_marchingband_1_737.jpg\n")
    return val, split


def _voc_xml(image_id: str, h: int, w: int, objects) -> bytes:
    objs = "".join(
        f"\t<object>\n\t\t<name>{n}</name>\n\t\t<pose>Unspecified</pose>\n\t\t<truncated>0</truncated>\n"
        f"\t\t<difficult>{d}</difficult>\n\t\t<bndbox>\n\t\t\t<xmin>{x1 + 1}</xmin>\n\t\t\t<ymin>{y1 + 1}</ymin>\n"
        f"\t\t\t<xmax>{x2}</xmax>\n\t\t\t<ymax>{y2}</ymax>\n\t\t</bndbox>\n\t</object>\n"
        for n, (x1, y1, x2, y2), d in objects)
    return (f"<annotation>\n\t<folder>VOC2007</folder>\n\t<filename>{image_id}.jpg</filename>\n"
            "\t<source>\n\t\t<database>The VOC2007 Database</database>\n\t</source>\n"
            f"\t<size>\n\t\t<width>{w}</width>\n\t\t<height>{h}</height>\n\t\t<depth>3</depth>\n\t</size>\n"
            f"\t<segmented>0</segmented>\n{objs}</annotation>\n").encode()


def voc_tars(folder, n_trainval: int = 8, n_test: int = 4, size=(60, 80), seed: int = 2) -> tuple[Path, Path]:
    """(VOCtrainval_06-Nov-2007.tar, VOCtest_06-Nov-2007.tar), uncompressed like the real ones."""
    rng = np.random.default_rng(seed)
    h, w = size
    out = []
    ids_all = [f"{i:06d}" for i in range(1, n_trainval + n_test + 1)]
    for archive, ids, splits in (("VOCtrainval_06-Nov-2007.tar", ids_all[:n_trainval], ("train", "val", "trainval")),
                                 ("VOCtest_06-Nov-2007.tar", ids_all[n_trainval:], ("test",))):
        files = {}
        for j, image_id in enumerate(ids):
            objects = []
            for k in range(1 + j % 2):
                x1, y1 = int(rng.integers(0, w // 2)), int(rng.integers(0, h // 2))
                box = (x1, y1, min(w, x1 + int(rng.integers(12, w // 2))), min(h, y1 + int(rng.integers(12, h // 2))))
                objects.append((VOC_NAMES[(j + k) % len(VOC_NAMES)], box, int(j == 3 and k == 0)))
            files[f"VOCdevkit/VOC2007/Annotations/{image_id}.xml"] = _voc_xml(image_id, h, w, objects)
            files[f"VOCdevkit/VOC2007/JPEGImages/{image_id}.jpg"] = _jpg(_scene(rng, h, w, [o[1] for o in objects]))
        for s in splits:
            part = ids if s in ("trainval", "test") else (ids[::2] if s == "train" else ids[1::2])
            files[f"VOCdevkit/VOC2007/ImageSets/Main/{s}.txt"] = "".join(i + "\n" for i in part).encode()
            for name in VOC_NAMES:  # per-class listings: "<id> <1|-1|0>"
                files[f"VOCdevkit/VOC2007/ImageSets/Main/{name}_{s}.txt"] = "".join(
                    f"{i}  1\n" for i in part).encode()
        path = Path(folder) / archive
        with tarfile.open(path, "w") as tf:
            for d in ("VOCdevkit", "VOCdevkit/VOC2007", "VOCdevkit/VOC2007/Annotations",
                      "VOCdevkit/VOC2007/ImageSets", "VOCdevkit/VOC2007/ImageSets/Main", "VOCdevkit/VOC2007/JPEGImages"):
                info = tarfile.TarInfo(d)
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tf.addfile(info)
            for name in sorted(files):
                info = tarfile.TarInfo(name)
                info.size, info.mode = len(files[name]), 0o644
                tf.addfile(info, io.BytesIO(files[name]))
        out.append(path)
    return tuple(out)


def place(mirror_root, url: str, file) -> Path:
    """Copy `file` to where a mirror folder serves `url` from (<host>/<path>, as download.mirrored maps it)."""
    parts = urllib.parse.urlsplit(url)
    dest = Path(mirror_root) / parts.hostname / urllib.parse.unquote(parts.path).lstrip("/")
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(file, dest)
    return dest


@contextlib.contextmanager
def slow_png_writes(pause: float = 0.02):
    """PIL writes every PNG in two halves with a pause between, as on a slow disk: a reader that
    opens the file meanwhile finds half an image. For tests of concurrent writers (in a child
    process, where the patch stays)."""
    import time

    original = Image.Image.save

    def save(self, fp, format=None, **params):
        buf = io.BytesIO()
        original(self, buf, format=format or "PNG", **params)
        data = buf.getvalue()
        with open(fp, "wb") as f:
            f.write(data[: len(data) // 2])
            f.flush()
            time.sleep(pause)
            f.write(data[len(data) // 2:])

    Image.Image.save = save
    try:
        yield
    finally:
        Image.Image.save = original


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@contextlib.contextmanager
def http_server(folder):
    """Serve `folder` on http://127.0.0.1:<free port> from a thread; yields the base URL."""
    handler = functools.partial(_Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
