"""The recipe's one error base.

Every module's error class derives from :class:`RecipeError`: bad input or state (a missing,
corrupt or inconsistent file, folder, option or checkpoint) whose message names the file and the
fix. Each command line catches this one type and prints its message as one line, without a
traceback; anything else is a bug and keeps its traceback.
"""
from __future__ import annotations


class RecipeError(ValueError):
    """Bad input or state; the message names the file (or option) and the fix."""


def run_generator(generate, output_dir: str) -> int:
    """A generator command's last step: ``generate()`` (returning the mixtures written per split),
    its :class:`RecipeError` or ``OSError`` (a full or read-only disk, with the file in its message)
    printed as one line; the exit status."""
    import logging
    import sys

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        written = generate()
    except (RecipeError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"done: {written} mixtures written under {output_dir}")
    return 0
