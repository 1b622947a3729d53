"""`kubohb report`: Figure 1, rank correlation and fANOVA of a sweep, from its store."""
