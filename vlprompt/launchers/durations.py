"""Durations as Slurm writes them, for `--time` (a job's limit) and `--run-timeout` (a local run's limit).

    duration_seconds("90")        -> 5400       a number alone is minutes, as sbatch --time reads it
    duration_seconds("1:30:00")   -> 5400       HH:MM:SS
    duration_seconds("10:30")     -> 630        MM:SS
    duration_seconds("2-00")      -> 172800     D-HH, D-HH:MM, D-HH:MM:SS
    duration_seconds("45s")       -> 45         a number with a unit: s, m, h or d
"""
import math
import re

from ..errors import ConfigValueError

FORMATS = "minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS, or a number with a unit (45s, 30m, 4h, 1d)"
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration_seconds(value, option="--time"):
    """Seconds of a duration in Slurm's formats (module docstring); a ConfigValueError naming `option`
    otherwise, or for a duration that is not positive."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = value * 60
    else:
        text = str(value).strip()
        unit = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smhd])", text)
        m = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text)
        if unit:
            seconds = float(unit.group(1)) * UNITS[unit.group(2)]
        elif m:
            days, a, b, c = m.groups()
            parts = [int(x) for x in (a, b, c) if x is not None]
            if days is not None:  # D-HH[:MM[:SS]]
                hours, mins, secs = (parts + [0, 0])[:3]
                seconds = int(days) * 86400 + hours * 3600 + mins * 60 + secs
            elif len(parts) == 1:
                seconds = parts[0] * 60
            elif len(parts) == 2:  # MM:SS
                seconds = parts[0] * 60 + parts[1]
            else:
                seconds = parts[0] * 3600 + parts[1] * 60 + parts[2]
        else:
            raise ConfigValueError(f"{option} {value!r}: use {FORMATS}")
    if seconds <= 0:
        raise ConfigValueError(f"{option} {value!r}: must be positive")
    return seconds


def duration_minutes(value, option="--time"):
    """Whole minutes (rounded up) of a duration, as sbatch --time takes it."""
    return int(math.ceil(duration_seconds(value, option) / 60))


def format_duration(seconds):
    """A duration for people: 45 s, 12 min, 3 h 20 min."""
    seconds = int(round(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"
