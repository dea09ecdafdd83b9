"""A rehearsal of every lesson's `full` data path, offline.

A local HTTP server plays the part of the data sets' hosts (COURSE_MIRROR points every download
and the online probe at it) and serves archives generated in the official layouts
(full_fixtures). Each lesson's `full` path then runs end to end: download, verify, extract, read,
and where the lesson trains, a few steps with the smallest backbone the code allows and an
evaluation. The checksums recorded for the real archives are replaced, through the environment
variables the course documents for that, by those of the generated copies.

Pretrained weights are not served: the last tests build each model's real torchvision architecture
on the `meta` device and check that the loader of each model accepts the checkpoint's keys and
shapes, with no weight bytes.
"""
import dataclasses
import hashlib

import numpy as np
import pytest
import torch

import full_fixtures as ff
from course_lib import mp5 as head
from course_lib import notebook
from course_lib.datasets import download as dl
from course_lib.datasets import mp5, sources, voc
from course_lib.datasets import pennfudan as pf

CHECKSUM_ENV = {"PennFudanPed.zip": "PENNFUDAN_SHA256", "WIDER_val.zip": "WIDER_VAL_CHECKSUM",
                "wider_face_split.zip": "WIDER_SPLIT_CHECKSUM", "VOCtrainval_06-Nov-2007.tar": "VOC2007_TRAINVAL_CHECKSUM",
                "VOCtest_06-Nov-2007.tar": "VOC2007_TEST_CHECKSUM"}


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    """The generated archives, served where COURSE_MIRROR maps their official addresses; yields
    (base URL, {archive name: its SHA-256})."""
    made = tmp_path_factory.mktemp("archives")
    files = [ff.penn_fudan_zip(made / "PennFudanPed.zip"), *ff.wider_zips(made), *ff.voc_tars(made)]
    root = tmp_path_factory.mktemp("mirror")
    for f in files:
        ff.place(root, sources.remote(f.name).url, f)
    with ff.http_server(root) as url:
        yield url, {f.name: ff.sha256(f) for f in files}


@pytest.fixture
def full(mirror, tmp_path, monkeypatch):
    """A fresh COURSE_DATA, COURSE_MIRROR set, the generated archives' checksums supplied."""
    url, sums = mirror
    monkeypatch.setenv("COURSE_MIRROR", url)
    monkeypatch.setenv("COURSE_DATA", str(tmp_path / "data"))
    for name, env in CHECKSUM_ENV.items():
        assert sources.remote(name).env == env
        monkeypatch.setenv(env, sums[name])
    return tmp_path / "data"


def test_the_mirror_is_what_online_means(full):
    assert notebook.is_online()
    assert notebook.choose_profile("full") == "full"


def test_the_checksums_of_the_official_archives_are_recorded():
    for name in CHECKSUM_ENV:
        r = sources.remote(name)
        algo, digest = dl.parse_checksum(r.checksum)
        assert algo in ("md5", "sha256") and r.source and r.size_mb > 1
    assert sources.remote("WIDER_val.zip").size_mb == 345 and sources.remote("wider_face_split.zip").size_mb == 3.6


