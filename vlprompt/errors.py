"""User errors: a bad key, value, path or file. One line that names the cause and the fix, exit code 2.

Anything raised as (or derived from) `UserError` is the user's to fix, so the command line tools print
its message without a traceback (`VLPROMPT_DEBUG=1` shows it). Every other exception is a bug or an
environment problem and keeps its traceback.
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


class CheckpointError(UserError, ValueError):
    """A checkpoint or CLIP weights file that cannot be used (corrupt, empty, untrusted content)."""


def user_error_types():
    """The exception types reported as user errors: ours, and the engine's/readers' own user-facing ones."""
    from .data.errors import DatasetLayoutError
    from .engine.builtin.config import ConfigFileError, ConfigKeyError
    from .engine.builtin.registry import RegistryKeyError

    types = [UserError, DatasetLayoutError, ConfigFileError, ConfigKeyError, RegistryKeyError]
    try:  # the trainer base's "checkpoint does not fit the model" error
        from .trainer import CheckpointMismatch
        types.append(CheckpointMismatch)
    except Exception:  # noqa: BLE001 (only missing in stripped-down installs)
        pass
    try:
        from .clip_loader import ClipWeightsNotFound
        types.append(ClipWeightsNotFound)
    except Exception:  # noqa: BLE001
        pass
    return tuple(types)


def message_of(error):
    text = error.args[0] if len(error.args) == 1 and isinstance(error.args[0], str) else str(error)
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
    except user_error_types() as e:
        report_user_error(e)
        return EXIT_USER_ERROR
    return result if isinstance(result, int) else 0
