"""Errors the runtime raises for a user's own mistakes (bad bundle, bad device)."""

from __future__ import annotations


class EdgeKDError(Exception):
    """Base of every error edgekd raises on purpose; the CLI prints these without a traceback."""


class BundleError(EdgeKDError):
    """The bundle folder is missing, damaged, or written by a newer edgekd."""


class DeviceError(EdgeKDError):
    """The requested device / execution provider is not available."""
