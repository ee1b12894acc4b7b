"""``qconfig``: the quantization settings, as a context manager (like ``relay.quantize.qconfig``).

::

    with qconfig(calibrate_mode="kl_divergence", skip_conv_layers=[]):
        qgraph = quantize_graph(graph, dataset)

A ``qconfig(...)`` starts from the defaults (not from the enclosing config, as in TVM) and
overrides what is given; leaving the ``with`` block restores the enclosing config.
:func:`current_qconfig` is the innermost active config (the defaults outside any block).
"""
from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field, replace
from ...errors import ArgumentError

__all__ = ["QConfig", "qconfig", "current_qconfig", "CALIBRATE_MODES", "WEIGHT_SCALES"]

CALIBRATE_MODES = ("global_scale", "max", "percentile", "kl_divergence")
WEIGHT_SCALES = ("max", "power2")


@dataclass(frozen=True)
class QConfig:
    """Quantization settings (see the field comments; :func:`qconfig` builds and activates one).

    Usable as a context manager itself: ``with QConfig(...)`` activates it.
    """

    nbit_input: int = 8                 # bits of activations (int8 storage: only 8)
    nbit_weight: int = 8                # bits of weights (2..8; stored as int8, clipped to +-(2**(n-1)-1))
    dtype_input: str = "int8"           # dtype of quantized activations and weights
    dtype_activation: str = "int32"     # accumulator dtype of conv2d / dense
    global_scale: float = 8.0           # calibrate_mode="global_scale": every activation in [-8, 8]
    calibrate_mode: str = "global_scale"  # global_scale | max | percentile | kl_divergence
    weight_scale: str = "max"           # max: max|w| / qmax; power2: the next power of two / 2**(nbit-1)
    per_channel: bool = True            # one weight scale per output channel
    skip_conv_layers: tuple = (0,)      # indices (topological order) of conv2d layers kept in float
    skip_dense_layer: bool = True       # keep every dense layer in float
    percentile: float = 99.99           # calibrate_mode="percentile": percentile of |x|
    rounding: str = "TONEAREST"         # requantize rounding (TONEAREST: half away from zero; UPWARD)
    kl_bins: int = 2048                 # histogram bins of the KL / percentile calibration
    extra: dict = field(default_factory=dict, compare=False)

    def __post_init__(self):
        if self.calibrate_mode not in CALIBRATE_MODES:
            raise ArgumentError(f"qconfig: calibrate_mode={self.calibrate_mode!r} must be one of {CALIBRATE_MODES}")
        if self.weight_scale not in WEIGHT_SCALES:
            raise ArgumentError(f"qconfig: weight_scale={self.weight_scale!r} must be one of {WEIGHT_SCALES}")
        if self.nbit_input != 8:
            raise ArgumentError(f"qconfig: nbit_input={self.nbit_input}: activations are stored as int8, "
                             "only nbit_input=8 is realizable")
        if not 2 <= int(self.nbit_weight) <= 8:
            raise ArgumentError(f"qconfig: nbit_weight={self.nbit_weight} must be in 2..8")
        if self.dtype_input != "int8":
            raise ArgumentError(f"qconfig: dtype_input={self.dtype_input!r}: only 'int8' (symmetric) is supported")
        if self.dtype_activation != "int32":
            raise ArgumentError(f"qconfig: dtype_activation={self.dtype_activation!r}: only 'int32' is supported")
        if not self.global_scale > 0:
            raise ArgumentError(f"qconfig: global_scale={self.global_scale} must be positive")
        if not 0 < self.percentile <= 100:
            raise ArgumentError(f"qconfig: percentile={self.percentile} must be in (0, 100]")
        if self.rounding not in ("TONEAREST", "UPWARD"):
            raise ArgumentError(f"qconfig: rounding={self.rounding!r} must be TONEAREST or UPWARD")
        if self.kl_bins < 256:
            raise ArgumentError(f"qconfig: kl_bins={self.kl_bins} must be at least 256")
        skip = self.skip_conv_layers
        skip = () if skip is None else tuple(int(i) for i in skip)
        object.__setattr__(self, "skip_conv_layers", skip)

    @property
    def qmax_input(self) -> int:
        """Largest quantized activation magnitude: ``2**(nbit_input-1) - 1`` (127)."""
        return 2 ** (self.nbit_input - 1) - 1

    @property
    def qmax_weight(self) -> int:
        """Largest quantized weight magnitude: ``2**(nbit_weight-1) - 1``."""
        return 2 ** (self.nbit_weight - 1) - 1

    def with_options(self, **kw) -> "QConfig":
        """A copy with some fields changed."""
        return replace(self, **kw)

    def as_dict(self) -> dict:
        """The settings as a plain dict."""
        d = asdict(self)
        d.pop("extra")
        return d

    def __enter__(self):
        _stack().append(self)
        return self

    def __exit__(self, *exc):
        st = _stack()
        if st and st[-1] is self:
            st.pop()
        else:  # pragma: no cover - misnested use
            try:
                st.remove(self)
            except ValueError:
                pass
        return False


_local = threading.local()
_DEFAULT = QConfig()


def _stack() -> list:
    if not hasattr(_local, "stack"):
        _local.stack = []
    return _local.stack


def qconfig(**kwargs) -> QConfig:
    """A :class:`QConfig` from the defaults with ``kwargs`` overridden; use it in a ``with`` block.

    Unknown keywords raise ``TypeError``; bad values ``ValueError``.
    """
    return QConfig(**kwargs)


def current_qconfig() -> QConfig:
    """The innermost active :class:`QConfig` (the defaults outside any ``with qconfig(...)``)."""
    st = _stack()
    return st[-1] if st else _DEFAULT
