"""The admin API (contract section 5) and the operations it shares with the CLI.

- ``routes.py``: every admin route and its thin handler; ``cli.py``: the same operations
  as ``revocation-service`` subcommands.
- ``auth.py``: the operator's key and tenant admin keys; who may call what.
- one module of plain ``async`` operations per resource, each taking ``Services``:
  ``tenants``, ``admin_keys``, ``clients``, ``credentials``, ``grants``, ``subjects``,
  ``events``. They raise ``app.errors`` classes; nothing in them knows about HTTP.
- ``representations.py``: the JSON of each record; ``fields.py``: input validators and
  the field path convention of ``FieldError``; ``http.py``: raw-path routing and JSON I/O.
"""
