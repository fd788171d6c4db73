"""How the fuzzer runs schemathesis: its checks, phases and the admin key, shared by the
bounded run in the suite and ``scripts/fuzz.py``."""

from __future__ import annotations

import schemathesis


def schemathesis_config(operator_key: str) -> schemathesis.Config:
    return schemathesis.Config.from_dict(
        {
            # Explicit examples cannot be combined with the steering's own draws.
            "phases": {"examples": {"enabled": False}},
            # A schema-valid request may still be refused with 400 (an unknown client_id,
            # an issuer another tenant has): what the schema cannot say. Every other
            # check is on, ignored_auth included.
            "checks": {"positive_data_acceptance": {"enabled": False}},
            # The operator's key on every admin request, never a generated one;
            # ignored_auth sends requests again without it and with a wrong one.
            "auth": {"openapi": {"adminKey": {"bearer": operator_key}}},
            # Unknown query parameters and headers are ignored, as OAuth endpoints ignore
            # unknown form parameters: an extra one makes no request invalid.
            "generation": {"with-security-parameters": False, "allow-extra-parameters": False},
        }
    )
