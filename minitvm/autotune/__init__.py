"""``minitvm.autotune``: search schedule knobs for the fastest config and apply the best one.

    from minitvm import autotune

    task = autotune.Task("matmul.cpu", (512, 512, 512, "float32"), target="llvm")
    tuner = autotune.RandomTuner(task, seed=0)
    with autotune.measure_option(builder=autotune.LocalBuilder(), runner=autotune.LocalRunner()) as opt:
        tuner.tune(64, opt, callbacks=[autotune.progress_bar(64), autotune.log_to_file("mm.log")])
    with autotune.ApplyHistoryBest("mm.log"):
        s, args = matmul_template(512, 512, 512, "float32")   # the best config found

Pieces, lowest first: ``knob`` (one knob's values), ``space`` (a template's configs), ``task`` (tasks, workloads, the template
registry), ``result`` (measure inputs, results, error codes), ``record`` (the JSON-lines log),
``history`` (the best logged config per workload), ``tophub`` (the shipped tuned configs),
``dispatch`` (which config a template uses outside tuning), ``template`` (``@template``),
``measure`` (parallel builder, isolated runner), ``dask_runner`` (the same on a Dask cluster: builds on
CPU workers, measurements on one worker per GPU), ``tuner`` (random, grid, genetic,
model-based: ridge, or boosted trees from ``gbt`` over ``features``), ``callback`` (progress bar, logging).
See ``docs/autotune.md``.
"""
from .knob import (  # noqa: F401
    AnnotateEntity, AnnotateSpace, ConfigError, OtherOptionEntity, OtherOptionSpace, ReorderEntity, ReorderSpace,
    SplitEntity, SplitSpace,
)
from .space import ConfigEntity, ConfigSpace, FallbackConfig  # noqa: F401
from .task import Task, TaskError, compute_flop, get_template  # noqa: F401
from .template import Template, template  # noqa: F401
from .history import TuningHistory  # noqa: F401
from .dispatch import (  # noqa: F401
    ApplyConfig, ApplyHistoryBest, DispatchContext, FallbackConfigWarning, FallbackContext,
)
from .result import BuildResult, MeasureErrorNo, MeasureInput, MeasureResult  # noqa: F401
from .measure import (  # noqa: F401
    Builder, LocalBuilder, LocalRunner, MeasureOption, Runner, create_measure_batch, measure_option,
)
from .dask_runner import DaskBuilder, DaskRunner  # noqa: F401  (imports Dask only when one is made)
from .record import decode, encode, load_records, pick_best, save_records  # noqa: F401
from .tuner import TUNERS, GATuner, GBTTuner, GridSearchTuner, ModelTuner, RandomTuner, Tuner  # noqa: F401
from .callback import log_to_file, progress_bar  # noqa: F401

__all__ = [
    "ConfigSpace", "ConfigEntity", "FallbackConfig", "ConfigError", "SplitSpace", "OtherOptionSpace", "ReorderSpace",
    "AnnotateSpace", "SplitEntity", "OtherOptionEntity", "ReorderEntity", "AnnotateEntity",
    "template", "Template", "Task", "TaskError", "get_template", "compute_flop", "TuningHistory",
    "DispatchContext", "ApplyConfig", "ApplyHistoryBest", "FallbackContext", "FallbackConfigWarning",
    "MeasureErrorNo", "MeasureInput", "MeasureResult", "BuildResult", "Builder", "Runner", "LocalBuilder",
    "LocalRunner", "DaskBuilder", "DaskRunner", "MeasureOption", "measure_option", "create_measure_batch",
    "encode", "decode", "load_records", "save_records", "pick_best",
    "Tuner", "RandomTuner", "GridSearchTuner", "GATuner", "ModelTuner", "GBTTuner", "TUNERS", "log_to_file", "progress_bar",
]
