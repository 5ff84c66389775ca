"""Reading config files and KEY VALUE options into a (yacs) config, whichever engine made it: an unknown key
names the file or option it came from and the closest existing key; a value of the wrong type is one line
naming the key, the value and the type expected (an integer where a float is expected is that float)."""
import difflib
import os

import yaml
from yacs.config import CfgNode as _YacsCfgNode
from yacs.config import _check_and_coerce_cfg_value_type

from ..errors import ConfigValueError, UserError


class ConfigFileError(UserError, ValueError):
    """Config input that cannot be used: a missing or malformed YAML file, options that are not KEY VALUE pairs."""


class ConfigKeyError(UserError, KeyError):
    """An unknown config key; the message names the key, where it came from and the closest keys."""

    def __str__(self):
        return str(self.args[0]) if self.args else ""


def iter_config_keys(cfg, prefix=""):
    """Yield the full dotted name of every leaf key in a CfgNode."""
    for key, value in cfg.items():
        full = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from iter_config_keys(value, full + ".")
        else:
            yield full


def _unknown_key_error(cfg, full_key, source):
    known = list(iter_config_keys(cfg))
    close = difflib.get_close_matches(full_key, known, n=1, cutoff=0.6)
    if not close:  # e.g. the right key name under the wrong parent node
        last = full_key.rsplit(".", 1)[-1]
        close = [k for k in known if k.rsplit(".", 1)[-1] == last][:1]
    hint = f" Did you mean {close[0]!r}?" if close else ""
    where = f" (in {source})" if source else ""
    return ConfigKeyError(f"Unknown config key {full_key!r}{where}.{hint}")


def _new_allowed(node):
    fn = getattr(node, "is_new_allowed", None)
    return bool(fn()) if fn else False


def check_keys_exist(cfg, other, source=""):
    """Raise ConfigKeyError for the first key of the mapping `other` that `cfg` does not define."""

    def walk(node, mapping, prefix):
        for key, value in mapping.items():
            full = f"{prefix}{key}"
            if key not in node:
                if _new_allowed(node):
                    continue
                raise _unknown_key_error(cfg, full, source)
            if isinstance(value, dict) and isinstance(node[key], dict):
                walk(node[key], value, full + ".")

    walk(cfg, other, "")


def merge_from_file_checked(cfg, path):
    """cfg.merge_from_file(path), but an unknown key names the file and the closest existing key."""
    if not os.path.isfile(path):
        raise ConfigFileError(f"Config file not found: {path}")
    try:
        with open(path, "r") as f:
            loaded = yaml.safe_load(f) or {}
    except yaml.YAMLError as e:
        raise ConfigFileError(f"Config file {path} is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(loaded, dict):
        raise ConfigFileError(f"Config file {path} must hold a mapping of keys, got {type(loaded).__name__}")
    check_keys_exist(cfg, loaded, source=path)
    _merge_mapping(cfg, loaded, "", path)


def _merge_mapping(node, mapping, prefix, source=""):
    """yacs' merge of a YAML mapping into `node`, walking into existing sub-nodes whatever their class: a
    codebase's train.py adds its trainers' nodes as plain `yacs.config.CfgNode()`, which yacs' own merge
    refuses to merge a YAML into a node of another class ("Type mismatch")."""
    if node.is_frozen():
        raise AttributeError(f"Attempted to merge into a frozen config node ({prefix or 'the root'})")
    for key, value in mapping.items():
        full = f"{prefix}{key}"
        if isinstance(value, dict) and isinstance(node.get(key), _YacsCfgNode):
            _merge_mapping(node[key], value, full + ".", source)
            continue
        value = type(node)(value) if isinstance(value, dict) else _YacsCfgNode._decode_cfg_value(value)
        if key in node:
            value = coerce_value(value, node[key], full, source)
        node[key] = value


_EXPECTED = {bool: "True or False", int: "an integer", float: "a number", str: "a string",
             tuple: "a tuple, e.g. (224, 224)", list: "a list, e.g. [0.5, 0.5]"}


def coerce_value(value, original, key, source=""):
    """`value` (already decoded, as yacs decodes it) for a key whose default is `original`: yacs' type rules,
    except that an integer where a float is expected is that float (OPTIM.LR 0 is 0.0, refused then by the
    learning-rate rule, not as a "type mismatch"), and a mismatch is one line naming the key, the value and
    the type expected."""
    if original is None or type(value) is type(original):
        return value
    if isinstance(original, float) and type(value) is int:
        return float(value)
    if isinstance(original, (tuple, list)) and isinstance(value, (tuple, list)):
        return type(original)(value)
    try:
        return _check_and_coerce_cfg_value_type(value, original, key.rsplit(".", 1)[-1], key)
    except ValueError:
        where = f" (in {source})" if source and source != "command-line options" else ""
        expected = _EXPECTED.get(type(original), type(original).__name__)
        raise ConfigValueError(f"{key} {value!r}{where} is not allowed: expected {expected}") from None


def merge_from_list_checked(cfg, opts, source="command-line options"):
    """cfg.merge_from_list(opts) with the same unknown-key message as merge_from_file_checked."""
    opts = list(opts or [])
    if len(opts) % 2:
        raise ConfigFileError(f"Options must be KEY VALUE pairs; got an odd number of items in {source}: {opts}")
    for full_key in opts[0::2]:
        node = cfg
        parts = str(full_key).split(".")
        for i, part in enumerate(parts):
            if not isinstance(node, dict) or part not in node:
                if isinstance(node, dict) and _new_allowed(node):
                    break
                raise _unknown_key_error(cfg, str(full_key), source)
            node = node[part]
    if cfg.is_frozen():
        raise AttributeError("Attempted to merge options into a frozen config")
    for full_key, raw in zip(opts[0::2], opts[1::2]):
        *parents, leaf = str(full_key).split(".")
        node = cfg
        for part in parents:
            node = node[part]
        value = _YacsCfgNode._decode_cfg_value(raw)
        node[leaf] = coerce_value(value, node[leaf], str(full_key), source) if leaf in node else value
