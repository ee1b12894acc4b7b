"""What the per-target schedules share: injective inlining (``injective.py``), the batched
matmul's schedule around a target's reduction (``matmul.py``) and the tensor intrinsics every
backend lowers (``tensor_intrin.py``: ``dp4a``)."""
