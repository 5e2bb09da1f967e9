"""One ranking pipeline: candidates -> filters -> score -> top-k -> re-rank -> reasons.

Serving answers with it and offline evaluation ranks with it, so what is measured is what is served.
"""
