"""MongoDB store (PyMongo's async API): ``app.store.mongodb.store.MongoStore``."""
