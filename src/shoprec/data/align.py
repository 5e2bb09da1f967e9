"""Re-express sequences from one item vocabulary in another (a trained model's), reporting what does not map."""

from __future__ import annotations

import numpy as np

from shoprec.types import PADDING, Sequences, Vocabulary


def reindex(sequences: Sequences, source: Vocabulary, target: Vocabulary) -> tuple[Sequences, int]:
    """Map item indices of ``source`` onto ``target``; items the target does not know are removed from the
    histories and counted, so the caller can report them (a trained model cannot score what it never saw)."""
    mapping = np.concatenate([[PADDING], target.lookup(source.ids)])
    mapped = mapping[sequences.items]
    known = mapped != PADDING
    running = np.concatenate([[0], np.cumsum(known, dtype=np.int64)])
    indptr = running[sequences.indptr]
    stamps = None if sequences.timestamps is None else sequences.timestamps[known].copy()
    return Sequences(sequences.users.copy(), indptr, mapped[known], stamps), int((~known).sum())
