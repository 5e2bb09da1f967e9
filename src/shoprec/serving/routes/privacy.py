"""A user's rights over their data: consent to personalisation, and being forgotten."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from shoprec.privacy.erasure import flag_models
from shoprec.serving.deps import Reads, User, Writes, get_runtime, path_user
from shoprec.serving.errors import documented
from shoprec.serving.runtime import Runtime
from shoprec.serving.schemas import ConsentIn, ConsentOut, Forgotten
from shoprec.storage.store import StoreBusy

router = APIRouter(prefix="/v1/users/{user_id}", tags=["privacy"])


@router.put("/consent", dependencies=Writes, summary="Record a user's consent", responses=documented(401, 422, 503))
def put_consent(
    answer: ConsentIn, user: Annotated[User, Depends(path_user)], runtime: Annotated[Runtime, Depends(get_runtime)]
) -> ConsentOut:
    """``personalised: false`` gives the user the non-personalised feed from the next request on; their events
    are then not stored (unless the shop's policy keeps them) and never reach training. ``true`` restores it."""
    runtime.store.set_consent(user.id, answer.personalised)
    return ConsentOut(user_id=user.raw, personalised=answer.personalised, recorded=True)


@router.get("/consent", dependencies=Reads, summary="A user's consent", responses=documented(401, 422, 503))
def get_consent(
    user: Annotated[User, Depends(path_user)], runtime: Annotated[Runtime, Depends(get_runtime)]
) -> ConsentOut:
    recorded = runtime.store.consents([user.id]).get(user.id)
    policy = runtime.store.consent
    return ConsentOut(user_id=user.raw, personalised=policy.allows(recorded), recorded=recorded is not None)


@router.delete("", dependencies=Writes, summary="Forget a user", responses=documented(401, 422, 503))
def forget(
    user: Annotated[User, Depends(path_user)],
    runtime: Annotated[Runtime, Depends(get_runtime)],
) -> Forgotten:
    """Erase the user's events, conversations and consent record (the next feed is a cold start) and keep only a
    one-way erasure tag; then rewrite the store's file so the deleted bytes leave the disk too (SQLite: writers
    wait meanwhile, up to the busy timeout), and flag the served model if it was trained on the user."""
    erased = runtime.store.forget_users([user.id])
    try:
        compacted = runtime.store.compact()
    except StoreBusy:  # erased all the same; the bytes go at the next rewrite (another forget, `store purge`)
        compacted = False
    flagged = flag_models([runtime.model_dir], erased.tags)
    return Forgotten(
        user_id=user.raw,
        events=erased.events,
        chat_turns=erased.chat_turns,
        compacted=compacted,
        retrain_needed=bool(flagged),
    )
