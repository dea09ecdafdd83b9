"""Data sets: deterministic synthetic generators and readers of real on-disk formats.

Import the module you need, e.g. `from course_lib.datasets import shapes, voc`.
"""
