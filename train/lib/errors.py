"""The one exception the commands turn into a one-line `error: ...` and exit status 2."""


class UserError(Exception):
    """A problem with what the user asked for or gave us; its message is shown as one line."""
