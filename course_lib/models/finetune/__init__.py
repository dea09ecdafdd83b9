"""torchvision's Faster R-CNN adapted for fine-tuning, in lesson 4: detector (the models and
profiles), train (data, training, inference) and evaluate (COCO metrics through pycocotools).
"""
