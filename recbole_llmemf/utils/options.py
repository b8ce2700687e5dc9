"""Whether a config uses the plugin's options: the one test behind every change to RecBole's
behaviour that is not asked for by a key of its own (hooks.py)."""

from __future__ import annotations


def plugin_options_on(config) -> bool:
    """True where the config names a ``domain_field`` or a ``protocol``, the plugin's options;
    without them RecBole's models give RecBole's numbers."""
    return config["domain_field"] is not None or config["protocol"] is not None
