"""The synthetic objective keeps the trainer's exit-code contract (it stands in for the trainer)."""

from __future__ import annotations

from pathlib import Path

from trainer.contract import ExitCode
from trainer.synthetic import main


def _trial_url(root: Path, body: bytes) -> str:
    path = root / "sw" / "trials" / "it0-c0-r0" / "trial.json"
    path.parent.mkdir(parents=True)
    path.write_bytes(body)
    return path.as_uri()


def test_a_trial_json_that_is_not_json_is_a_bad_trial(tmp_path: Path) -> None:
    assert main(["--trial", _trial_url(tmp_path, b"{not json")]) == ExitCode.BAD_TRIAL


def test_a_trial_json_with_an_unknown_field_is_a_bad_trial(tmp_path: Path) -> None:
    body = b'{"sweep": "sw", "trial_id": "it0-c0-r0", "config": {}, "budget": 1,'
    body += b' "store_root": "file:///tmp", "bogus": 1}'
    assert main(["--trial", _trial_url(tmp_path, body)]) == ExitCode.BAD_TRIAL


def test_a_missing_trial_json_is_an_infrastructure_error(tmp_path: Path) -> None:
    missing = (tmp_path / "sw" / "trials" / "it0-c0-r0" / "trial.json").as_uri()
    assert main(["--trial", missing]) == ExitCode.INFRA
