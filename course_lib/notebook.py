"""What the setup cell of every lesson calls: seeds, device and profile.

The profile is ``quick`` (offline, CPU or GPU: generated data, small models from scratch) or
``full`` (online, best on a GPU: real data sets and pretrained weights). ``quick`` is the default
everywhere, a GPU included; ``full`` is opt-in, with the environment variable
``COURSE_PROFILE=full`` or ``setup(profile="full")`` (both case-insensitive). On a GPU, the
Context that `setup` returns carries one line saying how to switch and what `full` downloads.

``COURSE_MIRROR=http://host:port`` sends every download of the course, and the probe that decides
whether the machine is online, to that server instead (see course_lib.datasets.download.mirrored):
a local copy of the files, or the offline rehearsal of the tests.
"""
from __future__ import annotations

import os
import random
import socket
import urllib.parse
import warnings
from dataclasses import dataclass

import numpy as np
import torch

PROFILES = ("quick", "full")
# A host the `full` profile downloads from; reaching it is what "online" means here.
ONLINE_PROBE = ("download.pytorch.org", 443)
MIRROR_ENV = "COURSE_MIRROR"


class OfflineError(RuntimeError):
    """Raised when the `full` profile is asked for without a network connection."""


@dataclass(frozen=True)
class Context:
    """What a lesson needs to know about where it runs.

    profile: "quick" or "full"; device: a torch.device; seed: the seed everything was set with;
    note: "" or one line for the reader (on a GPU in `quick`: how to switch to `full`).
    """

    profile: str
    device: torch.device
    seed: int
    note: str = ""

    def __str__(self) -> str:
        head = f"profile={self.profile} device={self.device.type} seed={self.seed}"
        return f"{head}\n{self.note}" if self.note else head


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch, and make torch pick deterministic kernels where it can."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    # On a GPU a few backward kernels (roi_pool, grid_sampler_2d, adaptive_avg_pool2d) have no
    # deterministic version, and torch warns about each. GPU runs are not bit-reproducible anyway:
    # their trained figures are asserted within calibrated bands, so these warnings are silenced.
    warnings.filterwarnings("ignore", message=".*does not have a deterministic implementation.*")
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def probe_address() -> tuple[str, int]:
    """The (host, port) whose reachability means "online": $COURSE_MIRROR's when set, else ONLINE_PROBE."""
    mirror = os.environ.get(MIRROR_ENV, "").strip()
    if not mirror:
        return ONLINE_PROBE
    url = urllib.parse.urlsplit(mirror)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ValueError(f"{MIRROR_ENV} must be an http(s) URL such as http://127.0.0.1:8000, got {mirror!r}")
    return url.hostname, url.port or (443 if url.scheme == "https" else 80)


def is_online(host: tuple[str, int] | None = None, timeout: float = 3.0) -> bool:
    """True when a TCP connection to `host` (default: probe_address()) opens within `timeout`
    seconds (never hangs longer)."""
    try:
        with socket.create_connection(host or probe_address(), timeout=timeout):
            return True
    except OSError:
        return False


def require_online(what: str) -> None:
    """Stop at once, with a message that says what to do, when `what` cannot be downloaded."""
    if not is_online():
        where = os.environ.get(MIRROR_ENV, "").strip()
        raise OfflineError(
            f"The 'full' profile needs the internet to download {what}, and no connection could be "
            + (f"opened to the mirror {MIRROR_ENV}={where}. " if where else "opened. ")
            + "Run with COURSE_PROFILE=quick (the default) to use the generated data, "
            "or connect this machine (on Colab: Runtime > Change runtime type > GPU)."
        )


def choose_profile(requested: str | None = None) -> str:
    """The profile to run: `requested`, else $COURSE_PROFILE, else "quick" (also on a GPU).

    Both are read case-insensitively, surrounding spaces ignored ("Quick " is "quick"); an empty
    value counts as unset. Asking for "full" offline raises OfflineError at once.
    """
    if requested is not None and not isinstance(requested, str):
        raise TypeError(f"profile must be a str ('quick' or 'full') or None, got {type(requested).__name__}")
    from_arg = (requested or "").strip().lower()
    name = from_arg or os.environ.get("COURSE_PROFILE", "").strip().lower() or "quick"
    if name not in PROFILES:
        source = f"setup(profile={requested!r})" if from_arg else f"COURSE_PROFILE={os.environ.get('COURSE_PROFILE')!r}"
        raise ValueError(f"COURSE_PROFILE must be one of {PROFILES} (case-insensitive), got {source}")
    if name == "full":
        require_online("the real data sets and pretrained weights")
    return name


