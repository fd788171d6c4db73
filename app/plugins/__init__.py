"""Interception plugins (contract section 6): hookspecs, the host, and the sandbox.

``hookspecs`` is the contract plugin authors read; ``context`` and ``decisions`` are
what hooks receive and return; ``host`` runs a tenant's enabled plugins in order;
``operator`` loads the trusted in-process plugins; ``uploads`` checks a tenant's
uploaded source; ``sandbox`` runs that source outside the service process.
"""
