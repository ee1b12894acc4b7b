"""What a CUDA block may ask for (compute capability 7.5 and up); every schedule template's
config filter respects these."""

MAX_THREADS = 1024               # threads per block
MAX_THREADS_Z = 64               # blockDim.z
MAX_STATIC_SHARED = 48 * 1024    # bytes of static shared memory per block
