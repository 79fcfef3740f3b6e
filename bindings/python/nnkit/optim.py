"""Optimizers, learning-rate schedules and regularizers
(include/nnkit/optim.h): hyperparameters by name, with checked bounds."""
from __future__ import annotations

import ctypes
from typing import Any, List, Optional, Sequence, Tuple

from ._arrays import Buffer, as_int
from ._handle import Handle
from ._lib import lib
from ._names import lookup, name_of, table
from .errors import E_STATE, StateError

__all__ = ["Optimizer", "Schedule", "Regularizer", "OPTIMIZERS", "OPT_KEYS", "SCHEDULES",
           "SCHED_KEYS", "REGULARIZERS", "REG_KEYS", "BOUND_FLAGS"]

OPTIMIZERS = table("nnkit_optim_kind")
OPT_KEYS = table("nnkit_optim_param")
SCHEDULES = table("nnkit_sched_kind")
SCHED_KEYS = table("nnkit_sched_param")
REGULARIZERS = table("nnkit_reg_kind")
REG_KEYS = table("nnkit_reg_param")
BOUND_FLAGS = table("nnkit_bound_flag")


def _bounds(fn: Any, *args: Any) -> Tuple[float, float, int]:
    lo, hi, flags = ctypes.c_double(), ctypes.c_double(), ctypes.c_int()
    fn(ctypes.byref(lo), ctypes.byref(hi), ctypes.byref(flags), *args)
    return lo.value, hi.value, flags.value


class Optimizer(Handle):
    """Optimizer('sgd', lr=0.1, momentum=0.9); kinds: OPTIMIZERS,
    hyperparameters by key (OPT_KEYS) with checked bounds:
    opt['lr'] = 0.01."""
    _free = lib.nnkit_optimizer_free

    def __init__(self, kind: str = "sgd", **params: float) -> None:
        super().__init__()
        lib.nnkit_optimizer_create(ctypes.byref(self._h),
                                   lookup(OPTIMIZERS, kind, "optimizer"))
        self.kind = name_of(OPTIMIZERS, lib.nnkit_optimizer_kind(self._h))
        self._params = {}
        for k, v in params.items():
            self[k] = v

    def __repr__(self) -> str:
        if self.closed:
            return "Optimizer(closed)"
        args = "".join(", %s=%g" % (k, self[k]) for k in ["lr"] + [
            k for k in self._params if k != "lr"])
        return "Optimizer(%r%s)" % (self.kind, args)

    def __setitem__(self, key: str, value: float) -> None:
        lib.nnkit_optimizer_set(self.handle, lookup(OPT_KEYS, key, "optimizer setting"),
                                float(value))
        self._params[key] = value

    def __getitem__(self, key: str) -> float:
        out = ctypes.c_double()
        lib.nnkit_optimizer_get(ctypes.byref(out), self.handle,
                                lookup(OPT_KEYS, key, "optimizer setting"))
        return out.value

    @staticmethod
    def bounds(kind: str, key: str) -> Tuple[float, float, int]:
        """(lo, hi, flags) of a hyperparameter: flags are BOUND_FLAGS
        (lo_open, hi_open, integer)."""
        return _bounds(lib.nnkit_optimizer_bounds, lookup(OPTIMIZERS, kind, "optimizer"),
                       lookup(OPT_KEYS, key, "optimizer setting"))

    def step(self, net: Any) -> None:
        """One update of net's parameters from its gradient buffer."""
        lib.nnkit_optimizer_step(self.handle, net.handle)

    def train_batch(self, net: Any, x: Any, labels: Any = None, targets: Any = None) -> float:
        """Forward, backward and step on one batch in one C call (Keras's
        train_on_batch); returns the batch's loss before the step."""
        from .model import _check_supervision
        xb, n = net._batch(x)
        lb, tb = _check_supervision(labels, targets, n, net.output_size)
        loss = ctypes.c_double()
        lib.nnkit_optimizer_train_batch(ctypes.byref(loss), self.handle, net.handle,
                                        xb.ptr, n, lb.ptr if lb else None,
                                        tb.ptr if tb else None)
        return loss.value

    def set_schedule(self, schedule: "Schedule") -> "Optimizer":
        """Attaches a Schedule; the optimizer takes ownership of it, and the
        Schedule object stays a view of it (readable while attached, as
        optimizer.schedule is)."""
        lib.nnkit_optimizer_set_schedule(self.handle, schedule.handle)
        schedule._attach(self)
        return self

    @property
    def schedule(self) -> Optional["Schedule"]:
        """The attached Schedule (a view owned by the optimizer), or None."""
        h = lib.nnkit_optimizer_schedule(self.handle)
        if not h:
            return None
        view = Schedule.__new__(Schedule)
        Handle.__init__(view)
        view._attach(self, h)
        return view

    def add_regularizer(self, reg: "Regularizer") -> "Optimizer":
        """Attaches a Regularizer; the optimizer takes ownership of it."""
        lib.nnkit_optimizer_add_regularizer(self.handle, reg.handle)
        reg._disown()
        return self

    def reset(self) -> None:
        """Forgets the optimizer's state (moments, step count)."""
        lib.nnkit_optimizer_reset(self.handle)

    def get_state(self) -> Tuple[List[float], List[float]]:
        """(float state, scalar state) for checkpoints."""
        n, m = (lib.nnkit_optimizer_state_size(self.handle),
                lib.nnkit_optimizer_state_scalars(self.handle))
        fs, ds = (ctypes.c_float * max(n, 1))(), (ctypes.c_double * max(m, 1))()
        lib.nnkit_optimizer_get_state(fs, n, ds, m, self.handle)
        return list(fs[:n]), list(ds[:m])

    def set_state(self, net: Any, floats: Any, scalars: Sequence[float]) -> None:
        """Restores a state from get_state() for net."""
        fb = Buffer(floats, ctypes.c_float, "f", "floats")
        db = (ctypes.c_double * max(len(scalars), 1))(*scalars)
        lib.nnkit_optimizer_set_state(self.handle, net.handle, fb.ptr, fb.count, db,
                                      len(scalars))

    @property
    def steps(self) -> int:
        """Updates made so far."""
        return lib.nnkit_optimizer_steps(self.handle)


