"""Where trials run: ``base`` (the Backend protocol the scheduler is typed against), ``local``
(a subprocess per trial) and ``k8s`` (a batch/v1 Job per trial). Nothing here imports the sweep
loop; the loop builds a backend from the sweep spec in ``controller.sweep.backend``."""
