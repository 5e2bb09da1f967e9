"""What the server may write about a request in its log: the path with the caller's user id taken out.

User ids arrive raw in paths (``/v1/users/{user_id}/...``) and queries (``?user_id=``); pseudonyms are made from them
inside the routes, so a log line that quoted the path would carry the raw id the store never keeps.
"""

from __future__ import annotations

import re

_USER_IN_PATH = re.compile(r"(/v1/users/)[^/?#]+")
_USER_IN_QUERY = re.compile(r"([?&]user_id=)[^&#]*")


def redacted(target: str) -> str:
    """``target`` (a path, with or without its query) with every user id replaced by ``{user_id}``."""
    return _USER_IN_QUERY.sub(r"\1{user_id}", _USER_IN_PATH.sub(r"\1{user_id}", target))