def full_profile_note() -> str:
    """One line: how to switch to `full`, what it downloads (sizes) and what is known of its run time."""
    from .datasets.sources import total_download_gb

    gb = total_download_gb()
    minutes = gb * 8e9 / 100e6 / 60  # arithmetic at 100 Mbit/s, not a measurement
    return (f"GPU found; this run is `quick`, the default. For the real data sets and pretrained "
            f"weights set COURSE_PROFILE=full or call setup(profile='full'): the lessons download "
            f"about {gb:.1f} GB in all, once (each lesson only its own files; about {minutes:.0f} "
            "minutes at 100 Mbit/s); their training times on a GPU have not been measured yet.")


def setup(seed: int = 0, profile: str | None = None) -> Context:
    """Seed everything, pick the device (the GPU when present) and the profile; return a Context.

    $COURSE_SEED, when set, replaces `seed`: the calibration runs (benchmarks/calibrate.py) train
    every lesson under several seeds without editing the notebooks.
    """
    env_seed = os.environ.get("COURSE_SEED", "").strip()
    if env_seed:
        try:
            seed = int(env_seed)
        except ValueError:
            raise ValueError(f"COURSE_SEED must be a whole number, got {env_seed!r}") from None
    seed_everything(seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return _context(choose_profile(profile), device, seed)


def _context(profile: str, device: torch.device, seed: int) -> Context:
    # The profile comes from choose_profile: "quick" unless asked otherwise, on a GPU too.
    note = full_profile_note() if device.type == "cuda" and profile == "quick" else ""
    return Context(profile=profile, device=device, seed=seed, note=note)


def progress(iterable=None, **kwargs):
    """A text progress bar (tqdm) that reads the same in Jupyter, a terminal and the built book.

    Writes to stdout and refreshes at most every 2 s, so outputs stay short. Cells that show one
    start with `# NBVAL_IGNORE_OUTPUT`: the bar carries timings. $COURSE_PROGRESS=0 hides the bars;
    `make execute` sets it, so the stored notebooks carry no one machine's timings.
    """
    import sys

    from tqdm import tqdm

    kwargs.setdefault("disable", os.environ.get("COURSE_PROGRESS", "1") == "0")
    kwargs.setdefault("file", sys.stdout)
    kwargs.setdefault("mininterval", 2.0)
    kwargs.setdefault("ncols", 80)
    return tqdm(iterable, **kwargs)


# Glued floats keep this many significant digits: the prose never quotes more, and further
# digits of a float computed with BLAS differ between machines, which nbval would flag.
GLUE_DIGITS = 4


def _plain(value):
    """`value` as a built-in Python scalar or string, so that the book can format it (`:.2f`)."""
    if isinstance(value, torch.Tensor):
        value = value.item()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return float(f"{value:.{GLUE_DIGITS}g}")
    if isinstance(value, (bool, int, str)):
        return value
    raise TypeError(f"glue: value must be a number or a string, got {type(value).__name__}")


def glue(name: str, value):
    """Make a figure of this run quotable in the lesson's prose, and return it unchanged.

    name: the key the prose uses, as ``{glue:text}`name:.2f` ``; value: a number (Python, NumPy or
    a one-element tensor) or a string. Floats are stored to GLUE_DIGITS significant digits. In the book build (myst-nb) the value is stored in the cell's
    output, hidden, so text and output cannot disagree. Where myst-nb or an IPython kernel is absent
    (a plain Colab runtime, a script) nothing is displayed.
    """
    plain = _plain(value)
    try:
        from IPython import get_ipython
        from myst_nb import glue as myst_glue
    except ImportError:
        return value
    if get_ipython() is not None:
        myst_glue(name, plain, display=False)
    return value