def test_lesson1_wider_face_into_mp5_and_training_steps(full, capsys):
    """Lesson 1: WIDER FACE validation images and annotations -> 224 x 224 crops -> the MP5 HDF5 files."""
    profile = dataclasses.replace(mp5.PROFILES["full"], name="rehearsal", n_images=3, n_train=2, backbone="random")
    d = mp5.load(profile)
    assert sorted((full / "wider_face").iterdir()) == sorted(
        full / "wider_face" / n for n in ("WIDER_val", "WIDER_val.zip", "wider_face_split", "wider_face_split.zip"))
    assert not (full / "wider_face" / "WIDER_train").exists()          # only the validation images
    assert d["images"].shape == (3, 224, 224, 3) and d["features"].shape == (3, 8, 8, 512) and d["n_train"] == 2
    # The first usable images in file order: zero-face entries and an image with only invalid faces skipped.
    faces = (d["rects"][..., 2] > 0).sum(1)
    assert faces.tolist() == [2, 2, 1] and (d["rects"][..., 9] == 0).all()
    np.testing.assert_array_equal(d["rects"][1, 1, 4:], [2, 0, 1, 2, 0, 0])  # blur expr illum occl pose invalid
    assert d["targets"][..., 4].sum() >= faces.sum()
    # A few Adam steps of the lesson's NumPy head on the training part, then recall on all.
    X, Y = d["features"][:2].astype(np.float64), d["targets"][:2].astype(np.float64)
    W1, W2 = (w.astype(np.float64) for w in (d["W1"], d["W2"]))
    cols, state, losses = head.im2col(X, 3, 3, 1), head.adam_init(W1, W2), []
    for _ in range(3):
        W1, W2, state, bce, mse = head.training_step(cols, Y, W1, W2, state, 1e-3)
        losses.append(bce + mse)
    assert np.isfinite(losses).all() and losses[-1] < losses[0]
    _, Yhat = head.forwardprop(d["features"].astype(np.float64), W1, W2)
    assert np.isfinite(Yhat).all() and len(head.detect(Yhat[0], 5, d["anchors"])) == 5
    # Offline now: everything is on disk, nothing is fetched again.
    notebook_is_online = notebook.is_online
    try:
        notebook.is_online = lambda *a, **k: False
        assert mp5.load(profile)["images"].shape == (3, 224, 224, 3)
    finally:
        notebook.is_online = notebook_is_online


def test_lesson2_ssd_on_voc2007(full):
    from course_lib import metrics
    from course_lib.models import ssd
    from course_lib.models.ssd.profile import FULL, load_split
    from course_lib.models.ssd.train import detect, train_ssd

    profile = dataclasses.replace(FULL, image_size=128, backbone="small", batch_size=4, head_width=16)
    train, names = load_split(profile, "train")
    test, _ = load_split(profile, "test")
    assert names == voc.VOC_CLASSES and train.images.shape == (8, 3, 128, 128) and test.images.shape[0] == 4
    assert (full / "voc2007" / "VOCtrainval_06-Nov-2007" / "JPEGImages").is_dir()
    assert (full / "voc2007" / "VOCtest_06-Nov-2007" / "ImageSets" / "Main" / "test.txt").is_file()
    torch.manual_seed(0)
    backbone = ssd.small_backbone(8)
    model = ssd.Detector(backbone, ssd.MultiScaleHead(backbone.out_channels, len(names), k=9,
                                                     width=profile.head_width, dropout=0.0))
    anchors = ssd.ssd_anchors(**ssd.MULTI_SCALE)
    history = train_ssd(model, train.images, train.boxes, train.labels, anchors, 1, profile.lr,
                        profile.batch_size, symmetries=profile.symmetries, threshold=profile.threshold)
    assert len(history) == 1 and np.isfinite(history).all()  # one value per epoch
    preds = detect(model, test.images, anchors)
    mAP, _ = metrics.mean_average_precision(preds, test.targets(), iou_threshold=0.5)
    assert 0 <= mAP <= 1


def test_lesson3_faster_rcnn_on_voc2007(full):
    from course_lib.models import faster_rcnn as fr
    from course_lib.models.faster_rcnn import train as fr_train
    from course_lib.models.faster_rcnn.proposals import ProposalConfig

    profile = dataclasses.replace(
        fr.FULL, image_size=96, backbone="small", widths=(8, 16, 32), out_channels=32, anchor_scales=(2.0, 4.0, 8.0),
        rpn_mid=32, head_hidden=32, roi_samples=16, epochs=1, batch_size=4, lr=1e-3,
        proposals=ProposalConfig(pre_nms_train=200, post_nms_train=50, pre_nms_test=200, post_nms_test=50,
                                 nms_threshold=0.7, min_size=2.0))
    train_data, test_data = fr_train.load_split(profile, "train"), fr_train.load_split(profile, "test")
    assert len(train_data) == 8 and len(test_data) == 4 and train_data.class_names == voc.VOC_CLASSES
    image, target = train_data[0]
    assert image.shape == (3, 96, 96) and target["boxes"].shape[1] == 4
    torch.manual_seed(0)
    model = fr.build_faster_rcnn(profile, num_classes=len(train_data.class_names))
    history = fr_train.train_detector(model, train_data, profile.epochs, profile.batch_size, profile.lr)
    assert all(len(v) == 2 and np.isfinite(v).all() for v in history.values())
    quality = fr_train.evaluate(fr_train.predict(model, test_data), test_data, k=50)
    assert 0 <= quality["recall"] <= 1 and 0 <= quality["map"] <= 1