class _Owned(Handle):
    """A handle an optimizer can take over."""

    def _disown(self) -> None:
        """C took ownership: never free from Python."""
        self._h = ctypes.c_void_p()
        self._attached = True

    @property
    def handle(self) -> ctypes.c_void_p:
        """The C handle; StateError once closed or attached to an optimizer."""
        if getattr(self, "_attached", False):
            raise StateError(E_STATE, "%s is attached to an optimizer" %
                             type(self).__name__)
        return Handle.handle.fget(self)


class Schedule(Handle):
    """Schedule('cosine', t_max=20, warmup_steps=2); attach with
    Optimizer.set_schedule. Kinds: SCHEDULES; settings: SCHED_KEYS,
    readable as sched['t_max'] before and after attaching."""
    _free = lib.nnkit_schedule_free
    _owner: Any = None

    def __init__(self, kind: str, milestones: Optional[Sequence[int]] = None,
                 **params: float) -> None:
        super().__init__()
        lib.nnkit_schedule_create(ctypes.byref(self._h), lookup(SCHEDULES, kind, "schedule"))
        if milestones is not None:
            ms = [as_int(m, "a milestone", 0) for m in milestones]
            arr = (ctypes.c_uint64 * len(ms))(*ms)
            lib.nnkit_schedule_set_milestones(self._h, arr, len(ms))
        for k, v in params.items():
            self[k] = v

    def _attach(self, opt: Optimizer, h: Any = None) -> None:
        """The optimizer owns the C schedule now: this object becomes a view."""
        self._view = ctypes.c_void_p(h if h is not None else self._h.value)
        self._h = ctypes.c_void_p()
        self._owner = opt

    @property
    def handle(self) -> ctypes.c_void_p:
        """The C handle; for an attached schedule the optimizer's, while it
        is still the optimizer's schedule."""
        if self._owner is None:
            return Handle.handle.fget(self)
        if self._owner.closed:
            raise StateError(E_STATE, "the Schedule's optimizer is closed")
        if lib.nnkit_optimizer_schedule(self._owner.handle) != self._view.value:
            raise StateError(E_STATE, "this Schedule was replaced by another one on its "
                             "optimizer; read optimizer.schedule")
        return self._view

    @property
    def attached(self) -> bool:
        """True once an optimizer owns the schedule."""
        return self._owner is not None

    def __repr__(self) -> str:
        try:
            return "Schedule(%r%s)" % (self.kind, ", attached" if self.attached else "")
        except StateError:
            return "Schedule(closed)"

    @property
    def kind(self) -> str:
        """The schedule's name, e.g. 'cosine'."""
        return name_of(SCHEDULES, lib.nnkit_schedule_kind(self.handle))

    def __setitem__(self, key: str, value: float) -> None:
        lib.nnkit_schedule_set(self.handle, lookup(SCHED_KEYS, key, "schedule setting"),
                               float(value))

    def __getitem__(self, key: str) -> float:
        out = ctypes.c_double()
        lib.nnkit_schedule_get(ctypes.byref(out), self.handle,
                               lookup(SCHED_KEYS, key, "schedule setting"))
        return out.value

    @staticmethod
    def bounds(kind: str, key: str) -> Tuple[float, float, int]:
        """(lo, hi, flags) of a schedule setting, as Optimizer.bounds."""
        return _bounds(lib.nnkit_schedule_bounds, lookup(SCHEDULES, kind, "schedule"),
                       lookup(SCHED_KEYS, key, "schedule setting"))

    @property
    def steps(self) -> int:
        """Schedule steps taken so far (epochs, or batches with per_batch)."""
        return lib.nnkit_schedule_steps(self.handle)


class Regularizer(_Owned):
    """Regularizer('l2', 1e-3, layers=[0, 2]); attach with
    Optimizer.add_regularizer. Kinds: REGULARIZERS; settings: REG_KEYS."""
    _free = lib.nnkit_regularizer_free

    def __init__(self, kind: str, value: float, layers: Optional[Sequence[int]] = None,
                 **params: float) -> None:
        super().__init__()
        lib.nnkit_regularizer_create(ctypes.byref(self._h),
                                     lookup(REGULARIZERS, kind, "regularizer"), float(value))
        for k, v in params.items():
            lib.nnkit_regularizer_set(self._h, lookup(REG_KEYS, k, "regularizer setting"),
                                      float(v))
        if layers is not None:
            ls = [as_int(i, "a layer index", 0) for i in layers]
            arr = (ctypes.c_size_t * len(ls))(*ls)
            lib.nnkit_regularizer_set_layers(self._h, arr, len(ls))

    def __repr__(self) -> str:
        if getattr(self, "_attached", False):
            return "Regularizer(attached)"
        if self.closed:
            return "Regularizer(closed)"
        return "Regularizer(%r)" % name_of(REGULARIZERS, lib.nnkit_regularizer_kind(self.handle))

    def penalty(self, net: Any) -> float:
        """The penalty the regularizer adds for net's current weights."""
        out = ctypes.c_double()
        lib.nnkit_regularizer_penalty(ctypes.byref(out), self.handle, net.handle)
        return out.value
