"""The setup every lesson runs: profiles, offline behaviour, and the identical setup cell."""
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import course_lib.notebook as nbmod

ROOT = Path(__file__).resolve().parent.parent
SETUP_CELL = (ROOT / "notebooks" / "setup_cell.py").read_text().rstrip("\n")
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _config_value(key: str) -> str:
    text = (ROOT / "_config.yml").read_text()
    m = re.search(rf"^\s+{key}:\s*(\S+)\s*$", text, re.M)
    assert m, f"_config.yml has no {key}"
    return m.group(1)


def test_default_profile_is_quick_on_cpu(monkeypatch):
    monkeypatch.delenv("COURSE_PROFILE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    ctx = nbmod.setup(seed=3)
    assert (ctx.profile, ctx.device.type, ctx.seed) == ("quick", "cpu", 3)
    assert str(ctx) == "profile=quick device=cpu seed=3"


def test_a_bare_setup_is_quick_on_an_online_gpu_and_says_how_to_switch(monkeypatch):
    monkeypatch.delenv("COURSE_PROFILE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(nbmod, "is_online", lambda *a, **k: True)
    ctx = nbmod.setup(seed=1)
    assert (ctx.profile, ctx.device.type) == ("quick", "cuda")
    head, note = str(ctx).split("\n")  # exactly one extra line
    assert head == "profile=quick device=cuda seed=1"
    assert "COURSE_PROFILE=full" in note and "setup(profile='full')" in note
    from course_lib.datasets.sources import total_download_gb

    assert f"about {total_download_gb():.1f} GB" in note and "not been measured" in note
    # The only time given is arithmetic on the download size, said as such: no run time is claimed.
    assert re.findall(r"(\d+) minutes", note) == [f"{total_download_gb() * 8e9 / 100e6 / 60:.0f}"]
    assert "at 100 Mbit/s" in note


@pytest.mark.parametrize("requested, env, expected", [
    ("Quick", "full", "quick"), (" FULL ", None, "full"), ("quick\n", "FULL", "quick"),
])
def test_profile_arguments_are_read_like_course_profile(monkeypatch, requested, env, expected):
    monkeypatch.setattr(nbmod, "is_online", lambda *a, **k: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    if env is None:
        monkeypatch.delenv("COURSE_PROFILE", raising=False)
    else:
        monkeypatch.setenv("COURSE_PROFILE", env)
    ctx = nbmod.setup(profile=requested)
    assert ctx.profile == expected and str(ctx).count("\n") == 0


def test_a_bad_profile_argument_names_itself(monkeypatch):
    monkeypatch.delenv("COURSE_PROFILE", raising=False)
    with pytest.raises(ValueError, match="setup\\(profile='fast'\\)"):
        nbmod.setup(profile="fast")
    with pytest.raises(TypeError, match="profile"):
        nbmod.setup(profile=1)


def test_full_offline_fails_fast_with_a_clear_message(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "full")
    monkeypatch.setattr(nbmod, "is_online", lambda *a, **k: False)
    t = time.perf_counter()
    with pytest.raises(nbmod.OfflineError, match="COURSE_PROFILE=quick"):
        nbmod.setup()
    assert time.perf_counter() - t < 5


def test_is_online_never_hangs():
    t = time.perf_counter()
    nbmod.is_online(("10.255.255.1", 9), timeout=0.5)  # unroutable: times out, returns False
    assert time.perf_counter() - t < 3


def test_unknown_profile(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "fast")
    with pytest.raises(ValueError, match="COURSE_PROFILE must be one of"):
        nbmod.setup()


def test_seeding_is_reproducible():
    nbmod.seed_everything(5)
    a = torch.rand(3)
    nbmod.seed_everything(5)
    assert torch.equal(a, torch.rand(3))


def test_setup_cell_carries_the_repository_url_of_config():
    url = _config_value("url")
    assert f'REPO_URL = "{url}"' in SETUP_CELL
    assert f"@{_config_value('branch')}" in SETUP_CELL


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_every_lesson_starts_with_the_setup_cell(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert "".join(code[0]["source"]).rstrip("\n") == SETUP_CELL, f"{path.name}: first code cell differs"
    assert nb["cells"][0]["cell_type"] == "markdown" and "".join(nb["cells"][0]["source"]).startswith("# ")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_lessons_are_stored_executed_and_listed_in_the_toc(path):
    nb = json.loads(path.read_text())
    counts = [c["execution_count"] for c in nb["cells"] if c["cell_type"] == "code" and "".join(c["source"]).strip()]
    assert counts == list(range(1, len(counts) + 1)), f"{path.name}: run it top to bottom in a fresh kernel"
    errors = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", []) if o["output_type"] == "error"]
    assert not errors
    assert f"notebooks/{path.stem}" in (ROOT / "_toc.yml").read_text()


@pytest.mark.skipif(not (ROOT / ".git").exists(), reason="needs a git checkout of the course")
def test_colab_bootstrap_installs_course_lib_into_a_clean_environment(tmp_path):
    """Run the setup cell where course_lib is not importable, installing it from a git URL."""
    # A repository holding exactly the working tree as it is now (committed or not), on branch main.
    clone = tmp_path / "repo"
    listed = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            capture_output=True, check=True).stdout.decode().split("\0")
    for rel in filter(None, listed):
        src = ROOT / rel
        if src.is_file():
            (clone / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, clone / rel)
    git = ["git", "-C", str(clone), "-c", "user.name=course", "-c", "user.email=course@example.org"]
    subprocess.run(["git", "init", "-q", "-b", "main", str(clone)], check=True)
    subprocess.run(git + ["add", "-A"], check=True)
    subprocess.run(git + ["commit", "-q", "-m", "snapshot"], check=True)
    env_dir = tmp_path / "colab"
    # Without its own pip and setuptools, so that the packages exposed below (recent ones, as on Colab) are used.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True)
    py = env_dir / "bin" / "python"
    # Colab already has numpy, torch and friends: expose this environment's packages, but not course_lib.
    site = next(p for p in sys.path if p.endswith("site-packages"))
    env_site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              capture_output=True, text=True, check=True).stdout.strip()
    Path(env_site, "colab_packages.pth").write_text(site + "\n")
    probe = subprocess.run([str(py), "-c", "import course_lib"], capture_output=True, text=True, cwd=tmp_path)
    assert probe.returncode != 0, "course_lib must not be importable before the bootstrap"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update(COURSE_REPO_URL=f"file://{clone}", COURSE_PROFILE="quick", PIP_NO_INDEX="1",
               PIP_NO_BUILD_ISOLATION="0")  # pip reads "0" here as: build with the packages already present
    out = subprocess.run([str(py), "-c", SETUP_CELL], capture_output=True, text=True, env=env, cwd=tmp_path,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "profile=quick" in out.stdout
    where = subprocess.run([str(py), "-c", "import course_lib; print(course_lib.__file__)"],
                           capture_output=True, text=True, cwd=tmp_path, check=True).stdout
    assert str(env_dir) in where, "course_lib must come from the fresh install"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_stored_outputs_carry_no_progress_bars(path):
    # A stored bar holds one machine's timings (`make execute` hides them with COURSE_PROGRESS=0).
    nb = json.loads(path.read_text())
    for i, cell in enumerate(nb["cells"]):
        for out in cell.get("outputs", []):
            text = "".join(out.get("text", ""))
            assert not re.search(r"\d+/\d+ \[\d+:\d\d", text), f"{path.name} cell {i} stores a progress bar"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_setup_cell_input_is_collapsed_in_the_book(path):
    nb = json.loads(path.read_text())
    setup_cell = next(c for c in nb["cells"] if c["cell_type"] == "code")
    assert "hide-input" in setup_cell["metadata"].get("tags", [])


def test_progress_bars_can_be_hidden(monkeypatch, capsys):
    monkeypatch.setenv("COURSE_PROGRESS", "0")
    list(nbmod.progress(range(3), desc="hidden"))
    monkeypatch.setenv("COURSE_PROGRESS", "1")
    list(nbmod.progress(range(3), desc="shown"))
    out = capsys.readouterr().out
    assert "shown" in out and "hidden" not in out


def test_setup_silences_the_non_deterministic_kernel_warnings():
    import warnings

    nbmod.seed_everything(0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.warn("roi_pool_backward_kernel does not have a deterministic implementation, but you set "
                      "'torch.use_deterministic_algorithms(True, warn_only=True)'", UserWarning)
        warnings.warn("another warning", UserWarning)
    assert [str(w.message) for w in caught] == ["another warning"]