def test_lesson4_finetuning_on_penn_fudan(full):
    from course_lib.models.finetune import detector, evaluate
    from course_lib.models.finetune import train as finetune

    profile = dataclasses.replace(detector.FULL, backbone="tiny", image_size=64, width=8, max_objects=2,
                                  style="plain", n_source=4, pretrain_iters=2, finetune_iters=2, n_test=2)
    source = finetune.source_detector(profile)          # the tiny stand-in for the COCO detector
    root = finetune.target_root(profile)
    assert root == full / "PennFudanPed" and (full / "PennFudanPed.zip").is_file()
    every = pf.PennFudanDataset(root)
    assert every.classes == pf.PERSON and len(every) == 8
    train_idx, test_idx = pf.split(len(every), profile.n_test)
    train_set = pf.PennFudanDataset(root, pf.train_transforms(), train_idx)
    test_set = pf.PennFudanDataset(root, pf.eval_transforms(), test_idx)
    model = detector.replace_predictor(source, num_classes=2)
    history = finetune.fit(model, finetune.loader(train_set, profile.batch_size, True), profile.finetune_iters,
                           profile.lr, warmup=1, desc="rehearsal")
    assert all(len(v) == 2 and np.isfinite(v).all() for v in history.values())
    preds = finetune.predict(model, test_set)
    stats = evaluate.coco_stats(preds, finetune.as_numpy_targets(test_set), num_classes=1)
    assert 0 <= stats["AP50"] <= 1 or stats["AP50"] == -1
    # The archive is kept: the folder can be rebuilt offline from it.
    import shutil

    shutil.rmtree(root)
    notebook_is_online = notebook.is_online
    try:
        notebook.is_online = lambda *a, **k: False
        train, test = pf.pennfudan(n_test=2)
        assert (len(train), len(test)) == (6, 2)
    finally:
        notebook.is_online = notebook_is_online


def test_a_wrong_download_is_refused_and_names_its_variable(full, monkeypatch):
    monkeypatch.setenv("WIDER_SPLIT_CHECKSUM", "0" * 32)
    from course_lib.datasets import wider

    with pytest.raises(dl.ChecksumError, match="WIDER_SPLIT_CHECKSUM"):
        wider.wider_face()
    assert not (full / "wider_face" / "wider_face_split.zip").exists()
    assert not [p for p in (full / "wider_face").iterdir() if p.name.startswith(".")]


def test_a_download_cut_short_is_reported(mirror, tmp_path, monkeypatch):
    import http.server
    import threading

    class Short(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"x" * 400)

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Short)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("COURSE_MIRROR", f"http://127.0.0.1:{server.server_address[1]}")
        with pytest.raises(OSError, match="stopped after 400 of 1000 bytes"):
            dl.download(dl.mirrored("https://example.org/a.zip"), tmp_path / "a.zip", "0" * 64)
        assert list(tmp_path.iterdir()) == []
    finally:
        server.shutdown()
        server.server_close()


# ---- pretrained weights: keys and shapes on the meta device, and the download through the mirror ----

def _frozen_bn_fasterrcnn():
    from torchvision.models import resnet50
    from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
    from torchvision.models.detection.faster_rcnn import FasterRCNN
    from torchvision.ops import misc

    return FasterRCNN(_resnet_fpn_extractor(resnet50(norm_layer=misc.FrozenBatchNorm2d), 3), num_classes=91)


