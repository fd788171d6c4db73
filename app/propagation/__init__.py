"""Propagation of revocations to resource servers (contract section 4.4).

By pull: the events feed for the tenant's clients (``feed``, long-poll and Server-Sent
Events, woken by ``notifier``), RFC 8936 poll of Security Event Tokens, the Token
Status List. By push: RFC 8935 delivery of Security Event Tokens (RFC 8417) to the
receivers a tenant admin registers. Everything signed is signed with the tenant's own
keys (``signing_keys``), published at ``{issuer}/jwks``. ``docs/PROPAGATION.md`` has
the picture.
"""
