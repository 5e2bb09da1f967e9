"""Fill an empty store from a dataset, so a fresh deployment serves the catalog and histories the model knows."""

from __future__ import annotations

import numpy as np

from shoprec.data.dataset import Dataset
from shoprec.ranking.items import catalog_record
from shoprec.storage.store import Store, StoredEvent
from shoprec.types import EventType

EVENT_BATCH = 10_000  # events per transaction: bounded memory per insert, few commits


def seed_store(store: Store, dataset: Dataset) -> tuple[int, int]:
    """Copy the dataset's catalog and every interaction into ``store``; returns (items, events) written.

    A store that already has items is left alone, so running this at every start is safe. The events go in first
    and the items last: the items are what marks a store as seeded, so a run cut short is redone at the next start
    (repeating any event batches it had already written) instead of leaving a catalog without histories.
    """
    if store.count_items() > 0:
        return 0, 0
    sequences = dataset.sequences
    users = np.repeat(sequences.users, sequences.lengths())
    n_events = 0
    for start in range(0, sequences.n_interactions, EVENT_BATCH):
        stop = min(start + EVENT_BATCH, sequences.n_interactions)
        n_events += store.add_events(
            [
                StoredEvent(
                    user_id=dataset.users.id_of(int(users[row])),
                    item_id=dataset.items.id_of(int(sequences.items[row])),
                    type=EventType.PURCHASE if dataset.event_types is None else EventType(dataset.event_types[row]),
                    timestamp=None if sequences.timestamps is None else float(sequences.timestamps[row]),
                )
                for row in range(start, stop)
            ]
        )
    records = dataset.catalog.to_dict("records")  # row i is item index i + 1
    store.upsert_items([catalog_record(dataset.items.id_of(i), record) for i, record in enumerate(records, start=1)])
    return len(records), n_events
