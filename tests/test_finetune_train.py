"""course_lib.models.finetune.train: the cached source detector and the target data set on disk."""
import dataclasses

import pytest
import torch

from course_lib.datasets import pennfudan as pf
from course_lib.models.finetune import detector, train

TINY = dataclasses.replace(detector.QUICK, name="tiny-test", n_source=4, n_target=6, n_test=2, pretrain_iters=2,
                           image_size=64, width=16, batch_size=2)


@pytest.fixture
def data(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA", str(tmp_path))
    return tmp_path


@pytest.mark.parametrize("damage", ["truncate", "nan", "garbage"])
def test_a_broken_source_cache_is_named_and_trained_again(data, capsys, damage):
    torch.manual_seed(0)  # as the setup cell does
    train.source_detector(TINY)
    path = train.pretrain_cache_path(TINY)
    good = torch.load(path, weights_only=True)
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "nan":
        torch.save({k: v.clone().fill_(float("nan")) if v.is_floating_point() else v for k, v in good.items()}, path)
    else:
        path.write_bytes(b"not a checkpoint")
    capsys.readouterr()
    torch.manual_seed(0)
    model = train.source_detector(TINY)
    out = capsys.readouterr().out
    assert str(path) in out and "training it again" in out
    rebuilt = torch.load(path, weights_only=True)
    assert all(torch.equal(rebuilt[k], good[k]) for k in good)  # seeded: the same weights again
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]


def test_target_root_rebuilds_a_folder_an_interrupted_run_left(data, capsys):
    root = train.target_root(TINY)
    names = sorted(p.name for p in (root / "PNGImages").iterdir())
    (root / pf.CLASSES_FILE).unlink()  # as an older version left it when killed before the end
    (root / "PNGImages" / names[-1]).unlink()
    again = train.target_root(TINY)
    assert again == root and "incomplete" in capsys.readouterr().out
    assert sorted(p.name for p in (root / "PNGImages").iterdir()) == names and (root / pf.CLASSES_FILE).is_file()


def _count(root) -> int:
    ds = pf.PennFudanDataset(root)
    return sum(len(ds.load(i)[1]["labels"]) for i in range(len(ds)))


def _fast(barrier, done, queue):
    """Builds (or finds) the target set, then reads it again and again until the slow one is done."""
    try:
        barrier.wait()
        root = train.target_root(TINY)
        total = _count(root)
        while not done.is_set():
            total = _count(root)
        queue.put(total)
    except Exception as err:
        queue.put(repr(err))


def _slow(barrier, done, queue):
    """Builds the same set at the same time, on a slow disk (every PNG written in two halves)."""
    import full_fixtures as ff

    try:
        with ff.slow_png_writes():
            barrier.wait()
            root = train.target_root(TINY)
        queue.put(_count(root))
    except Exception as err:
        queue.put(repr(err))
    finally:
        done.set()


def test_two_processes_building_the_target_data_at_once(data):
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    barrier, done, queue = ctx.Barrier(2), ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=f, args=(barrier, done, queue)) for f in (_fast, _slow)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert all(isinstance(r, int) for r in results) and results[0] == results[1], results
    assert not [p for p in data.iterdir() if p.name.startswith(".")]
