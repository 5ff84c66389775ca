"""Telling users which names exist: the closest registered name, the available choices. Used by the
built-in engine's registries and by vlprompt's own checks, whichever engine runs."""
import difflib


def closest_names(requested, available, n=3, cutoff=0.5):
    return difflib.get_close_matches(str(requested), [str(a) for a in available], n=n, cutoff=cutoff)


def check_availability(requested, available):
    """Raise ValueError naming the available choices and the most similar one."""
    if requested in available:
        return
    if not str(requested or "").strip():  # nothing to be close to: no guess
        raise ValueError(f"none given. The requested one is expected to belong to {sorted(available)}.")
    close = closest_names(requested, available, n=1, cutoff=0.0)
    hint = f' Did you mean "{close[0]}"?' if close else ""
    raise ValueError(
        f'"{requested}" is not registered. The requested one is expected to belong to {sorted(available)}.{hint}'
    )
