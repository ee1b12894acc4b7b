"""Fully connected layers: ``out[i, j] = sum_k data[i, k] * weight[j, k] (+ bias[j])``."""
from __future__ import annotations

from ... import te
from ...errors import DtypeError, ShapeError
from .layout import _const


def dense(data, weight, bias=None, out_dtype: str | None = None, name: str = "dense"):
    """Dense layer; int8 inputs accumulate in ``out_dtype`` (int32 for ``dense_int8``)."""
    if data.ndim != 2 or weight.ndim != 2:
        raise ShapeError(f"{name}: data and weight must be 2-D ([batch, in] and [units, in]), got "
                         f"{data.ndim}-D and {weight.ndim}-D")
    K, K2 = _const(data.shape[1]), _const(weight.shape[1])
    if K is not None and K2 is not None and K != K2:
        raise ShapeError(f"{name}: {data.name} has {K} input features, {weight.name} expects {K2}")
    if data.dtype != weight.dtype:
        raise DtypeError(f"{name}: data is {data.dtype} but weight is {weight.dtype}")
    out_dtype = out_dtype or data.dtype
    k = te.reduce_axis((0, data.shape[1]), "k")
    out = te.compute((data.shape[0], weight.shape[0]),
                     lambda i, j: te.sum(data[i, k].astype(out_dtype) * weight[j, k].astype(out_dtype), axis=k),
                     name=name, tag="dense")
    if bias is not None:
        if bias.ndim != 1:
            raise ShapeError(f"{name}: bias must be 1-D, got {bias.ndim}-D")
        if bias.dtype != out_dtype:
            raise DtypeError(f"{name}: bias must have the output dtype {out_dtype}, got {bias.dtype}")
        out = te.compute(out.shape, lambda i, j: out[i, j] + bias[j], name=f"{name}_bias", tag="injective,bias_add")
    return out


def dense_int8(data, weight, bias=None, name: str = "dense_int8"):
    """int8 x int8 -> int32 dense layer (the reduction is what ``dp4a`` consumes)."""
    for t in (data, weight):
        if t.dtype not in ("int8", "uint8"):
            raise DtypeError(f"{name}: {t.name} must be int8, got {t.dtype}")
    return dense(data, weight, bias, out_dtype="int32", name=name)


SPLIT_K_TAG = "dense_split_k"


def dense_int8_split_k(data, weight, splits: int, name: str = "dense_int8_split_k"):
    """int8 dense (``data [M, K]`` times ``weight [N, K]`` transposed, int32) as ``splits`` partial
    sums over equal slices of ``K`` (``partial[s, m, n]``) and their sum: for small batches, whose
    time is the read of the weights, so that many more threads stream them. int32 sums wrap, so
    the result is the plain dense's bit for bit."""
    for t in (data, weight):
        if t.dtype != "int8":
            raise DtypeError(f"{name}: {t.name} must be int8, got {t.dtype}")
    M, K = (_const(d) for d in data.shape)
    N, K2 = (_const(d) for d in weight.shape)
    if K != K2:
        raise ShapeError(f"{name}: {data.name} has {K} input features, {weight.name} expects {K2}")
    if splits < 1 or K % splits:
        raise ShapeError(f"{name}: {splits} splits must divide the {K} input features")
    ks = K // splits
    r = te.reduce_axis((0, ks), "rk")
    partial = te.compute(
        (splits, M, N),
        lambda s, m, n: te.sum(data[m, s * ks + r].astype("int32") * weight[n, s * ks + r].astype("int32"), axis=r),
        name=f"{name}_partial", tag=SPLIT_K_TAG)
    rs = te.reduce_axis((0, splits), "rs")
    return te.compute((M, N), lambda m, n: te.sum(partial[rs, m, n], axis=rs), name=name, tag="dense_int8")
def dense_packed(data, weight, out_dtype: str | None = None, name: str = "dense_packed"):
    """Dense layer over a packed weight ``[units / b, in, b]`` (layout ``OI[b]o``: ``b`` units
    innermost, one vector of them per input feature): ``out[i, j] = sum_k data[i, k] *
    weight[j // b, k, j % b]``, each output a sequential sum over ``k``."""
    if data.ndim != 2 or weight.ndim != 3:
        raise ShapeError(f"{name}: data must be 2-D [batch, in] and weight 3-D [units / b, in, b], got "
                         f"{data.ndim}-D and {weight.ndim}-D")
    K, K2, b = _const(data.shape[1]), _const(weight.shape[1]), _const(weight.shape[2])
    if K != K2:
        raise ShapeError(f"{name}: {data.name} has {K} input features, {weight.name} expects {K2}")
    if data.dtype != weight.dtype:
        raise DtypeError(f"{name}: data is {data.dtype} but weight is {weight.dtype}")
    out_dtype = out_dtype or data.dtype
    k = te.reduce_axis((0, K), "k")
    return te.compute((data.shape[0], _const(weight.shape[0]) * b),
                      lambda i, j: te.sum(data[i, k].astype(out_dtype) * weight[j // b, k, j % b].astype(out_dtype),
                                          axis=k), name=name, tag="dense_packed")
