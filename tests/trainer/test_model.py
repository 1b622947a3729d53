"""The Zela et al. network family: parameter counts of the reference points, shapes, shake ops."""

from __future__ import annotations

import json

import pytest
import torch

from tests.trainer.helpers import TINY
from trainer.cli import main as cli_main
from trainer.hparams import TrainConfig, parse_config
from trainer.model import ModelError, Network, count_params, describe
from trainer.shake import shake_drop, shake_shake


def shake_shake_26(width: int) -> TrainConfig:
    """Shake-Shake 26 2x<width>d: 4 blocks/stage, 2 branches, 16 stem filters, widths w/2w/4w."""
    return parse_config(
        {
            "nr_residual_blocks_1": 4,
            "nr_residual_blocks_2": 4,
            "nr_residual_blocks_3": 4,
            "initial_filters": 16,
            "widen_factor_1": width / 16,
            "widen_factor_2": 2.0,
            "widen_factor_3": 2.0,
            "res_branches_1": 2,
            "res_branches_2": 2,
            "res_branches_3": 2,
        }
    )


@pytest.mark.parametrize(("width", "millions"), [(32, 2.9), (64, 11.7), (96, 26.2)])
def test_shake_shake_26_parameter_counts(width: int, millions: float) -> None:
    info = describe(shake_shake_26(width))
    assert info["depth"] == 26
    assert [s["width"] for s in info["stages"]] == [width, 2 * width, 4 * width]
    assert info["params"] == pytest.approx(millions * 1e6, rel=0.03)


def test_the_defaults_are_shake_shake_26_2x32d_and_meta_count_matches_a_real_build() -> None:
    cfg = TrainConfig()
    assert cfg == shake_shake_26(32)
    assert describe(cfg)["params"] == count_params(Network(cfg))


def test_describe_cli_prints_one_json_object(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["--describe", json.dumps({"res_branches_2": 1, "initial_filters": 8})]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["params"] > 0
    assert [s["branches"] for s in out["stages"]] == [2, 1, 2]
    assert [s["combine"] for s in out["stages"]] == ["shake-shake", "shakedrop", "shake-shake"]
    assert [s["blocks"] for s in out["stages"]] == [4, 4, 4]
    assert [s["width"] for s in out["stages"]] == [16, 32, 64]


def test_describe_cli_rejects_an_unknown_parameter_by_name(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli_main(["--describe", json.dumps({"nr_blocks": 3})]) == 2
    assert "nr_blocks" in capsys.readouterr().err


def test_integer_parameters_accept_whole_floats_and_reject_fractions() -> None:
    assert parse_config({"batch_size": 64.0}).batch_size == 64
    with pytest.raises(ValueError, match="batch_size"):
        parse_config({"batch_size": 64.5})


@pytest.mark.parametrize(("channels", "size"), [(3, 32), (1, 28), (3, 17)])
def test_any_input_size_and_channel_count(channels: int, size: int) -> None:
    torch.manual_seed(0)
    model = Network(parse_config(TINY), in_channels=channels)
    out = model(torch.randn(4, channels, size, size))
    assert out.shape == (4, 10)
    out.sum().backward()
    model.eval()
    assert model(torch.randn(2, channels, size, size)).shape == (2, 10)


def test_a_width_that_rounds_to_zero_is_a_model_error() -> None:
    with pytest.raises(ModelError, match="widen_factor"):
        Network(parse_config({"initial_filters": 1, "widen_factor_1": 0.5, "widen_factor_2": 0.5}))


def test_shake_shake_forward_weights_sum_to_one_and_backward_uses_other_weights() -> None:
    torch.manual_seed(0)
    ones = [torch.ones(8, 2, 3, 3, requires_grad=True) for _ in range(3)]
    out = shake_shake(ones, training=True)
    # softmax weights sum to 1 per image: the sum of three all-ones branches is exactly 1
    assert torch.allclose(out, torch.ones_like(out))
    out.sum().backward()
    grads = torch.stack([b.grad[:, 0, 0, 0] for b in ones])  # type: ignore[index]
    assert torch.allclose(grads.sum(0), torch.ones(8))  # beta is a softmax too
    assert not torch.allclose(grads[0], grads[1])  # random per branch and image
    a, b = torch.full((2, 1, 1, 1), 2.0), torch.full((2, 1, 1, 1), 4.0)
    assert torch.allclose(shake_shake([a, b], training=False), torch.full_like(a, 3.0))


def test_shake_drop_eval_scales_and_train_gates() -> None:
    x = torch.ones(6, 1, 1, 1)
    assert torch.allclose(shake_drop(x, 0.25, training=False), x * 0.75)
    torch.manual_seed(0)
    assert torch.equal(shake_drop(x, 0.0, training=True), x)
    xs = x.clone().requires_grad_(True)
    y = shake_drop(xs, 1.0, training=True)  # always dropped: alpha in [-1, 1], beta in [0, 1]
    y.sum().backward()
    assert (y.abs() <= 1).all() and not torch.allclose(y, x)
    grad = xs.grad
    assert grad is not None
    assert ((grad >= 0) & (grad <= 1)).all()
    assert not torch.allclose(grad, y.detach())
