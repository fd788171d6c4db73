"""Pure ASGI middleware: request context and canonical log line, tenant resolution."""
