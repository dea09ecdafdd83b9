"""Every file the `full` profile downloads: address, checksum, size, and where the checksum comes from.

No function here touches the network; course_lib.datasets.download fetches and verifies. A
checksum is "md5:<32 hex>" or "sha256:<64 hex>": the MD5 where that is what the publisher (or the
library that records the archive) gives, never a value computed from an untrusted copy. Each
file's checksum can be replaced with the environment variable named in `env` (for a mirror that
serves other bytes), and every address is redirected by $COURSE_MIRROR (see download.mirrored).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

__all__ = ["Remote", "REMOTES", "remote", "checksum_of", "total_download_gb"]


@dataclass(frozen=True)
class Remote:
    """One downloadable file.

    name: the file name it is stored under; url: where it is published; checksum: "md5:..." or
    "sha256:...", None when no trusted value is recorded; size_mb: its size in MB (10^6 bytes),
    rounded as published; lessons: which lessons' `full` profile use it; source: where the
    checksum was recorded from; env: the environment variable that supplies or replaces the
    checksum (same format, or bare hex: 32 digits MD5, 64 digits SHA-256).
    """

    name: str
    url: str
    checksum: str | None
    size_mb: float
    lessons: tuple[int, ...]
    source: str
    env: str


REMOTES = (
    # The MD5 that other projects record for the official archive (the Penn-Fudan page gives no
    # checksum); not yet compared here with a fresh download. $PENNFUDAN_SHA256 replaces it.
    Remote("PennFudanPed.zip", "https://www.cis.upenn.edu/~jshi/ped_html/PennFudanPed.zip",
           "md5:5aaa3dee905cef73325923716e38fc6d", 53.7, (4,),
           "the MD5 other projects record for the official archive", "PENNFUDAN_SHA256"),
    # WIDER FACE: torchvision.datasets.WIDERFace records these MD5s (FILE_LIST, ANNOTATIONS_FILE)
    # for the official archives; the validation images are fetched from the Hugging Face copy of
    # the official files, the annotations from the WIDER FACE site.
    Remote("WIDER_val.zip", "https://huggingface.co/datasets/wider_face/resolve/main/data/WIDER_val.zip",
           "md5:dfa7d7e790efa35df3788964cf0bbaea", 345.0, (1,),
           "torchvision.datasets.WIDERFace.FILE_LIST", "WIDER_VAL_CHECKSUM"),
    Remote("wider_face_split.zip", "http://shuoyang1213.me/WIDERFACE/support/bbx_annotation/wider_face_split.zip",
           "md5:0e3767bcf0e326556d407bf5bff5d27c", 3.6, (1,),
           "torchvision.datasets.WIDERFace.ANNOTATIONS_FILE", "WIDER_SPLIT_CHECKSUM"),
    # Pascal VOC 2007: the MD5s torchvision.datasets.VOCDetection records (DATASET_YEAR_DICT).
    Remote("VOCtrainval_06-Nov-2007.tar",
           "https://thor.robots.ox.ac.uk/pascal/VOC/voc2007/VOCtrainval_06-Nov-2007.tar",
           "md5:c52e279531787c972589f7e41ab4ae64", 460.0, (2, 3),
           "torchvision.datasets.voc.DATASET_YEAR_DICT['2007']", "VOC2007_TRAINVAL_CHECKSUM"),
    Remote("VOCtest_06-Nov-2007.tar",
           "https://thor.robots.ox.ac.uk/pascal/VOC/voc2007/VOCtest_06-Nov-2007.tar",
           "md5:b6e924de25625d8de591ea690078ad9f", 451.0, (2, 3),
           "torchvision.datasets.voc.DATASET_YEAR_DICT['2007-test']", "VOC2007_TEST_CHECKSUM"),
    # Pretrained weights: torchvision checks them itself (the file name carries the start of the
    # SHA-256); sizes are torchvision's `_file_size` metadata.
    Remote("resnet34-b627a593.pth", "https://download.pytorch.org/models/resnet34-b627a593.pth",
           None, 83.3, (2,), "torchvision (hash prefix in the file name)", ""),
    Remote("vgg16-397923af.pth", "https://download.pytorch.org/models/vgg16-397923af.pth",
           None, 527.8, (1, 3), "torchvision (hash prefix in the file name)", ""),
    Remote("fasterrcnn_resnet50_fpn_coco-258fb6c6.pth",
           "https://download.pytorch.org/models/fasterrcnn_resnet50_fpn_coco-258fb6c6.pth",
           None, 159.7, (4,), "torchvision (hash prefix in the file name)", ""),
)


def remote(name: str) -> Remote:
    """The entry of REMOTES stored as `name` (e.g. "WIDER_val.zip")."""
    for r in REMOTES:
        if r.name == name:
            return r
    raise KeyError(f"no remote file named {name!r}; known: {[r.name for r in REMOTES]}")


def checksum_of(r: Remote, given: str | None = None) -> str | None:
    """The checksum to verify `r` with: `given`, else $<r.env>, else the recorded one (or None)."""
    return given or (os.environ.get(r.env, "").strip() if r.env else "") or r.checksum


def total_download_gb(lessons=None) -> float:
    """GB (10^9 bytes) the `full` profile downloads for `lessons` (default: all), each file once."""
    return sum(r.size_mb for r in REMOTES if lessons is None or set(r.lessons) & set(lessons)) / 1000
