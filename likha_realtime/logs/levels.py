"""Log levels of the logs socket (PROTOCOL §7) and their mapping from Python's logging levels."""

from __future__ import annotations

import logging

WIRE_LEVELS: dict[str, int] = {"trace": 10, "debug": 20, "info": 30, "warn": 40, "error": 50, "fatal": 60}

# Python level (lower bound) -> wire level; anything below DEBUG is trace.
_PYTHON_TO_WIRE = (
    (logging.CRITICAL, 60),
    (logging.ERROR, 50),
    (logging.WARNING, 40),
    (logging.INFO, 30),
    (logging.DEBUG, 20),
)


def wire_level(levelno: int) -> int:
    """The §7 number of a Python ``levelno``: DEBUG→20, INFO→30, WARNING→40, ERROR→50, CRITICAL→60, below→10."""
    for python_level, wire in _PYTHON_TO_WIRE:
        if levelno >= python_level:
            return wire
    return WIRE_LEVELS["trace"]


def level_number(name: str) -> int:
    """The §7 number of a level name (``KeyError`` for an unknown one)."""
    return WIRE_LEVELS[name]
