"""Training and inference for torchvision detectors, and the data each profile of lesson 4 uses.

`fit` is the classic recipe: SGD with momentum and weight decay, a linear warm-up then a step
LR schedule, one progress bar, and the four torchvision losses logged per iteration.
`source_detector` gives the model fine-tuning starts from: in `quick` a tiny detector
pre-trained on the synthetic source shapes (cached under course_lib.paths.data_dir(), keyed by
the profile, so a second run loads it), in `full` torchvision's COCO weights.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from ...datasets import pennfudan as pf
from ..weights_cache import load_weights, save_weights
from . import detector

__all__ = ["LOSS_KEYS", "SamplesDataset", "loader", "fit", "predict", "source_detector", "source_classes",
           "target_root", "pretrain_cache_path", "as_numpy_targets"]

LOSS_KEYS = ("loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg")


class SamplesDataset(torch.utils.data.Dataset):
    """In-memory samples (dict(image (H, W, 3) uint8, boxes (K, 4) `xyxy` px, labels (K,) 0-based))
    as torchvision detection items: (image float32 (3, H, W) in [0, 1], dict(boxes, labels 1..))."""

    def __init__(self, samples, transforms=None):
        self.samples = list(samples)
        self.transforms = transforms

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        from torchvision import tv_tensors

        s = self.samples[i]
        h, w = s["image"].shape[:2]
        image = tv_tensors.Image(torch.from_numpy(s["image"]).permute(2, 0, 1))
        target = dict(
            boxes=tv_tensors.BoundingBoxes(torch.as_tensor(s["boxes"], dtype=torch.float32),
                                           format="XYXY", canvas_size=(h, w)),
            labels=torch.as_tensor(s["labels"], dtype=torch.int64) + 1,
        )
        if self.transforms is not None:
            image, target = self.transforms(image, target)
        if not image.is_floating_point():
            image = image.float() / 255
        return image, target


def loader(dataset, batch_size: int, shuffle: bool, seed: int = 0):
    """A DataLoader with the detection collate (tuples of images and targets), seeded shuffling."""
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle, collate_fn=pf.collate, num_workers=0,
        generator=torch.Generator().manual_seed(seed),
    )


def _plain(t: dict, device) -> dict:
    # Only boxes and labels reach the detector (masks would be resized for nothing), as plain tensors.
    return {k: t[k].as_subclass(torch.Tensor).to(device) for k in ("boxes", "labels")}


def fit(model, data, iterations: int, lr: float, momentum: float = 0.9, weight_decay: float = 1e-4,
        lr_step: float = 0.75, lr_gamma: float = 0.1, warmup: int = 50, device="cpu", seed: int = 0,
        desc: str = "train") -> dict[str, list[float]]:
    """Train `model` for `iterations` batches drawn from the DataLoader `data` (cycled).

    Only parameters with requires_grad are updated. The LR rises linearly over `warmup` batches,
    then is multiplied by `lr_gamma` after `lr_step` of the iterations. Seeds torch with `seed`
    first, so a run is repeatable whatever ran before. Returns {loss name: list of floats per
    iteration} for the keys in LOSS_KEYS.
    """
    from ...notebook import progress

    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    torch.manual_seed(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    step = max(1, int(lr_step * iterations))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: min(1.0, (i + 1) / max(1, warmup)) * (lr_gamma if i >= step else 1.0))
    model.to(device).train()
    history = {k: [] for k in LOSS_KEYS}
    bar = progress(total=iterations, desc=desc)
    done = 0
    while done < iterations:
        for images, targets in data:
            losses = model([im.to(device) for im in images], [_plain(t, device) for t in targets])
            loss = sum(losses[k] for k in LOSS_KEYS)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            for k in LOSS_KEYS:
                history[k].append(losses[k].item())
            bar.update(1)
            done += 1
            if done == iterations:
                break
    bar.close()
    model.eval()
    return history


@torch.no_grad()
def predict(model, dataset, batch_size: int = 8, device="cpu") -> list[dict]:
    """Detections for every item of `dataset`, in order: a list of dict(boxes (K, 4) float32
    `xyxy` px, scores (K,) float32, labels (K,) int64 1..) as NumPy arrays."""
    model.to(device).eval()
    out = []
    for images, _ in loader(dataset, batch_size, shuffle=False):
        for d in model([im.to(device) for im in images]):
            out.append({k: d[k].cpu().numpy() for k in ("boxes", "scores", "labels")})
    return out


def pretrain_cache_path(profile: detector.DetectorProfile, seed: int = 0) -> Path:
    """Where `source_detector` keeps the pre-trained weights of `profile` (a .pt state dict)."""
    from ...paths import data_dir

    # The folder keeps the name it was first written under, so weights trained before still load.
    return data_dir() / "tv_detector" / f"source-{profile.name}-{profile.key()}-seed{seed}.pt"


def source_detector(profile: detector.DetectorProfile, device="cpu", seed: int = 0, cache: bool = True):
    """The trained detector fine-tuning starts from.

    `quick`: the tiny detector trained on `profile.n_source` synthetic images of
    shapes.SOURCE_CLASSES for `profile.pretrain_iters` batches; loaded from the cache when present
    (torch.load(weights_only=True)), else trained and written there atomically. A cache file that
    cannot be loaded (truncated, not a state dict of this model, NaN weights) is named in a
    one-line message and trained again.
    `full`: fasterrcnn_resnet50_fpn with COCO weights. Returns the model in eval mode.
    """
    if profile.backbone != "tiny":
        return detector.build_detector(profile, num_classes=91).to(device).eval()
    from ...datasets import shapes

    model = detector.build_detector(profile, num_classes=len(shapes.SOURCE_CLASSES) + 1)
    path = pretrain_cache_path(profile, seed)
    if cache and path.is_file():
        initial = {k: v.clone() for k, v in model.state_dict().items()}
        problem = load_weights(model, path)
        if problem is None:
            return model.to(device).eval()
        print(f"course_lib: the cached source detector {path} cannot be loaded ({problem}); training it again")
        model.load_state_dict(initial)  # train from the same start as a run without the cache
    samples = shapes.make_shapes(profile.n_source, image_size=profile.image_size,
                                 classes=shapes.SOURCE_CLASSES, seed=seed + 1000,
                                 max_objects=profile.max_objects, style=profile.style)
    data = loader(SamplesDataset(samples, pf.train_transforms()), profile.batch_size, True, seed)
    fit(model, data, profile.pretrain_iters, profile.lr, profile.momentum, profile.weight_decay,
        profile.lr_step, profile.lr_gamma, device=device, seed=seed, desc="pre-train (source)")
    if cache:
        save_weights(model, path)
    return model.eval()


def source_classes(profile: detector.DetectorProfile) -> tuple[str, ...]:
    """Names of the classes `source_detector(profile)` predicts, indexed by its labels (0 is the
    background): `quick` the synthetic source shapes, `full` COCO's 91 categories (with "N/A" gaps)."""
    if profile.backbone != "tiny":
        from torchvision.models.detection import FasterRCNN_ResNet50_FPN_Weights

        return tuple(FasterRCNN_ResNet50_FPN_Weights.DEFAULT.meta["categories"])
    from ...datasets import shapes

    return ("__background__", *shapes.SOURCE_CLASSES)


