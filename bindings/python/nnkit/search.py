"""Hyperparameter search from Python (nnkit/search.h).

    import nnkit
    space = {"lr": nnkit.log_uniform(1e-4, 1), "reg": nnkit.log_uniform(1e-5, 1)}
    results = nnkit.search(space, objective, strategy="coarse_fine", workers=2)
    results.best          # {"trial": 23, "val_acc": 0.93, "lr": ..., "reg": ...}
    results.plot("search.png")

The objective is a Python callable: objective(params) or
objective(params, trial), params a dict {name: value}; it returns the
score (higher is better unless maximize=False). trial.report(epoch, score)
reports a per-epoch score and answers True when the trial should stop
(median stopping, prune=True). An exception fails the trial (its message is
the reason) and the search goes on. With workers > 1 the objective is
called from the library's worker threads, one trial each, under the GIL:
nnkit calls it makes release the GIL, so trials that train nnkit nets run
in parallel.

A dimension may drive a library key (key=...): ("optimizer", "sgd", "lr"),
("schedule", "step", "gamma"), ("regularizer", "l2", "strength"),
("trainer", "batch_size"), ("pipeline", "batch_size") or ("layer", 2,
"drop_p"); its range is then checked against the key's bounds when the
search starts, and trial.apply(net=..., optimizer=..., trainer=...,
pipeline=...) sets the trial's values on those objects.
"""
from __future__ import annotations

import ctypes
import inspect
import math
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

from . import (_check, InvalidArgument, E_INVALID, OPTIMIZERS, OPT_KEYS, SCHEDULES,
               SCHED_KEYS, REGULARIZERS, REG_KEYS, TRAIN_KEYS, PIPE_KEYS, LAYER_KEYS)
from ._lib import lib
from ._names import lookup, table
from ._prototypes import NNKIT_OBJECTIVE_FN, NNKIT_LOG_FN

__all__ = ["search", "uniform", "log_uniform", "integer", "choice", "Dim", "Trial",
           "Results", "STRATEGIES"]

# The C enums' tables, generated from search.h (never typed here).
STRATEGIES = table("nnkit_search_strategy")
_SETTINGS = {k: v for k, v in table("nnkit_search_param").items() if k != "strategy"}
_DIM_KINDS = {k: v for k, v in table("nnkit_dim_kind").items() if k != "choice"}
_TARGETS = {k: v for k, v in table("nnkit_search_target").items() if k != "none"}
_STATUS = {v: k for k, v in table("nnkit_trial_status").items()}
_FIELDS = table("nnkit_result_field")


class Dim:
    """One dimension: kind ("uniform", "log_uniform", "int", "int_log",
    "choice"), its range or values, and an optional library key."""

    def __init__(self, kind: str, lo: Optional[float] = None, hi: Optional[float] = None,
                 values: Optional[List[float]] = None,
                 key: Optional[Sequence[Any]] = None) -> None:
        self.kind, self.lo, self.hi, self.values, self.key = kind, lo, hi, values, key

    def __repr__(self) -> str:
        if self.kind == "choice":
            return "choice(%r)" % (self.values,)
        return "%s(%g, %g%s)" % (self.kind, self.lo, self.hi,
                                  ", key=%r" % (tuple(self.key),) if self.key else "")

    @property
    def log(self) -> bool:
        """True for the log-scaled kinds (drawn uniformly in log space)."""
        return self.kind in ("log_uniform", "int_log")

    def _target(self):
        """(target, kind, key) numbers for the C call."""
        if self.key is None:
            return 0, 0, 0
        k = tuple(self.key)
        tables = {"optimizer": (OPTIMIZERS, OPT_KEYS),
                  "schedule": (SCHEDULES, SCHED_KEYS),
                  "regularizer": (REGULARIZERS, REG_KEYS)}
        if k[0] in tables and len(k) == 3:
            kinds, keys = tables[k[0]]
            return _TARGETS[k[0]], kinds[k[1]], keys[k[2]]
        if k[0] == "trainer" and len(k) == 2:
            return _TARGETS["trainer"], 0, TRAIN_KEYS[k[1]]
        if k[0] == "pipeline" and len(k) == 2:
            return _TARGETS["pipeline"], 0, PIPE_KEYS[k[1]]
        if k[0] == "layer" and len(k) == 3:
            return _TARGETS["layer"], int(k[1]), LAYER_KEYS[k[2]]
        raise InvalidArgument(E_INVALID, "unknown key %r: use (\"optimizer\", kind, "
                                 "key), (\"trainer\", key), (\"layer\", index, key), ..."
                                 % (self.key,))


def uniform(lo: float, hi: float, key: Optional[Sequence[Any]] = None) -> Dim:
    """A real dimension drawn uniformly in [lo, hi] (momentum, dropout p)."""
    return Dim("uniform", lo, hi, key=key)