@pytest.fixture
def meta_checkpoints(tmp_path, monkeypatch):
    """The checkpoints' keys and shapes, from torchvision's architectures on the meta device, served
    to torchvision's loader in place of the files (which are marked as cached)."""
    import torchvision
    from torchvision.models import ResNet34_Weights, VGG16_Weights, resnet34, vgg16
    from torchvision.models.detection import FasterRCNN_ResNet50_FPN_Weights

    with torch.device("meta"):
        expected = {ResNet34_Weights.IMAGENET1K_V1.url: resnet34().state_dict(),
                    VGG16_Weights.IMAGENET1K_V1.url: vgg16().state_dict(),
                    FasterRCNN_ResNet50_FPN_Weights.COCO_V1.url: _frozen_bn_fasterrcnn().state_dict()}
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    (tmp_path / "torch" / "hub" / "checkpoints").mkdir(parents=True)
    for url in expected:
        (tmp_path / "torch" / "hub" / "checkpoints" / url.rsplit("/", 1)[1]).write_bytes(b"")
    asked = []

    def load(url, *args, **kwargs):
        asked.append(url.rsplit("/", 1)[1])
        return expected[url]

    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", load)
    monkeypatch.setattr(notebook, "is_online", lambda *a, **k: pytest.fail("cached weights need no network"))
    return asked


def test_pretrained_weights_fit_each_model_on_the_meta_device(meta_checkpoints):
    from course_lib.models import faster_rcnn as fr
    from course_lib.models import ssd
    from course_lib.models.finetune import detector

    with torch.device("meta"):
        body = mp5.vgg16_body("imagenet")                               # lesson 1
        assert body[-1].__class__.__name__ == "MaxPool2d" and body[-3].weight.shape == (512, 512, 3, 3)
        resnet = ssd.resnet34_backbone()                                # lesson 2
        assert resnet.out_channels == 512 and resnet[-1][-1].conv2.weight.shape == (512, 512, 3, 3)
        features, fc = fr.vgg16_backbone(pretrained=True)               # lesson 3 (with fc6 / fc7)
        assert fc[0].weight.shape == (4096, 25088) and fc[2].weight.shape == (4096, 4096)
        model = fr.build_faster_rcnn(fr.FULL, num_classes=20)
        assert model.head.fc1.weight.shape == (4096, 25088)
        coco = detector.build_detector(detector.FULL, num_classes=91)   # lesson 4
        assert coco.roi_heads.box_predictor.cls_score.weight.shape == (91, 1024)
    assert all(p.is_meta for p in coco.parameters())
    assert meta_checkpoints == ["vgg16-397923af.pth", "resnet34-b627a593.pth", "vgg16-397923af.pth",
                                "vgg16-397923af.pth", "fasterrcnn_resnet50_fpn_coco-258fb6c6.pth"]


def test_weights_are_downloaded_through_the_mirror_and_checked(tmp_path, monkeypatch):
    payload = b"pretend weights"
    digest = hashlib.sha256(payload).hexdigest()

    class Weights:  # the two attributes of a torchvision WeightsEnum member that are used
        url = f"https://download.pytorch.org/models/tiny-{digest[:8]}.pth"
        meta = {"_file_size": 0.0}

    class Wrong(Weights):
        url = "https://download.pytorch.org/models/tiny-00000000.pth"

    root = tmp_path / "mirror"
    for w in (Weights, Wrong):
        (tmp_path / "payload").write_bytes(payload)
        ff.place(root, w.url, tmp_path / "payload")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with ff.http_server(root) as url:
        monkeypatch.setenv("COURSE_MIRROR", url)
        assert dl.fetch_pretrained(Weights) is Weights
        assert (tmp_path / "torch" / "hub" / "checkpoints" / Weights.url.rsplit("/", 1)[1]).read_bytes() == payload
        with pytest.raises(RuntimeError, match="hash"):
            dl.fetch_pretrained(Wrong)
    assert not (tmp_path / "torch" / "hub" / "checkpoints" / "tiny-00000000.pth").exists()
