"""The liquid policies survive a growing feature scale, the failure that kept the CfC at the mean on CarRacing and
the LTC behind every other policy in the drone study.

On CarRacing the conv head's features grew about twofold per AdamW step from step 5 (0.05 -> 280 by epoch 3); every
gate of the reference CfC's first layer is a tanh or sigmoid of them, so the layer saturated for every frame, the
layers after it saw a constant, no gradient came back and the policy predicted the mean for the rest of the run. The
LTC's sensory synapses are sigmoids of the same features: a trained drone LTC's features had an RMS of 353 and every
sensory synapse was saturated. Both cells now divide their input by its RMS (``cfc_input_norm``,
``ltc_input_norm``), so their outputs and gradients do not depend on that scale.
"""

from __future__ import annotations

import copy
import json

import pytest
import torch

from lnn_control.nn import checkpoint
from lnn_control.nn.policy import Policy, PolicyConfig
from lnn_control.vision import PreprocessConfig

#: The factor by which the CarRacing run's features had grown when it was dead (std 0.05 at init, 280 by epoch 3).
GROWN = 5000.0


CORES = ("cfc", "ltc")


def liquid_policy(core: str, input_norm: bool = True, seed: int = 0) -> Policy:
    config = PolicyConfig(core=core, preprocess=PreprocessConfig(64, 64), seed=seed,
                          **{f"{core}_input_norm": input_norm})
    return Policy(config).train()


def scaled(policy: Policy, factor: float) -> Policy:
    """A copy whose conv head's features are ``factor`` times larger, as the optimiser's steps made them."""
    out = copy.deepcopy(policy)
    with torch.no_grad():
        out.encoder.reduce.weight.mul_(factor)
        out.encoder.reduce.bias.mul_(factor)
    return out


def windows(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Similar frames, as a camera's are: one scene plus a little noise."""
    gen = torch.Generator().manual_seed(seed)
    scene = torch.randint(0, 256, (64, 64, 3), generator=gen)
    noise = torch.randint(-8, 9, (6, 5, 64, 64, 3), generator=gen)
    frames = (scene + noise).clamp(0, 255).to(torch.uint8)
    targets = torch.randn(6, 5, 2, generator=gen)
    return frames, torch.full((6, 5, 1), 0.05), targets


def conv_gradient(policy: Policy) -> tuple[torch.Tensor, float]:
    """Outputs (normalised space) and the norm of the MSE loss's gradient on the conv layers."""
    frames, dt, targets = windows()
    y, _ = policy(frames, dt, normalised=True)
    policy.zero_grad()
    ((y - targets) ** 2).mean().backward()
    grad = torch.cat([p.grad.flatten() for p in policy.encoder.convs.parameters()])
    return y.detach(), float(grad.norm())


@pytest.mark.parametrize("core", CORES)
@pytest.mark.parametrize("seed", [0, 1])
def test_liquid_policy_outputs_and_gradients_do_not_depend_on_the_feature_scale(core: str, seed: int) -> None:
    policy = liquid_policy(core, seed=seed)
    assert policy.core.input_norm
    y, grad = conv_gradient(policy)
    assert grad > 0 and y.std(dim=(0, 1)).min() > 0
    for factor in (0.1, GROWN):
        y_f, grad_f = conv_gradient(scaled(policy, factor))
        assert torch.allclose(y_f, y, atol=1e-4), factor
        assert grad_f == pytest.approx(grad, rel=1e-2), factor


@pytest.mark.parametrize("core", CORES)
def test_checkpoints_record_input_norm_and_older_ones_load_without_it(core: str, tmp_path) -> None:
    field = f"{core}_input_norm"
    new = liquid_policy(core).eval()
    checkpoint.save(new, tmp_path / "new")
    loaded = checkpoint.load(tmp_path / "new")
    assert getattr(loaded.config, field) and loaded.core.input_norm
    frames, dt, _ = windows()
    with torch.no_grad():
        assert torch.equal(loaded(frames, dt)[0], new(frames, dt)[0])
    # A checkpoint written before the field existed has no such field in its JSON: it is the reference cell.
    old = liquid_policy(core, input_norm=False).eval()
    _, config_path = checkpoint.save(old, tmp_path / "old")
    document = json.loads(config_path.read_text())
    del document["config"][field]
    config_path.write_text(json.dumps(document))
    loaded = checkpoint.load(tmp_path / "old")
    assert not getattr(loaded.config, field) and not loaded.core.input_norm
    with torch.no_grad():
        assert torch.equal(loaded(frames, dt)[0], old(frames, dt)[0])
