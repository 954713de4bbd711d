"""User-facing errors: the CLI prints them as one line and exits non-zero."""


class CurateError(Exception):
    """A problem with the user's input or setup, reported without a traceback."""
