"""The top-k anchors of a batch of inputs: ids and similarities in tie-rule order (step 1 of a query)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import relrep


@dataclass
class TopK:
    """Per input row: its top-k anchor ids (-1 padded) and similarities, in tie-rule order."""

    ids: np.ndarray  # (B, k) int64, -1 where fewer than k anchors exist
    sims: np.ndarray  # (B, k) float64

    def row(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        keep = self.ids[i] >= 0
        return self.ids[i][keep], self.sims[i][keep]

    def reps(self, p: float) -> list[relrep.SparseRep]:
        return relrep.relative_reps_batch(self.ids, self.sims, p)

    def cut(self, k: int) -> TopK:
        """The first ``k`` of every row (relrep.cut_to_k, which checks the rows are in tie-rule order)."""
        ids, sims = relrep.cut_to_k(self.ids, self.sims, k)
        return TopK(ids, sims)
