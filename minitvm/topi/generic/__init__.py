"""What the per-target schedules share: injective inlining (``injective.py``) and the tensor
intrinsics every backend lowers (``tensor_intrin.py``: ``dp4a``)."""
