"""One exception family for every user-facing error.

The CLI catches :class:`SurveyError` and prints its message (one paragraph that names the bad value,
the valid values and what to do next) with a non-zero exit code instead of a traceback.
"""


class SurveyError(Exception):
    """Base class of the errors a user can fix (bad name, missing file, bad argument)."""


class ConfigError(SurveyError, ValueError):
    """An unknown name or an invalid value in a configuration, profile or CLI argument."""


class DataError(SurveyError):
    """A data file or folder that is missing, corrupt or cannot be downloaded."""


class TestSplitError(SurveyError):
    """The test split was asked for while a model is being trained or its checkpoint selected."""

    __test__ = False  # not a pytest test class
