"""Errors that mean "the user asked for something invalid": the CLI prints them as one line, exit 2."""


class SpecError(ValueError):
    """An invalid experiment, parameter, value or Batch definition."""


class StorageError(SpecError):
    """A storage that cannot be opened: a bad URL, a missing driver, file or server, or a file that is not one."""


class InertParameterWarning(UserWarning):
    """A parameter that is set or swept but cannot change any result (the CLI prints it as one line)."""
