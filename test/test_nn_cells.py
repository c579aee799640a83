"""Cells: parity with ncps 1.0.1, irregular dt for any batch, dt gradients, sequence == looped step."""

from __future__ import annotations

import pytest
import torch

from lnn_control.nn.baselines import FeedForwardCore, LSTMCore
from lnn_control.nn.cfc import CfCCell
from lnn_control.nn.core import RecurrentCore
from lnn_control.nn.ltc import LTCCell
from lnn_control.nn.wiring import NCP, Wiring

ncps = pytest.importorskip("ncps", reason="ncps 1.0.1 (the reference implementation) is in the [dev] extra")
from ncps.torch import LTCCell as RefLTCCell  # noqa: E402
from ncps.torch import WiredCfCCell as RefWiredCfCCell  # noqa: E402
from ncps.wirings import NCP as RefNCP  # noqa: E402


def ours_from_reference(ref_wiring) -> Wiring:
    layers = [list(ref_wiring.get_neurons_of_layer(i)) for i in range(ref_wiring.num_layers)]
    return Wiring(ref_wiring.adjacency_matrix, ref_wiring.sensory_adjacency_matrix, ref_wiring.output_dim, layers)


def copy_ltc(ref: RefLTCCell, ours: LTCCell) -> None:
    p = ref._params
    names = {
        "gleak_raw": "gleak", "vleak": "vleak", "cm_raw": "cm", "sigma": "sigma", "mu": "mu", "w_raw": "w",
        "erev": "erev", "sensory_sigma": "sensory_sigma", "sensory_mu": "sensory_mu", "sensory_w_raw": "sensory_w",
        "sensory_erev": "sensory_erev", "input_w": "input_w", "input_b": "input_b", "output_w": "output_w",
        "output_b": "output_b",
    }  # fmt: skip
    with torch.no_grad():
        for mine, theirs in names.items():
            getattr(ours, mine).copy_(p[theirs])


def copy_cfc(ref: RefWiredCfCCell, ours: CfCCell) -> None:
    with torch.no_grad():
        for a, b in zip(ref._layers, ours.layers):
            if ours.mode == "pure":
                b.weight.copy_(a.ff1.weight)
                b.bias.copy_(a.ff1.bias)
                b.w_tau.copy_(a.w_tau)
                b.A.copy_(a.A)
            else:
                b.weight.copy_(torch.cat([a.ff1.weight, a.ff2.weight, a.time_a.weight, a.time_b.weight]))
                b.bias.copy_(torch.cat([a.ff1.bias, a.ff2.bias, a.time_a.bias, a.time_b.bias]))


def run_both(ref, ours: RecurrentCore, x: torch.Tensor, dts: torch.Tensor) -> float:
    h_ref = torch.zeros(1, ours.state_size)
    h_ours = torch.zeros(1, ours.state_size)
    worst = 0.0
    with torch.no_grad():
        for t in range(x.shape[1]):
            y_ref, h_ref = ref(x[:, t], h_ref, float(dts[0, t, 0]))
            y_ours, h_ours = ours.step(x[:, t], h_ours, dts[:, t])
            worst = max(worst, (y_ref - y_ours).abs().max().item(), (h_ref - h_ours).abs().max().item())
    return worst


@pytest.mark.parametrize("irregular", [False, True])
def test_ltc_matches_ncps(irregular: bool) -> None:
    torch.manual_seed(0)
    ref_wiring = RefNCP(12, 6, 1, 6, 4, 4, 6)
    ref = RefLTCCell(ref_wiring, in_features=32, implicit_param_constraints=True)  # softplus, as ours
    ours = LTCCell(ours_from_reference(ref_wiring))  # built after ref: ncps re-randomises on build()
    copy_ltc(ref, ours)
    x = torch.randn(1, 50, 32)
    dts = torch.rand(1, 50, 1) * 2.0 + 0.05 if irregular else torch.ones(1, 50, 1)
    assert run_both(ref, ours, x, dts) < 1e-5


