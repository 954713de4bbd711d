"""Validation of single payloads: an accepted payload yields its facts, a bad one a reason."""


class Rejected(Exception):
    """A payload that must be quarantined; ``reason`` is ``"<code>: <human detail>"``."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.reason = f"{code}: {detail}"
