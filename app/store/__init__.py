"""Storage backends behind one protocol (``app.store.base.Store``)."""
