"""Evaluation: MPII PCKh and COCO keypoint AP."""

from tfdphpe.evaluation.coco_ap import coco_keypoint_ap, to_coco_results, write_results
from tfdphpe.evaluation.pckh import GROUPS, PCKhResult, head_sizes, pckh, table_from_metrics

__all__ = ["pckh", "PCKhResult", "GROUPS", "head_sizes", "coco_keypoint_ap",
           "to_coco_results", "write_results", "table_from_metrics"]
