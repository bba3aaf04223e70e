"""Project-wide exception type: every user-facing failure raises it with a message naming the culprit."""


class HmsparError(Exception):
    """A problem with the user's input (params key, file, column, row) rather than a bug."""
