"""Errors a person can act on. The app's one error handler shows their message to the user."""


class UserError(Exception):
    """A problem the user can fix; `str(error)` is shown to them as written."""
