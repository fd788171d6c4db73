"""OAuth 2.0 endpoints and the steps they share, grouped by the RFC they implement."""
