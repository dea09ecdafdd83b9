"""How detectors (and classifiers) are judged: the course's single source of truth for its figures.

    classification  error rates, TPR/FPR at a threshold, ROC curve and AUC
    matching        greedy matching of detections to ground truth (COCO's rules)
    ap              precision/recall curves and AP three ways (voc07, voc_all, coco101)
    detection       mAP at one IoU threshold, recall of the top-k boxes, proposal recall
    coco            COCO's AP@[.5:.95], AP50, AP75, AR@100, and the bridge to pycocotools

Boxes are `xyxy` pixels throughout. Inputs are NumPy arrays or torch tensors; results are Python
floats or NumPy arrays.
"""
from .ap import AP_METHODS, average_precision, interpolated_precision, precision_recall_curve
from .classification import accuracy, auc, balanced_error_rate, error_rate, roc_auc, roc_curve, tpr_fpr
from .coco import COCO_IOU_THRESHOLDS, coco_evaluate, pycocotools_evaluate, to_coco
from .detection import mean_average_precision, proposal_recall, recall_at_k
from .matching import Matches, detection_iou, match_detections

__all__ = [
    "error_rate", "accuracy", "balanced_error_rate", "tpr_fpr", "roc_curve", "auc", "roc_auc",
    "Matches", "detection_iou", "match_detections",
    "AP_METHODS", "precision_recall_curve", "interpolated_precision", "average_precision",
    "mean_average_precision", "recall_at_k", "proposal_recall",
    "COCO_IOU_THRESHOLDS", "coco_evaluate", "to_coco", "pycocotools_evaluate",
]
