"""The single-shot detector of lesson 2: model (backbones, heads, anchors), loss, augment,
predict, profile (data per profile) and train. The package re-exports the model's names.
"""
from .model import *  # noqa: F401,F403
from .model import __all__
