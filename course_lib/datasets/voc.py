"""Pascal VOC layout: annotation XML reader/writer and a detection Dataset.

The layout (one folder, e.g. VOCdevkit/VOC2007): JPEGImages/<id>.jpg, Annotations/<id>.xml,
ImageSets/Main/<split>.txt (one id a line). The same reader loads the course's synthetic
shapes set and the real Pascal VOC 2007.

VOC XML stores 1-based, inclusive pixel indices: a box covering pixel columns 0..9 (0-based)
is written xmin=1, xmax=10. course_lib boxes are continuous `xyxy` pixels (width = x2 - x1),
so reading converts (xmin, ymin, xmax, ymax) -> (xmin - 1, ymin - 1, xmax, ymax) and writing
does the inverse.

Reading is defensive: <filename> must be a plain name inside JPEGImages/ (an absolute path or a
'..' is refused), a box that crosses the image border is clipped to the <size> of the image, and
a box that lies wholly outside it is refused; every error names the file.
"""
from __future__ import annotations

import os
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import torch

VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)
VOC2007_SPLITS = ("train", "val", "trainval", "test")
# The two official archives, and the folder each one's VOCdevkit/VOC2007 is extracted to.
VOC2007_ARCHIVES = {"trainval": "VOCtrainval_06-Nov-2007.tar", "test": "VOCtest_06-Nov-2007.tar"}


def _text(node, tag: str, path) -> str:
    child = node.find(tag)
    if child is None or child.text is None or not child.text.strip():
        raise ValueError(f"{path}: <{node.tag}> has no <{tag}>")
    return child.text.strip()


def _number(node, tag: str, path) -> float:
    text = _text(node, tag, path)
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{path}: <{tag}> is not a number: {text!r}") from None
    if not np.isfinite(value):
        raise ValueError(f"{path}: <{tag}> is not finite: {text!r}")
    return value


def _flag(node, tag: str, path) -> bool:
    child = node.find(tag)
    if child is None or child.text is None or not child.text.strip():
        return False
    try:
        return bool(int(float(child.text)))
    except ValueError:
        raise ValueError(f"{path}: <{tag}> must be 0 or 1, got {child.text.strip()!r}") from None


def read_voc_xml(path) -> dict:
    """Read one VOC annotation file.

    Returns dict(filename str, image_hw (h, w) ints, boxes float32 (K, 4) continuous `xyxy`
    pixels = (xmin - 1, ymin - 1, xmax, ymax) of VOC's 1-based inclusive indices, clipped to
    [0, w] x [0, h], names list of K str, difficult bool (K,), truncated bool (K,)). No
    <object>: K = 0, boxes (0, 4).
    Raises ValueError naming the file for: not XML, root not <annotation>, missing
    filename/size/name/bndbox, a <filename> that is absolute or contains '..', a <size> that is
    not positive, non-numeric coordinates, xmax < xmin or ymax < ymin, a box wholly outside the
    image.
    """
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as err:
        raise ValueError(f"{path}: not a valid XML file ({err})") from None
    if root.tag != "annotation":
        raise ValueError(f"{path}: the root element must be <annotation>, got <{root.tag}>")
    filename = _text(root, "filename", path)
    if os.path.isabs(filename) or filename.startswith(("/", "\\")) or ".." in Path(filename.replace("\\", "/")).parts:
        raise ValueError(f"{path}: <filename> must be a file name inside JPEGImages/, got {filename!r}")
    size = root.find("size")
    if size is None:
        raise ValueError(f"{path}: <annotation> has no <size>")
    image_hw = (int(_number(size, "height", path)), int(_number(size, "width", path)))
    if min(image_hw) < 1:
        raise ValueError(f"{path}: <size> must be positive, got (h, w) = {image_hw}")
    h, w = image_hw
    boxes, names, difficult, truncated = [], [], [], []
    for i, obj in enumerate(root.findall("object")):
        names.append(_text(obj, "name", path))
        bb = obj.find("bndbox")
        if bb is None:
            raise ValueError(f"{path}: object {i} ({names[-1]}) has no <bndbox>")
        x1, y1, x2, y2 = (_number(bb, t, path) for t in ("xmin", "ymin", "xmax", "ymax"))
        if x2 < x1 or y2 < y1:
            raise ValueError(f"{path}: object {i} ({names[-1]}) has xmax < xmin or ymax < ymin: "
                             f"({x1:g}, {y1:g}, {x2:g}, {y2:g})")
        box = np.clip([x1 - 1, y1 - 1, x2, y2], 0, [w, h, w, h])
        if box[2] <= box[0] or box[3] <= box[1]:
            raise ValueError(f"{path}: object {i} ({names[-1]}) lies outside the {w} x {h} image: "
                             f"({x1:g}, {y1:g}, {x2:g}, {y2:g})")
        boxes.append(box)
        difficult.append(_flag(obj, "difficult", path))
        truncated.append(_flag(obj, "truncated", path))
    return {
        "filename": filename,
        "image_hw": image_hw,
        "boxes": np.array(boxes, np.float32).reshape(-1, 4),
        "names": names,
        "difficult": np.array(difficult, bool),
        "truncated": np.array(truncated, bool),
    }


