#!/bin/sh
# The input-size study behind the mobile preset: train at each size with the same recipe
# (configs/synthetic_benchmark/input_size.flags), export int8 (calibrated on PUBLIC synthetic
# images) and score Keras and TFLite int8 on the same private validation crops.
#   sh scripts/input_size_study.sh 256,192 128,96
set -eu
PY=${PYTHON:-.venv/bin/python}
OUT=${OUT:-runs/input_size}
for size in "$@"; do
    tag=$(echo "$size" | tr , x)
    run="$OUT/$tag"
    $PY scripts/train.py --flagfile=configs/synthetic_benchmark/input_size.flags \
        --input_size="$size" --run_dir="$run"
    $PY scripts/export.py --checkpoint="$run" --name="input_size_$tag" --version=1 --overwrite \
        --output_dir="$OUT/export" --tflite=int8 \
        --calibration_images='data/synthetic/public_bench/images/*.jpg' \
        --calibration_annotations=data/synthetic/public_bench/coco/person_keypoints_train.json
    $PY scripts/evaluate.py --checkpoint="$run" --flip_test=false --output="$run/keras_noflip.json"
    $PY scripts/evaluate.py --tflite="$OUT/export/input_size_$tag/1/tflite/pose_int8.tflite" \
        --output="$run/int8_noflip.json"
done
