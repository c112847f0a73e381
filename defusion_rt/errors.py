"""User-facing errors: the CLI prints their message on one line and exits non-zero, without a traceback."""


class UserError(Exception):
    """Bad input a user can fix; the message names the problem and the fix."""
