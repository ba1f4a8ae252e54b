"""Deployment: SavedModel for TF Serving, TFLite for phones, and prediction on images.

See docs/deployment.md. Typical use::

    from tfdphpe.export import export_saved_model, convert_to_tflite, version_dir
    export_saved_model(model, version_dir("savedmodels", "pose", 1), joint_set=MPII,
                       privacy="runs/x/privacy.json")
    open("pose_int8.tflite", "wb").write(convert_to_tflite(
        model, "int8", calibration_crops=public_calibration_crops(coco_files, (256, 192)),
        calibration_source="COCO val2017 (public)"))
"""

from tfdphpe.export.calibration import (coco_person_boxes, public_calibration_crops,
                                        synthetic_crops)
from tfdphpe.evaluation.visualize import draw_poses
from tfdphpe.export.loading import (PRESETS, DeploymentPreset, ExportSource, fresh_model,
                                    load_checkpoint, resolve_joint_set)
from tfdphpe.export.latency import measure_latency
from tfdphpe.export.metadata import (METADATA_FILENAME, NO_DP_STATEMENT, deployment_metadata,
                                     embed_metadata, privacy_statement, read_metadata,
                                     read_tflite_metadata)
from tfdphpe.export.predictor import (PosePredictor, SavedModelPredictor, TFLitePredictor,
                                      load_predictor)
from tfdphpe.export.preprocessing import (BOX_PADDING, IMAGENET_MEAN, IMAGENET_STD, crop_image,
                                          crop_image_regions, crop_regions, crop_to_image,
                                          image_to_crop, normalize_pixels, whole_image_box)
from tfdphpe.export.runtime import TFLitePoseEstimator, op_counts
from tfdphpe.export.saved_model import (PREDICT_IMAGES, SERVING_DEFAULT, PoseServingModule,
                                        export_saved_model, rest_request, version_dir)
from tfdphpe.export.tflite import (INT8_FLOAT_OPS, TFLITE_FORMATS, convert_to_tflite,
                                   keras_predict, parity)

__all__ = [
    "BOX_PADDING", "DeploymentPreset", "ExportSource", "IMAGENET_MEAN", "IMAGENET_STD",
    "INT8_FLOAT_OPS", "METADATA_FILENAME", "NO_DP_STATEMENT", "PREDICT_IMAGES", "PRESETS",
    "PosePredictor", "PoseServingModule", "SERVING_DEFAULT", "SavedModelPredictor",
    "TFLITE_FORMATS", "TFLitePoseEstimator", "TFLitePredictor", "coco_person_boxes",
    "convert_to_tflite", "crop_image", "crop_image_regions", "crop_regions", "crop_to_image",
    "deployment_metadata", "draw_poses", "embed_metadata", "export_saved_model", "fresh_model",
    "image_to_crop", "keras_predict", "load_checkpoint", "load_predictor", "measure_latency",
    "normalize_pixels", "op_counts", "parity", "privacy_statement", "public_calibration_crops",
    "read_metadata", "read_tflite_metadata", "resolve_joint_set", "rest_request",
    "synthetic_crops", "version_dir", "whole_image_box",
]
