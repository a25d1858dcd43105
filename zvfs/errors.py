"""Errors that end a command with a one-line message (exit status 2)."""


class StoreError(Exception):
    """A store that cannot be served; the message is one line naming the store."""


class UsageError(Exception):
    """A user mistake outside the store: a mount point missing or busy, a port in use..."""