def target_root(profile: detector.DetectorProfile, seed: int = 0) -> Path:
    """The folder of the target data set in the Penn-Fudan layout.

    `quick`: profile.n_target synthetic images of shapes.TARGET_CLASSES, written (once) under
    data_dir() to a temporary folder renamed into place, so concurrent runs never read each other's
    half-written files (a folder left incomplete by an older, interrupted version is rebuilt);
    `full`: real Penn-Fudan, downloaded with its checksum and extracted.
    """
    from ...paths import data_dir

    if profile.data == "pennfudan":
        return pf.pennfudan_root(data_dir())
    from ...datasets import shapes

    root = data_dir() / f"shapes_target_{profile.key()}_{profile.n_target}_{seed}"
    if not (root / pf.CLASSES_FILE).is_file():
        if root.exists():  # written in place by an older version and interrupted: never complete
            from ...datasets._atomic import remove, temp_path

            print(f"course_lib: {root} is incomplete (an interrupted run); writing it again")
            stale = temp_path(root)
            os.rename(root, stale)
            remove(stale)
        samples = shapes.make_shapes(profile.n_target, image_size=profile.image_size,
                                     classes=shapes.TARGET_CLASSES, seed=seed + 2000,
                                     max_objects=profile.max_objects, style=profile.style)
        pf.write_pennfudan_layout(root, samples, shapes.TARGET_CLASSES, prefix="Shapes", exist_ok=True)
    return root


def as_numpy_targets(dataset) -> list[dict]:
    """Ground truth of every item (no transforms): list of dict(boxes (G, 4) `xyxy` px, labels (G,))."""
    return [{k: v for k, v in dataset.load(i)[1].items() if k in ("boxes", "labels")}
            for i in range(len(dataset))]

