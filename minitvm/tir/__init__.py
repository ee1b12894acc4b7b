"""The loop IR: expression nodes (shared with ``te``), statements, buffers, passes."""
from .expr import *  # noqa: F401,F403
from .expr import __all__ as _expr_all
from .stmt import (SCOPES, Allocate, AttrStmt, Buffer, BufferStore, Evaluate, For, IfThenElse,  # noqa: F401
                   LetStmt, PrimFunc, ProducerRealize, ProducerStore, SeqStmt, Stmt, is_no_op, seq)
from .functor import (Mutator, Visitor, collect_vars, post_order_visit, structural_equal,  # noqa: F401
                      substitute, uses_var)
