"""Pure ASGI middleware: request context and canonical log line, header limits, tenant
resolution, CORS."""
