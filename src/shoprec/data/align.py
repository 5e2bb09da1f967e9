"""Re-express sequences from one item vocabulary in another (a trained model's), reporting what does not map."""

from __future__ import annotations

import numpy as np

from shoprec.types import PADDING, Sequences, Vocabulary


def reindex(sequences: Sequences, source: Vocabulary, target: Vocabulary) -> tuple[Sequences, int]:
    """Map item indices of ``source`` onto ``target``; items the target does not know are removed from the
    histories and counted, so the caller can report them (a trained model cannot score what it never saw)."""
    mapping = np.concatenate([[PADDING], target.lookup(source.ids)])
    mapped = Sequences(sequences.users.copy(), sequences.indptr.copy(), mapping[sequences.items], sequences.timestamps)
    known = mapped.items != PADDING
    return mapped.keep(known), int((~known).sum())
