"""Looking at training: Diagnosis (verdicts on the recorded curves) and
Monitor (per-layer statistics of a probe batch), include/nnkit/monitor.h."""
from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from ._handle import Handle
from ._lib import lib
from ._names import lookup, table
from .data import Dataset

__all__ = ["Diagnosis", "Monitor", "VERDICTS", "verdict_name"]

VERDICTS = table("nnkit_verdict")


def verdict_name(verdict: str) -> str:
    """The name a Diagnosis reports for a VERDICTS key, e.g. 'learning rate too low'."""
    return lib.nnkit_verdict_name(lookup(VERDICTS, verdict, "verdict")).decode()


class Diagnosis(Handle):
    """What the curves show: .verdicts [(name, evidence, advice)], .report."""
    _free = lib.nnkit_diagnosis_free

    @classmethod
    def _take(cls, h: Any) -> "Diagnosis":
        d = cls.__new__(cls)
        Handle.__init__(d)
        d._h = h
        return d

    @property
    def verdicts(self) -> List[Tuple[str, str, str]]:
        """[(verdict name, evidence, advice)], most important first."""
        out = []
        for i in range(lib.nnkit_diagnosis_count(self.handle)):
            v = lib.nnkit_diagnosis_verdict(self.handle, i)
            out.append((lib.nnkit_verdict_name(v).decode(),
                        lib.nnkit_diagnosis_evidence(self.handle, i).decode(),
                        lib.nnkit_diagnosis_advice(self.handle, i).decode()))
        return out

    @property
    def report(self) -> str:
        """The whole diagnosis as text."""
        return lib.nnkit_diagnosis_report(self.handle).decode()

    def __repr__(self) -> str:
        return "Diagnosis(%s)" % ", ".join(v[0] for v in self.verdicts)

    def __str__(self) -> str:
        return self.report


class Monitor:
    """Per-layer statistics of a fixed probe batch, measured in evaluation
    mode after every epoch (pass it to Net.fit's callbacks) or by measure();
    plot() draws them. net and the probe are borrowed."""

    def __init__(self, net: Any, x: Any, labels: Any = None,
                 stats: Union[str, Sequence[str]] = ("act_mean", "act_std", "saturated",
                                                     "dead", "grad_norm"),
                 size: int = 256) -> None:
        if isinstance(x, Dataset):  # the first `size` samples and their labels
            with x.subset(range(min(int(size), len(x)))) as probe:
                x, labels = probe.x, probe.labels
        stats = (stats,) if isinstance(stats, str) else tuple(stats)
        self.net, self.x, self.labels, self.stats = net, x, labels, stats
        self.records = {k: [] for k in self.stats}

    def measure(self) -> Dict[str, List[float]]:
        """Measures the probe now and records it: {stat: [value per layer]}.
        Parameters, batch-norm statistics and the mode are left as they were;
        the gradient buffer is overwritten when there are labels."""
        was_training = self.net.training
        self.net.training = False
        try:
            got = self.net.layer_stats(self.x, self.labels, stats=self.stats)
        finally:
            self.net.training = was_training
        for k in self.stats:
            self.records[k].append(got[k])
        return got

    def on_epoch(self, epoch: int, trainer: Any) -> None:
        """Net.fit callback: measures after every epoch."""
        self.measure()

    def __len__(self) -> int:
        return len(self.records[self.stats[0]]) if self.stats else 0

    def plot(self, path: Optional[Union[str, "os.PathLike[str]"]] = None,
             stats: Optional[Sequence[str]] = None, title: Optional[str] = None) -> Any:
        """One subplot per statistic: lines per layer over the measurements,
        bars per layer after a single one; saves a PNG when path is given."""
        names = ["%d %s" % (i, self.net.describe(i).split()[0])
                 for i in range(self.net.num_layers)]
        from .plot import layer_stats
        return layer_stats(self.records, stats or self.stats, names, path, title)

