"""Errors of the tracker's command line."""


class UserError(Exception):
    """A mistake in what the user gave (paths, commits, arguments): printed as one line."""
