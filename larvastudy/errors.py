"""Errors that mean "the user asked for something invalid": the CLI prints them as one line, exit 2."""


class SpecError(ValueError):
    """An invalid experiment, parameter, value or Batch definition."""
