"""The one exception type for mistakes a user can fix (bad config, missing data, wrong workdir)."""


class UserError(Exception):
    """A problem with the user's input, reported as one sentence on stderr without a traceback."""
