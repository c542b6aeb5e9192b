"""User-facing errors: one clear line, no traceback, non-zero exit at the CLI."""


class FooljaxError(Exception):
    """An error caused by bad input (flags, files, data) rather than a bug.

    Entry points catch it, print ``error: <message>`` on one line and exit with
    status 2. Library callers get an ordinary exception.
    """


class DataNotFoundError(FooljaxError):
    """No data source could be read; the message lists the paths tried."""


class WeightsError(FooljaxError):
    """A weights file is missing, corrupt, or does not fit the model."""


class WorkdirError(FooljaxError):
    """A work directory holds a finished run (and --overwrite was not given)."""


class InputError(FooljaxError, ValueError):
    """A library function was handed a meaningless argument (a shape, a range, a
    NaN, a model whose outputs are not what the argument promises). Also a
    ``ValueError``, so callers that catch that keep working."""


class ConsumedStateError(InputError):
    """A state whose buffers an earlier jitted call donated was passed again."""


class TooLargeError(InputError):
    """The requested sizes cannot fit in memory (refused before allocating)."""
