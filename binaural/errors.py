"""The recipe's one error base.

Every module's error class derives from :class:`RecipeError`: bad input or state (a missing,
corrupt or inconsistent file, folder, option or checkpoint) whose message names the file and the
fix. Each command line catches this one type and prints its message as one line, without a
traceback; anything else is a bug and keeps its traceback.
"""
from __future__ import annotations


class RecipeError(ValueError):
    """Bad input or state; the message names the file (or option) and the fix."""