def log_uniform(lo: float, hi: float, key: Optional[Sequence[Any]] = None) -> Dim:
    """A real dimension drawn uniformly in log space between lo > 0 and hi
    (learning rates, regularization strengths: the lecture's 10^x)."""
    return Dim("log_uniform", lo, hi, key=key)


def integer(lo: int, hi: int, log: bool = False,
            key: Optional[Sequence[Any]] = None) -> Dim:
    """A whole-number dimension in [lo, hi], uniform or (log=True)
    log-uniform (layer widths, batch sizes)."""
    return Dim("int_log" if log else "int", lo, hi, key=key)


def choice(values: Sequence[float], key: Optional[Sequence[Any]] = None) -> Dim:
    """One of the given values (a grid of its own, or a random pick)."""
    values = [float(v) for v in values]
    return Dim("choice", min(values) if values else None, max(values) if values else None,
               values=values, key=key)


class Trial:
    """The trial handed to a two-argument objective (valid during the call)."""

    def __init__(self, ptr: Any, names: List[str]) -> None:
        self._ptr, self._names = ptr, names
        self.index = lib.nnkit_trial_index(ptr)
        self.seed = lib.nnkit_trial_seed(ptr)
        self.epochs = lib.nnkit_trial_epochs(ptr)
        self.params = {n: lib.nnkit_trial_value(ptr, i) for i, n in enumerate(names)}

    def report(self, epoch: int, score: float) -> bool:
        """Reports the score after epoch `epoch` (0-based); True: stop now."""
        return bool(lib.nnkit_trial_report(self._ptr, int(epoch), float(score)))

    def apply(self, net: Any = None, optimizer: Any = None, trainer: Any = None,
              pipeline: Any = None) -> None:
        """Sets the trial's values of the dimensions with keys on the objects."""
        _check(lib.nnkit_trial_apply(self._ptr, net.handle if net else None,
                                        optimizer.handle if optimizer else None,
                                        trainer.handle if trainer else None,
                                        pipeline.handle if pipeline else None))


class Results(list):
    """The trials as a list of dicts (trial-index order): "trial", "phase",
    "config", "epochs", "status" ("ok", "failed", "pruned"), the score under
    its name, "score_std", "seconds", "seed", one entry per dimension and
    "reason". .best is the best trial's dict (None when none finished),
    .warnings the search's warnings, .columns the column order."""

    def __init__(self, rows: List[Dict[str, Any]], columns: List[str], score_name: str,
                 space: Dict[str, Dim], best: Optional[Dict[str, Any]],
                 warnings: List[str], maximize: bool) -> None:
        super().__init__(rows)
        self.columns, self.score_name, self.space = columns, score_name, space
        self.best, self.warnings, self.maximize = best, warnings, maximize

    def table(self) -> str:
        """A pandas-free table: a header line and one line per trial."""
        out = ["\t".join(self.columns)]
        for r in self:
            out.append("\t".join("%.6g" % r[c] if isinstance(r[c], float) else str(r[c])
                                 for c in self.columns))
        return "\n".join(out)

    def plot(self, path: Any) -> Any:
        """Score against each dimension (log axes for log dimensions), saved
        as PNG to path; returns path, or None when matplotlib is missing.
        Draws on its own Figure: no matplotlib backend is chosen for you."""
        from . import plot as _plot
        try:
            fig = _plot._figure((4.5 * len(self.space), 3.6))
        except ImportError:
            return None
        names = list(self.space)
        axes = fig.subplots(1, len(names), squeeze=False)
        done = [r for r in self if r["status"] != "failed"]
        for ax, name in zip(axes[0], names):
            dim = self.space[name]
            xs = [r[name] for r in done]
            ys = [r[self.score_name] for r in done]
            ax.scatter(xs, ys, c=[r["phase"] for r in done], s=18, cmap="viridis")
            if dim.log:
                ax.set_xscale("log")
            if self.best is not None:
                ax.axvline(self.best[name], color="red", lw=0.8)
            ax.set_xlabel(name)
            ax.set_ylabel(self.score_name)
        fig.tight_layout()
        _plot._save(fig, path)
        return path


def _accepts_trial(fn):
    try:
        params = [p for p in inspect.signature(fn).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)]
    except (TypeError, ValueError):
        return False
    return len(params) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in params)


