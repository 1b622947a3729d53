"""Fixtures shared by every test area: real S3-compatible servers and stores (tests/servers.py).

Areas add their own fixtures in their own folder's conftest.py, not here.
"""

from tests.servers import (  # noqa: F401  (imported so pytest registers them)
    file_store,
    s3_server,
    s3_store,
    seaweedfs_server,
    seaweedfs_store,
)
