"""The quick profile's pretrained backbone of lesson 2: cell labels, determinism and the cache."""
import numpy as np
import pytest
import torch

from course_lib.datasets import shapes
from course_lib.models import ssd
from course_lib.models.ssd import pretrain
from course_lib.models.ssd.pretrain import PretrainConfig, cell_labels, freeze, pretrained_backbone

TINY = PretrainConfig(n_images=16, image_size=64, max_objects=2, epochs=1, batch_size=8, width=4)


def _cell_labels_loop(masks, labels, cell, background):
    H, W = masks.shape[1:]
    out = np.zeros((H // cell, W // cell), np.int64)
    for i in range(H // cell):
        for j in range(W // cell):
            counts = {background: 0}
            for m, l in zip(masks, labels):
                counts[int(l)] = counts.get(int(l), 0) + int(m[i * cell:(i + 1) * cell, j * cell:(j + 1) * cell].sum())
            counts[background] += cell * cell - sum(int(m[i * cell:(i + 1) * cell, j * cell:(j + 1) * cell].sum())
                                                    for m in masks)
            best = max(counts.values())
            out[i, j] = min(k for k, v in counts.items() if v == best)
    return out


@pytest.mark.parametrize("index", range(6))
def test_cell_labels_match_a_loop_over_cells(index):
    s = shapes.make_shapes(index + 1, 64, shapes.SOURCE_CLASSES, seed=3, max_objects=4, style="plain")[index]
    got = cell_labels(s["masks"], s["labels"], 16, 6)
    np.testing.assert_array_equal(got, _cell_labels_loop(s["masks"], s["labels"], 16, 6))
    assert got.shape == (4, 4) and got.dtype == np.int64


def test_cell_labels_edge_cases():
    masks = np.zeros((2, 4, 4), bool)
    masks[0, :2, :2] = True            # label 1 fills the top-left cell
    masks[1, 2:, 2:3] = True           # label 0 covers half of the bottom-right cell: a tie with background
    np.testing.assert_array_equal(cell_labels(masks, np.array([1, 0]), 2, 5), [[1, 5], [5, 0]])
    np.testing.assert_array_equal(cell_labels(np.zeros((0, 4, 4), bool), np.zeros(0, np.int64), 2, 3),
                                  np.full((2, 2), 3))
    with pytest.raises(ValueError, match="cell"):
        cell_labels(masks, np.array([1, 0]), 3, 5)
    with pytest.raises(ValueError, match="masks"):
        cell_labels(masks[0], np.array([1]), 2, 5)


def test_segmentation_data_shapes_and_labels():
    images, cells = pretrain.segmentation_data(TINY)
    assert images.shape == (16, 3, 64, 64) and images.dtype == torch.float32
    assert 0 <= images.min() and images.max() <= 1
    assert cells.shape == (16, 4, 4) and cells.dtype == torch.int64
    assert cells.min() >= 0 and cells.max() <= len(TINY.classes)
    assert (cells < len(TINY.classes)).any()          # some cells hold a shape


def test_key_changes_with_every_setting():
    keys = {TINY.key()}
    for field, value in (("n_images", 17), ("seed", 5), ("epochs", 2), ("lr", 1e-3), ("width", 8),
                         ("classes", shapes.SOURCE_CLASSES[:3]), ("max_objects", 3), ("cell", 32)):
        keys.add(PretrainConfig(**{**TINY.__dict__, field: value}).key())
    assert len(keys) == 9


def test_pretraining_is_deterministic_and_cached(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("course_lib.paths.data_dir", lambda: tmp_path)
    torch.set_num_threads(1)
    first = pretrained_backbone("small", config=TINY)
    path = pretrain.pretrain_cache_path(TINY)
    assert not first.training and not pretrained_backbone("small", config=TINY).training   # trained, loaded
    assert path.is_file() and path.parent == tmp_path / "ssd_backbone"
    again, _ = pretrain.pretrain_small_backbone(TINY)         # trained again, not read from the cache
    for (k, a), b in zip(first.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), k
    path.write_bytes(b"\0\1" * 50)                              # a damaged cache is named and replaced
    replaced = pretrained_backbone("small", config=TINY)
    assert "cannot be loaded" in capsys.readouterr().out
    loaded = pretrained_backbone("small", config=TINY)
    for (k, a), b in zip(replaced.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), k
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]   # no temporaries left


def test_pretraining_learns_the_cells():
    """A short pretraining ends well below the loss of a uniform guess over the 7 labels."""
    config = PretrainConfig(n_images=64, image_size=64, max_objects=3, epochs=4, batch_size=8, width=8)
    _, history = pretrain.pretrain_small_backbone(config)
    assert history[-1] < 0.75 * history[0] and history[-1] < 0.8 * np.log(len(config.classes) + 1)


def test_freeze_and_unknown_backbone():
    net = freeze(ssd.small_backbone(4))
    assert not any(p.requires_grad for p in net.parameters())
    with pytest.raises(ValueError, match="backbone"):
        pretrained_backbone("vgg")


def test_presence_head_is_the_max_over_cells():
    head = ssd.PresenceHead(8, 3, width=4).eval()
    x = torch.randn(2, 8, 5, 5)
    per_cell = head.body[1](head.body[0](x))
    torch.testing.assert_close(head(x), per_cell.amax((-2, -1)))
    assert head(x).shape == (2, 3)