def _coord(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:.3f}".rstrip("0")


def write_voc_xml(path, filename: str, image_hw, boxes, names, difficult=None, truncated=None,
                  folder: str | None = None) -> None:
    """Write one VOC annotation file atomically (temp file + rename); the inverse of read_voc_xml.

    image_hw: (h, w); boxes: (K, 4) continuous `xyxy` pixels, NumPy or torch, each at least
    1 px wide and high (written as 1-based inclusive xmin = x1 + 1, ..., xmax = x2); names: K
    class names; difficult, truncated: optional (K,) bools; folder: the <folder> text (default:
    the name of the folder above Annotations/). Integer boxes round-trip exactly.
    """
    boxes = np.asarray(boxes.detach().cpu() if isinstance(boxes, torch.Tensor) else boxes, np.float64)
    boxes = boxes.reshape(-1, 4) if boxes.size == 0 else boxes
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must have shape (K, 4) in xyxy format, got {boxes.shape}")
    k = len(boxes)
    if not np.isfinite(boxes).all():
        raise ValueError("boxes contains NaN or infinite coordinates")
    if (boxes[:, 2:] - boxes[:, :2] < 1).any():
        raise ValueError("boxes must be at least 1 px wide and high (VOC stores inclusive pixel indices)")
    if len(names) != k:
        raise ValueError(f"names must have one entry per box ({k}), got {len(names)}")
    flags = {}
    for arg, value in (("difficult", difficult), ("truncated", truncated)):
        value = np.zeros(k, bool) if value is None else np.asarray(value, bool).reshape(-1)
        if len(value) != k:
            raise ValueError(f"{arg} must have shape ({k},), got {value.shape}")
        flags[arg] = value
    h, w = (int(v) for v in image_hw)
    ann = ET.Element("annotation")
    ET.SubElement(ann, "folder").text = folder or Path(path).parent.parent.name or "VOC"
    ET.SubElement(ann, "filename").text = filename
    size = ET.SubElement(ann, "size")
    for tag, v in (("width", w), ("height", h), ("depth", 3)):
        ET.SubElement(size, tag).text = str(v)
    ET.SubElement(ann, "segmented").text = "0"
    for i in range(k):
        obj = ET.SubElement(ann, "object")
        ET.SubElement(obj, "name").text = str(names[i])
        ET.SubElement(obj, "pose").text = "Unspecified"
        ET.SubElement(obj, "truncated").text = str(int(flags["truncated"][i]))
        ET.SubElement(obj, "difficult").text = str(int(flags["difficult"][i]))
        bb = ET.SubElement(obj, "bndbox")
        x1, y1, x2, y2 = boxes[i]
        for tag, v in (("xmin", x1 + 1), ("ymin", y1 + 1), ("xmax", x2), ("ymax", y2)):
            ET.SubElement(bb, tag).text = _coord(v)
    ET.indent(ann)
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            ET.ElementTree(ann).write(f, encoding="utf-8", xml_declaration=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class VOCDetection(torch.utils.data.Dataset):
    """A detection data set in the Pascal VOC layout under `root`.

    root: the folder holding JPEGImages/, Annotations/ and ImageSets/Main/<split>.txt.
    Item i -> (image float32 tensor (3, H, W) in [0, 1], target dict: boxes float32 (K, 4)
    `xyxy` pixels, labels int64 (K,) indices into class_names, difficult bool (K,),
    image_id int = i). keep_difficult=False drops the objects marked difficult.
    transforms(image, target) -> (image, target) is applied last, if given.
    """

    def __init__(self, root, split: str = "train", class_names=VOC_CLASSES, transforms=None,
                 keep_difficult: bool = True):
        self.root = Path(root)
        self.class_names = tuple(class_names)
        self.transforms = transforms
        self.keep_difficult = keep_difficult
        listing = self.root / "ImageSets" / "Main" / f"{split}.txt"
        if not listing.is_file():
            have = sorted(p.stem for p in listing.parent.glob("*.txt") if "_" not in p.stem)
            raise FileNotFoundError(f"no split {split!r} under {self.root}: {listing} is missing "
                                    f"(splits found: {have or 'none'})")
        self.split = split
        self.ids = [line.strip() for line in listing.read_text().splitlines() if line.strip()]
        self._index = {name: i for i, name in enumerate(self.class_names)}

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int):
        from ._image import open_image

        xml_path = self.root / "Annotations" / f"{self.ids[i]}.xml"
        ann = read_voc_xml(xml_path)
        unknown = sorted(set(ann["names"]) - self._index.keys())
        if unknown:
            raise ValueError(f"{xml_path}: unknown class name(s) {unknown}; "
                             f"class_names are {self.class_names}")
        keep = np.ones(len(ann["names"]), bool) if self.keep_difficult else ~ann["difficult"]
        labels = np.array([self._index[n] for n in ann["names"]], np.int64)
        pixels = np.asarray(open_image(self.root / "JPEGImages" / ann["filename"]))
        if pixels.shape[:2] != ann["image_hw"]:
            raise ValueError(f"{xml_path}: <size> says (h, w) = {ann['image_hw']} but the image "
                             f"is {pixels.shape[:2]}")
        image = torch.from_numpy(pixels.copy()).permute(2, 0, 1).float().div_(255)
        target = {
            "boxes": torch.from_numpy(ann["boxes"][keep]),
            "labels": torch.from_numpy(labels[keep]),
            "difficult": torch.from_numpy(ann["difficult"][keep]),
            "image_id": int(i),
        }
        if self.transforms is not None:
            image, target = self.transforms(image, target)
        return image, target

    def __repr__(self) -> str:
        return f"VOCDetection({self.root.name!r}, split={self.split!r}, {len(self)} images, {len(self.class_names)} classes)"