def search(space: Dict[str, Dim], objective: Callable[..., Optional[float]],
           strategy: str = "random", workers: int = 1, *, maximize: bool = True,
           results_file: Any = None, score_name: Optional[str] = None,
           verbose: bool = False, log: Optional[Callable[[str], Any]] = None,
           **settings: float) -> Results:
    """Runs a search and returns its Results.

    space:     {name: Dim} (uniform(), log_uniform(), integer(), choice()).
    objective: objective(params) or objective(params, trial) -> score.
    strategy:  "grid", "random", "coarse_fine", "halving" or "hyperband".
    workers:   trials at once (threads; each trial's nnkit math at 1 thread).
    settings:  trials, epochs, fine_trials, fine_epochs, top_k, grid_points,
               eta, max_epochs, seed, prune, folds (see nnkit/search.h).
    results_file: JSON Lines file appended per trial; an interrupted search
               resumes from it. verbose / log: the lecture's trial lines to
               standard output or to log(line)."""
    if strategy not in STRATEGIES:
        raise InvalidArgument(E_INVALID, "unknown strategy %r; use one of %s" %
                                 (strategy, ", ".join(STRATEGIES)))
    sp = ctypes.c_void_p()
    _check(lib.nnkit_space_create(ctypes.byref(sp)))
    s = ctypes.c_void_p()
    try:
        names = list(space)
        for name in names:
            d = space[name]
            if not isinstance(d, Dim):
                raise InvalidArgument(E_INVALID, "dimension %r is not a Dim: use "
                                         "nnkit.uniform(), log_uniform(), integer() or "
                                         "choice()" % name)
            target, tkind, key = d._target()
            if d.kind == "choice":
                arr = (ctypes.c_double * max(1, len(d.values)))(*d.values)
                _check(lib.nnkit_space_add_choice(sp, name.encode(), arr, len(d.values),
                                                     target, tkind, key))
            else:
                _check(lib.nnkit_space_add(sp, name.encode(), _DIM_KINDS[d.kind],
                                              float(d.lo), float(d.hi), target, tkind, key))
        _check(lib.nnkit_search_create(ctypes.byref(s), sp))
        settings = dict(settings, workers=workers, maximize=1 if maximize else 0,
                        verbose=1 if (verbose or log) else 0)
        _check(lib.nnkit_search_set(s, table("nnkit_search_param")["strategy"],
                                     float(lookup(STRATEGIES, strategy, "search strategy"))))
        for k, v in settings.items():
            if k not in _SETTINGS:
                raise InvalidArgument(E_INVALID, "unknown search setting %r; use "
                                         "one of %s" % (k, ", ".join(_SETTINGS)))
            _check(lib.nnkit_search_set(s, _SETTINGS[k], float(v)))
        if score_name:
            _check(lib.nnkit_search_set_score_name(s, score_name.encode()))
        if results_file:
            _check(lib.nnkit_search_set_results_file(s, str(results_file).encode()))
        log_cb = None
        if log is not None:
            log_cb = NNKIT_LOG_FN(lambda line, user: log(line.decode()))
            lib.nnkit_search_set_logger(s, log_cb, None)

        with_trial = _accepts_trial(objective)
        interrupted = []

        def call(score_out, trial_ptr, user):
            try:
                t = Trial(trial_ptr, names)
                v = objective(t.params, t) if with_trial else objective(t.params)
                score_out[0] = float("nan") if v is None else float(v)
                return 0
            except Exception as e:  # the trial fails, the search goes on
                msg = ("%s: %s" % (type(e).__name__, e))[:255]
                lib.nnkit_trial_set_reason(trial_ptr, msg.encode(errors="replace"))
                return -1
            except BaseException as e:  # KeyboardInterrupt: stop cleanly
                interrupted.append(e)
                return 1

        cb = NNKIT_OBJECTIVE_FN(call)
        try:
            _check(lib.nnkit_search_run(s, cb, None))  # raises (errcheck) on failure
        except Exception:
            if interrupted:  # the objective's KeyboardInterrupt, not the stop it caused
                raise interrupted[0]
            raise
        if interrupted:
            raise interrupted[0]
        del cb, log_cb
        sname = score_name or "score"
        columns = (["trial", "phase", "config", "epochs", "status", sname, "score_std",
                    "seconds", "seed"] + names + ["reason"])
        rows = []
        out = ctypes.c_double()
        for i in range(lib.nnkit_search_num_trials(s)):
            row = {"trial": i}
            for f, code in _FIELDS.items():
                _check(lib.nnkit_search_result(ctypes.byref(out), s, i, code))
                row[sname if f == "score" else f] = out.value
            for f in ("phase", "config", "epochs", "seed"):
                row[f] = int(row[f])
            row["status"] = _STATUS[int(row["status"])]
            for j, n in enumerate(names):
                _check(lib.nnkit_search_value(ctypes.byref(out), s, i, j))
                row[n] = out.value
            row["reason"] = (lib.nnkit_search_reason(s, i) or b"").decode(errors="replace")
            rows.append({c: row[c] for c in columns})
        best = ctypes.c_size_t()
        if lib.nnkit_search_best(ctypes.byref(best), s) == 0:
            best_row = rows[best.value]
        else:
            best_row = None
        warnings = (lib.nnkit_search_warnings(s) or b"").decode()
        return Results(rows, columns, sname, dict(space), best_row, warnings, maximize)
    finally:
        lib.nnkit_search_free(s)
        lib.nnkit_space_free(sp)
