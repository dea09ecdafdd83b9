"""Faster R-CNN of lesson 3: rpn, proposals and roi_head are its parts, model assembles them,
train holds the data, training and evaluation. The package re-exports the model's names.
"""
from .model import *  # noqa: F401,F403
from .model import __all__
