"""Detection models built from course_lib's parts, one subpackage per detector family:

    ssd          the single-shot detector of lesson 2 (`from course_lib.models import ssd`)
    faster_rcnn  the RPN and Faster R-CNN of lesson 3
    finetune     torchvision's Faster R-CNN adapted for fine-tuning, lesson 4
    normalize    the ImageNet normalisation the backbones share
"""
