"""Errors the runtime raises for a user's own mistakes (bad bundle, bad argument, bad device).

Every one derives from EdgeKDError, which the CLI prints as one line without a traceback; anything
else is a bug and shows its traceback. Bad arguments are also ValueError / TypeError, so callers
that catch those keep working."""

from __future__ import annotations


class EdgeKDError(Exception):
    """Base of every error edgekd raises on purpose; the CLI prints these without a traceback."""


class BundleError(EdgeKDError):
    """The bundle folder is missing, damaged, or written by a newer edgekd."""


class InputError(EdgeKDError, ValueError):
    """A bad argument value: speed, batch size, engine, threading, device, ..."""


class InputTypeError(EdgeKDError, TypeError):
    """An argument of the wrong type (texts that are not strings, a speed that is not a number, ...)."""


class DeviceError(InputError):
    """The requested device / execution provider is not available."""
