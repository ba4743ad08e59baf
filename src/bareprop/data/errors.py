"""The data layer's one error type: every problem with a data file is a DataError."""


class DataError(ValueError):
    """A data file is missing, unreadable, or not what it should be. The message is one line
    that names the file (or folder, or URL) and what is wrong."""
