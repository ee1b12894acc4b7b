"""CUDA-only tensor intrinsics (declared with ``te.decl_tensor_intrin``; the int8 tensor-core
``mma`` fragments belong here). ``dp4a``, which the LLVM backend lowers too, lives in
``topi/generic/tensor_intrin.py``."""