@pytest.mark.parametrize("mode", ["default", "pure", "no_gate"])
@pytest.mark.parametrize("irregular", [False, True])
def test_cfc_matches_ncps(mode: str, irregular: bool) -> None:
    torch.manual_seed(1)
    ref_wiring = RefNCP(12, 6, 1, 6, 4, 4, 6)
    ref = RefWiredCfCCell(32, ref_wiring, mode=mode)
    ours = CfCCell(ours_from_reference(ref_wiring), mode=mode)
    copy_cfc(ref, ours)
    with torch.no_grad():
        ours.output_w.fill_(1.0)
        ours.output_b.zero_()
    x = torch.randn(1, 50, 32)
    dts = torch.rand(1, 50, 1) * 2.0 + 0.05 if irregular else torch.ones(1, 50, 1)
    assert run_both(ref, ours, x, dts) < 1e-5


def small_wiring() -> Wiring:
    return NCP(6, 4, 2, 3, 2, 2, 3, seed=5).build(7)


def cores() -> list[RecurrentCore]:
    torch.manual_seed(2)
    return [
        LTCCell(small_wiring(), ode_unfolds=3),
        CfCCell(small_wiring(), "default"),
        CfCCell(small_wiring(), "pure"),
        CfCCell(small_wiring(), "no_gate"),
        LSTMCore(7, 8, 2),
        FeedForwardCore(7, 8, 2),
    ]


@pytest.mark.parametrize("core", cores(), ids=lambda c: f"{type(c).__name__}-{getattr(c, 'mode', '')}")
def test_sequence_equals_looped_step_and_state_carries(core: RecurrentCore) -> None:
    x, dt = torch.randn(3, 10, 7), torch.rand(3, 10, 1) + 0.1
    with torch.no_grad():
        y_seq, h_seq = core(x, dt)
        h = core.initial_state(3)
        ys = []
        for t in range(10):
            y, h = core.step(x[:, t], h, dt[:, t])
            ys.append(y)
        assert torch.allclose(torch.stack(ys, 1), y_seq, atol=1e-5)
        assert torch.allclose(h, h_seq, atol=1e-5)
        # Two halves with the state carried across equal the whole.
        y1, h1 = core(x[:, :4], dt[:, :4])
        y2, _ = core(x[:, 4:], dt[:, 4:], h1)
        assert torch.allclose(torch.cat([y1, y2], 1), y_seq, atol=1e-5)


@pytest.mark.parametrize("make", [lambda: LTCCell(small_wiring(), 3), lambda: CfCCell(small_wiring())])
def test_irregular_dt_any_batch_and_dt_gradients(make) -> None:
    torch.manual_seed(3)
    core = make()
    x = torch.randn(5, 8, 7)
    dt = (torch.rand(5, 8, 1) * 3 + 0.05).requires_grad_()
    y, _ = core(x, dt)
    assert y.shape == (5, 8, 2)
    (grad,) = torch.autograd.grad(y.sum(), dt)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    # Different dt per sample gives different outputs for the same input.
    same_x = x[:1].expand(2, -1, -1)
    y2, _ = core(same_x, torch.stack([torch.full((8, 1), 0.2), torch.full((8, 1), 2.0)]))
    assert not torch.allclose(y2[0], y2[1])
    # dt as (B,) for one step and as a float broadcast.
    h = core.initial_state(5)
    y_a, _ = core.step(x[:, 0], h, torch.full((5, 1), 0.7))
    y_b, _ = core(x[:, :1], 0.7)
    assert torch.allclose(y_a, y_b[:, 0], atol=1e-6)


def test_ltc_fused_backward_matches_autograd_of_the_loop() -> None:
    torch.manual_seed(4)
    cell = LTCCell(small_wiring(), ode_unfolds=3).double()
    x = torch.randn(2, 6, 7, dtype=torch.double)
    dt = (torch.rand(2, 6, 1, dtype=torch.double) + 0.2).requires_grad_()
    h0 = torch.randn(2, cell.state_size, dtype=torch.double, requires_grad=True)
    weights = torch.randn(2, 6, 2, dtype=torch.double)
    params = [dt, h0, *cell.parameters()]

    y_seq, _ = cell(x, dt, h0)
    grads_fused = torch.autograd.grad((y_seq * weights).sum(), params)
    h, ys = h0, []
    for t in range(6):
        y, h = cell.step(x[:, t], h, dt[:, t])
        ys.append(y)
    grads_loop = torch.autograd.grad((torch.stack(ys, 1) * weights).sum(), params)
    for a, b in zip(grads_fused, grads_loop):
        assert torch.allclose(a, b, atol=1e-10, rtol=1e-8)
