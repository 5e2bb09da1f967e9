"""Behaviour events."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends

from shoprec.serving.deps import Writes, check_batch, get_pipeline, get_pseudonymize, get_settings, validate_each
from shoprec.serving.errors import documented
from shoprec.serving.pipeline import Pipeline
from shoprec.serving.schemas import EventBatch, EventIn, EventsAccepted
from shoprec.serving.settings import ServingSettings

router = APIRouter(tags=["events"], dependencies=Writes)


@router.post("/v1/events", summary="Record behaviour events", responses=documented(400, 401, 413, 422, 503))
def post_events(
    batch: EventBatch,
    pipeline: Annotated[Pipeline, Depends(get_pipeline)],
    pseudonymize: Annotated[Callable[[str], str], Depends(get_pseudonymize)],
    settings: Annotated[ServingSettings, Depends(get_settings)],
) -> EventsAccepted:
    """Validate each event on its own, store the valid ones in one transaction, and answer after the commit.

    200 once the batch is read: ``stored`` counts the events written (durably, before this response),
    ``rejected`` gives the index, field and reason of each event that was not (invalid, or an unknown item);
    ``withheld`` counts valid events not stored because their user has not consented (see the consent policy).
    207 Multi-Status is WebDAV's, with its own body format, so a plain 200 with the rejected list is the contract.
    """
    check_batch(len(batch.events), settings.max_batch, "events")
    valid, rejected = validate_each(EventIn, batch.events)
    accepted = pipeline.ingest(valid, pseudonymize)
    return EventsAccepted(
        stored=accepted.stored,
        rejected=sorted([*rejected, *accepted.rejected], key=lambda e: e.index),
        withheld=accepted.withheld,
    )
