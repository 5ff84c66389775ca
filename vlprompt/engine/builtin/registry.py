"""Name -> object registries with Dassl's interface (register/get/registered_names)."""
from ...errors import UserError
from ..names import check_availability, closest_names  # noqa: F401 (Dassl's registry module has both)


class RegistryKeyError(UserError, KeyError):
    """KeyError whose message prints as written (KeyError repr-quotes it)."""

    def __str__(self):
        return str(self.args[0]) if self.args else ""


class Registry:
    """Maps a name (by default the class's __name__) to an object.

    Usage: ``@REGISTRY.register()`` on a class, or ``REGISTRY.register(obj)``.
    """

    def __init__(self, name):
        self._name = name
        self._obj_map = {}

    def _do_register(self, name, obj, force=False):
        if name in self._obj_map and not force:
            raise RegistryKeyError(f'An object named "{name}" was already registered in the "{self._name}" registry')
        self._obj_map[name] = obj

    def register(self, obj=None, force=False):
        if obj is None:

            def wrapper(fn_or_class):
                self._do_register(fn_or_class.__name__, fn_or_class, force=force)
                return fn_or_class

            return wrapper
        self._do_register(obj.__name__, obj, force=force)
        return obj

    def get(self, name):
        if name not in self._obj_map:
            close = closest_names(name, self._obj_map)
            hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            raise RegistryKeyError(
                f'No object named "{name}" in the "{self._name}" registry '
                f"(registered: {sorted(self._obj_map)}).{hint}"
            )
        return self._obj_map[name]

    def registered_names(self):
        return list(self._obj_map.keys())

    def __contains__(self, name):
        return name in self._obj_map

    def __repr__(self):
        return f"Registry({self._name!r}, {sorted(self._obj_map)})"


# The registries that trainers and evaluators register into, here (not in trainer.py / evaluation.py) so
# that importing them does not import torch: `vlprompt data check` and the config tools need them alone.
TRAINER_REGISTRY = Registry("TRAINER")
EVALUATOR_REGISTRY = Registry("EVALUATOR")
