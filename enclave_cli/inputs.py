"""Reading the files a user names on the command line, with one-line errors instead of tracebacks."""
from __future__ import annotations


def read_text(path: str) -> str:
    """The file's text; ValueError("cannot read PATH: reason") when it is missing or not text."""
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise ValueError(f"cannot read {path}: {reason}") from None