def voc2007_folder(root, split: str) -> Path:
    """The folder that holds `split` of VOC 2007 under `root` (see voc2007), extracted or not.

    trainval, train and val come from VOCtrainval_06-Nov-2007.tar, test from VOCtest_06-Nov-2007.tar,
    each extracted to root/<archive name without .tar>. A merged root/VOCdevkit/VOC2007 (as
    torchvision lays it out) is used instead when it already holds the split.
    """
    root = Path(root)
    merged = root / "VOCdevkit" / "VOC2007"
    if (merged / "ImageSets" / "Main" / f"{split}.txt").is_file():
        return merged
    archive = VOC2007_ARCHIVES["test" if split == "test" else "trainval"]
    return root / archive[: -len(".tar")]


def voc2007(root=None, split: str = "trainval", class_names=VOC_CLASSES, **kwargs) -> VOCDetection:
    """Pascal VOC 2007 (`full` profile): download once (checked against the MD5 torchvision
    records), extract safely, then read it.

    root: where the archives and folders go (default data_dir()/"voc2007"); split: "train",
    "val", "trainval" or "test" (test needs VOCtest_06-Nov-2007.tar, about 451 MB; the others
    VOCtrainval_06-Nov-2007.tar, about 460 MB). An archive already downloaded and verified is used
    offline; extraction is atomic (course_lib.datasets.download.extract_archive). Offline without
    the files: OfflineError at once. kwargs go to VOCDetection (transforms, keep_difficult).
    """
    from course_lib import notebook
    from course_lib.paths import data_dir

    from .download import download_remote, extract_archive
    from .sources import remote

    if split not in VOC2007_SPLITS:
        raise ValueError(f"split must be one of {VOC2007_SPLITS}, got {split!r}")
    root = Path(root) if root is not None else data_dir() / "voc2007"
    folder = voc2007_folder(root, split)
    if not folder.is_dir():
        archive = remote(VOC2007_ARCHIVES["test" if split == "test" else "trainval"])
        if not (root / archive.name).is_file():
            notebook.require_online(f"Pascal VOC 2007 ({archive.name}, about {archive.size_mb:g} MB)")
        download_remote(archive, root)
        extract_archive(root / archive.name, folder, member="VOCdevkit/VOC2007")
    return VOCDetection(folder, split, class_names=class_names, **kwargs)


def collate_detection(batch):
    """For DataLoader(collate_fn=...): [(image, target), ...] -> (list of images, list of targets)."""
    images, targets = zip(*batch) if batch else ((), ())
    return list(images), list(targets)
