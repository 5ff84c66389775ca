"""User errors: a bad key, value, path or file. One line that names the cause and the fix, exit code 2.

Anything raised as (or derived from) `UserError` is the user's to fix, so the command line tools print
its message without a traceback (`VLPROMPT_DEBUG=1` shows it). Every user error derives from it (the
engine's config and registry errors and the readers' dataset errors too), so a tool only catches UserError.
Every other exception is a bug or an environment problem and keeps its traceback.
"""
import os
import sys
import traceback

EXIT_USER_ERROR = 2


class UserError(Exception):
    """Something the user gave (a key, value, path or file) is not usable; the message says what to do."""


class ConfigValueError(UserError, ValueError):
    """A config value outside what the method allows (names the key, the value and what is allowed)."""


class RunDirectoryError(UserError):
    """The output directory holds another run, or is in use by another process."""


class MissingFileError(UserError, FileNotFoundError):
    """A file or folder the user named (or a run needs) does not exist."""


class NonFiniteError(UserError, FloatingPointError):
    """A loss or a trained parameter became NaN or infinite (half precision, a learning rate too large); the
    message says which and what to try."""


class ImageReadError(UserError, OSError):
    """An image file a run needs is missing or cannot be decoded; the message names it."""


class OutputWriteError(UserError, OSError):
    """A file could not be written where the user asked for it (a full disk, a read-only folder); the message
    names the path and the cause. Nothing half-written is left behind (vlprompt.fileio.atomic_write)."""


class CheckpointError(UserError, ValueError):
    """A checkpoint or CLIP weights file that cannot be used (corrupt, empty, untrusted content)."""


def message_of(error):
    text = error.args[0] if len(error.args) == 1 and isinstance(error.args[0], str) else str(error)
    if text.startswith("Caught ") and "Original Traceback" in text:
        # re-raised from a data-loader worker: the original message is the traceback's last line
        last = text.rstrip().splitlines()[-1]
        text = last.split(": ", 1)[1] if ": " in last else last
    return text


def report_user_error(error, stream=None):
    """Print `error: <message>` (and the traceback with VLPROMPT_DEBUG=1) to stderr."""
    stream = stream or sys.stderr
    if os.environ.get("VLPROMPT_DEBUG"):
        traceback.print_exception(type(error), error, error.__traceback__, file=stream)
    stream.write(f"error: {message_of(error)}\n")
    stream.flush()


def run_main(main, argv=None):
    """Call `main(argv)`; a user error becomes one line on stderr and exit code 2."""
    try:
        result = main(argv)
    except UserError as e:
        report_user_error(e)
        return EXIT_USER_ERROR
    return result if isinstance(result, int) else 0
