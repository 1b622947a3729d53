"""Fixtures shared by every test area: real S3-compatible servers and stores (tests/servers.py),
and the uninterrupted reference sweeps the fault tests compare with (tests/sweeps.py).

Areas add their own fixtures in their own folder's conftest.py, not here.
"""

from tests.servers import (  # noqa: F401  (imported so pytest registers them)
    file_store,
    s3_server,
    s3_store,
    seaweedfs_server,
    seaweedfs_store,
)
from tests.sweeps import calm_sweep  # noqa: F401  (imported so pytest registers it)
