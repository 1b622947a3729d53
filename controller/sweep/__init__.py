"""The sweep loop: the spec (``spec``), the scheduler that drives an optimiser and a backend
(``scheduler``), its resumable state (``state``), cost caps (``cost``, pure), and the views of a
sweep (``status``, ``progress``). ``runner`` starts or resumes one sweep; ``backend`` builds the
backend a spec names."""
