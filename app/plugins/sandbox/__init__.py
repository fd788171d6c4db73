"""Running tenants' uploaded plugin code (untrusted Python) outside the service process.

``Sandbox.call`` runs one hook in a worker process of the tenant (``pool``, ``process``)
started from a clean interpreter and confined by what the kernel offers (``launch``,
``worker``); the section "The sandbox" of ``docs/PLUGINS.md`` lists the threats and
the layers.
"""

from app.plugins.sandbox.limits import SandboxLimits
from app.plugins.sandbox.model import PluginCode, PluginFailure, SandboxResult
from app.plugins.sandbox.sandbox import Sandbox

__all__ = ["PluginCode", "PluginFailure", "Sandbox", "SandboxLimits", "SandboxResult"]
