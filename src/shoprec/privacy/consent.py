"""A shop's consent policy: whose behaviour may personalise, be stored and be trained on."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict

from shoprec.privacy.erasure import erasure_tag

_YES = frozenset({"true", "yes", "y", "1", "on", "granted"})
_NO = frozenset({"false", "no", "n", "0", "off", "withdrawn", "denied"})


class ConsentPolicy(BaseModel):
    """``required``: a user is personalised only after saying yes (opt-in); otherwise until they say no (opt-out).
    ``keep_events_without_consent``: events of a user without consent are stored (for the shop's other lawful
    uses) rather than dropped at the door; either way they never personalise and never reach training."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    required: bool = False
    keep_events_without_consent: bool = False

    def allows(self, recorded: bool | None) -> bool:
        """Whether a user with this recorded answer (None: never asked) may be personalised and trained on."""
        return (not self.required) if recorded is None else recorded


def parse_consent(value: object) -> bool | None:
    """A consent cell as True/False, None when empty; ValueError for anything else (a typo must not read as yes)."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text == "":
        return None
    if text in _YES:
        return True
    if text in _NO:
        return False
    raise ValueError(f"consent must be true or false, not {value!r}")


@dataclass(frozen=True)
class Admission:
    """Who may enter training from a data file: users the policy allows, by the answer the store recorded for them
    (it overrides the file's, being what the user said last through the API) or else the file's own consent
    column, and never a user whose erasure tag is in ``erased``."""

    policy: ConsentPolicy = field(default_factory=ConsentPolicy)
    recorded: Mapping[str, bool] = field(default_factory=dict)  # pseudonym -> answer kept in the store
    erased: frozenset[str] = frozenset()  # erasure tags of forgotten users

    def admits(self, pseudonym: str, stated: bool | None = None) -> bool:
        if self.erased and erasure_tag(pseudonym) in self.erased:
            return False
        return self.policy.allows(self.recorded.get(pseudonym, stated))
