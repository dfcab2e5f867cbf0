"""The one domain exception. The CLI turns it into a one-line message and exit code 1."""


class FanEdgeError(Exception):
    """A user-facing error: the message names the problem and how to fix it."""
