"""`kubohb submit`: a sweep from CI onto a namespace prepared by a `mode: namespace` install."""
