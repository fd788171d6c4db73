"""A synchronous probe plugin (see ``_probe``)."""

from __future__ import annotations

from tests.plugins.probes._probe import sync_hooks

__version__ = "1"

plugin_config, pre_auth, pre_revoke, post_revoke, response_mapping = sync_hooks("probe_c")
