"""The store stays light: a file store loads neither boto3 nor torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_file_store_imports_neither_boto3_nor_torch(tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "from trainer.store import open_store\n"
        f"s = open_store({tmp_path.as_uri()!r})\n"
        "s.put_json('a/b.json', {'x': 1})\n"
        "assert s.get_json('a/b.json') == {'x': 1}\n"
        "print(sorted(m for m in ('boto3', 'botocore', 'torch') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


def test_s3_store_module_does_not_import_torch() -> None:
    script = (
        "import sys\nimport trainer.store.s3, trainer.contract\nprint('torch' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "False"
