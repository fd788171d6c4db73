"""The OpenAPI 3.1 document of the public and admin APIs (contract section 7).

``document.py`` builds it from the application's own route table; the per-operation
metadata is in ``operations.py``, keyed by method and path, and the JSON Schemas of
bodies in ``schemas.py`` and ``settings_schema.py``, built from the constants and field
lists that the validation code itself uses.
"""
