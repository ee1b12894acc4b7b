set -u; export PYTHONPATH=. PYTHONUNBUFFERED=1
timeout 230 python3 benchmarks/models.py --models resnet50,vgg19,drn_c_26 --batches 16,1 --dtypes int8 2>&1 | grep -v "Warning\|cfg = " | tail -8
timeout 100 python3 benchmarks/conv2d_int8.py --batch 16 --template tensorcore 2>&1 | grep -v "Warning\|cfg = " | tail -30
timeout 90 python3 -m pytest -m gpu tests/gpu -q -x -p no:cacheprovider -W ignore -k "int8 or quant or tensorcore or gemm" 2>&1 | tail -4
