"""The local backend: ``backend`` (the Backend), ``wrap`` (the per-attempt wrapper process)."""
