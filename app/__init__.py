"""Multi-tenant OAuth 2.0 token revocation service."""

__version__ = "0.1.0"
