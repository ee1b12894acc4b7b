#!/usr/bin/env bash
# One device call's worth of GPU checks (7-9 minutes on an H100/H200): the GPU test suite,
# then the int8 conv tables (dp4a and tensor-core templates, their peaks measured in the same run;
# shipped tuned configs) and
# ResNet-50 at batch 1 and 16 in fp32 and int8 beside PyTorch. Logs go to $OUT when it is set.
#     PYTHONPATH=. bash benchmarks/gpu_check.sh
set -u
cd "$(dirname "$0")/.."
export PYTHONPATH=. PYTHONUNBUFFERED=1
out=${OUT:-/tmp}
# a cold kernel cache makes the suite take 4-5 minutes; a timeout is reported, not a silent cut
timeout 380 python3 -m pytest -m gpu tests/gpu -q -p no:cacheprovider -W ignore 2>&1 | tail -15 | tee "$out/gpu_tests.log"
[ "${PIPESTATUS[0]}" = 124 ] && echo "tests/gpu: TIMED OUT after 380 s (the log above is cut short)" | tee -a "$out/gpu_tests.log"
timeout 90 python3 benchmarks/conv2d_int8.py --batch 16 2>&1 | grep -v "Warning\|cfg = " | tail -30 | tee "$out/conv2d_int8.log"
timeout 90 python3 benchmarks/conv2d_int8.py --batch 16 --template tensorcore 2>&1 | grep -v "Warning\|cfg = " | tail -30 \
    | tee "$out/conv2d_int8_tensorcore.log"
timeout 120 python3 benchmarks/models.py --models resnet50 --batches 16,1 --dtypes float32,int8 2>&1 \
    | grep -v "Warning\|cfg = " | tail -4 | tee "$out/models.log"
timeout 60 python3 benchmarks/models.py --models resnet50 --batches 16 --dtypes int8 --int8-first-conv 2>&1 \
    | grep -v "Warning\|cfg = " | tail -2 | tee "$out/models_int8_first_conv.log"
