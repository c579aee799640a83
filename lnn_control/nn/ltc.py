"""Liquid time-constant (LTC) cell with the fused semi-implicit Euler solver (Hasani et al., AAAI 2021).

Each of ``ode_unfolds`` sub-steps of one step of length ``dt`` computes, for every neuron ``j``::

    v_j <- (cm_t v_j + gleak_j vleak_j + sum_i w_ij s_ij erev_ij) / (cm_t + gleak_j + sum_i w_ij s_ij)
    s_ij = sigmoid(sigma_ij (v_i - mu_ij)),   cm_t = cm_j / (dt / ode_unfolds)

where ``i`` runs over the neurons and the (affinely mapped) inputs that have a synapse to ``j``. ``cm``, ``gleak``
and ``w`` are kept positive by a softplus parametrisation, so no optimiser step can break them and there is no
constraint call to forget. The wiring's sign matrices are fixed buffers: a masked synapse has zero effective weight
and zero gradient, whatever the optimiser does to its raw parameter.

Speed: the solver works on the list of existing synapses, not on N*N grids; both sums of a sub-step are one matrix
product (the synapse activations times a routing matrix holding
``w*erev`` and ``w``); a sequence maps its inputs and computes the sensory synapses for all steps at once; in
inference (no grad) the derived weights are cached until a parameter changes.

Input normalisation (``input_norm=True``, what :class:`~lnn_control.nn.policy.Policy` builds under its
``ltc_input_norm``, on by default): the input is divided by its RMS over the inputs before the affine input mapping,
as the CfC's is (:mod:`lnn_control.nn.cfc` says why). A sensory synapse is ``sigmoid(sigma (w_in x + b_in - mu))``
with ``sigma`` from 3 to 8 and ``mu`` from 0.3 to 0.8, so it only grades an input of about unit scale; behind a conv
head whose output scale is free it becomes a switch. In the drone study without it (AdamW at 3e-3), the features of
a trained LTC had an RMS of 353, every sensory pre-activation was beyond +-3 (median 1,528) and the LTC's validation
loss was 0.54 to 0.79 where the CfC's was 0.46. It adds no parameter.

Parameter count, net of masks (:meth:`LTCCell.recurrent_parameter_count`): 4 per synapse, sensory synapses
included (``w``, ``mu``, ``sigma``, ``erev``), plus 3 per neuron (``cm``, ``gleak``, ``vleak``). The affine input
(2 per input) and output (2 per motor neuron) mappings are counted apart, in :meth:`parameter_count`. The NCP paper's
19-neuron lane keeper (32 inputs, 12 inter, 6 command, 1 motor) thus has about 250 synapses and about 1.1k recurrent
parameters; a dense layer of the same shape would carry ``4 * (19*19 + 32*19) + 57 = 3,041``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from lnn_control.nn.core import INPUT_NORM_EPS, RecurrentCore, sequence_dt
from lnn_control.nn.wiring import Wiring

#: Initial ranges of the reference implementation (uniform).
INIT_RANGES = {
    "gleak": (0.001, 1.0),
    "vleak": (-0.2, 0.2),
    "cm": (0.4, 0.6),
    "w": (0.001, 1.0),
    "sigma": (3.0, 8.0),
    "mu": (0.3, 0.8),
    "sensory_w": (0.001, 1.0),
    "sensory_sigma": (3.0, 8.0),
    "sensory_mu": (0.3, 0.8),
}


def inverse_softplus(x: Tensor) -> Tensor:
    """The raw value whose softplus is ``x`` (x > 0)."""
    return x + torch.log(-torch.expm1(-x))


class _Derived(NamedTuple):
    """Synapse-level tensors computed from the parameters once per sequence (or cached in inference).

    Only existing synapses are stored (``E`` recurrent, ``Es`` sensory), so the solver's work scales with the
    wiring's synapses, not with ``N*N``. A synapse's activation ``sigmoid(sigma (v_pre - mu))`` is one matrix product
    with a gather matrix that holds ``sigma`` (and, for sensory synapses, the affine input mapping) plus a bias.
    """

    sgather: Tensor  # (S, Es): input k -> sensory synapse e, times sigma_e * input_w[k]
    sbias: Tensor  # (Es,): sigma_e * input_b[pre_e] - mu_e * sigma_e
    sroute: Tensor  # (Es, 2N): [w*erev | w] routed to the post-synaptic neuron
    gather: Tensor  # (N, E): neuron i -> synapse e, times sigma_e
    bias: Tensor  # (E,): -mu_e * sigma_e
    route: Tensor  # (E, 2N)
    base: Tensor  # (2N,): [gleak*vleak | gleak + epsilon], the constant parts of numerator and denominator
    cm_unfolds: Tensor  # (N,): cm * ode_unfolds, so that cm_t = cm_unfolds / dt


def _synapse_index(mask: np.ndarray) -> tuple[Tensor, Tensor]:
    pre, post = np.nonzero(mask)
    return torch.from_numpy(pre.astype(np.int64)), torch.from_numpy(post.astype(np.int64))


class LTCCell(RecurrentCore):
    """LTC cell on a :class:`Wiring`; outputs are the motor neurons (the first ``output_dim``) mapped affinely."""

    def __init__(self, wiring: Wiring, ode_unfolds: int = 6, epsilon: float = 1e-8, seed: int | None = None,
                 input_norm: bool = False) -> None:
        super().__init__()
        if ode_unfolds < 1:
            raise ValueError(f"ode_unfolds must be >= 1, got {ode_unfolds}")
        self.input_norm = bool(input_norm)
        self.input_norm_eps = INPUT_NORM_EPS  # an attribute: TorchScript does not read module globals
        self.wiring = wiring
        self.input_size = wiring.input_dim
        self.output_size = wiring.output_dim
        self.state_size = wiring.units
        self.ode_unfolds = ode_unfolds
        self.epsilon = epsilon
        n, s = wiring.units, wiring.input_dim
        gen = torch.Generator().manual_seed(seed) if seed is not None else None

        def uniform(shape: tuple[int, ...], name: str) -> Tensor:
            low, high = INIT_RANGES[name]
            return torch.rand(*shape, generator=gen) * (high - low) + low

        self.gleak_raw = nn.Parameter(inverse_softplus(uniform((n,), "gleak")))
        self.vleak = nn.Parameter(uniform((n,), "vleak"))
        self.cm_raw = nn.Parameter(inverse_softplus(uniform((n,), "cm")))
        self.sigma = nn.Parameter(uniform((n, n), "sigma"))
        self.mu = nn.Parameter(uniform((n, n), "mu"))
        self.w_raw = nn.Parameter(inverse_softplus(uniform((n, n), "w")))
        self.erev = nn.Parameter(torch.from_numpy(wiring.adjacency.copy()))
        self.sensory_sigma = nn.Parameter(uniform((s, n), "sensory_sigma"))
        self.sensory_mu = nn.Parameter(uniform((s, n), "sensory_mu"))
        self.sensory_w_raw = nn.Parameter(inverse_softplus(uniform((s, n), "sensory_w")))
        self.sensory_erev = nn.Parameter(torch.from_numpy(wiring.sensory_adjacency.copy()))
        self.input_w = nn.Parameter(torch.ones(s))
        self.input_b = nn.Parameter(torch.zeros(s))
        self.output_w = nn.Parameter(torch.ones(wiring.output_dim))
        self.output_b = nn.Parameter(torch.zeros(wiring.output_dim))
        self.register_buffer("mask", torch.from_numpy(np.abs(wiring.adjacency)).float())
        self.register_buffer("sensory_mask", torch.from_numpy(np.abs(wiring.sensory_adjacency)).float())
        pre, post = _synapse_index(np.abs(wiring.adjacency))
        spre, spost = _synapse_index(np.abs(wiring.sensory_adjacency))
        self.register_buffer("pre", pre, persistent=False)
        self.register_buffer("post", post, persistent=False)
        self.register_buffer("spre", spre, persistent=False)
        self.register_buffer("spost", spost, persistent=False)
        eye = torch.eye(n)
        self.register_buffer("post_onehot", eye[post], persistent=False)  # (E, N)
        self.register_buffer("pre_onehot", eye[pre], persistent=False)  # (E, N)
        self.register_buffer("spost_onehot", eye[spost], persistent=False)  # (Es, N)
        self.register_buffer("spre_onehot", torch.eye(s)[spre], persistent=False)  # (Es, S)
        self._cache_key: tuple[int, ...] | None = None
        self._cache: _Derived | None = None

    # -- effective (constrained, masked) parameters -------------------------------------------------------------

    def effective_weights(self) -> tuple[Tensor, Tensor]:
        """Positive, masked synaptic weights ``(w, sensory_w)``; zero exactly where the wiring has no synapse."""
        return F.softplus(self.w_raw) * self.mask, F.softplus(self.sensory_w_raw) * self.sensory_mask

    def _derive(self) -> _Derived:
        pre, post, spre, spost = self.pre, self.post, self.spre, self.spost
        w = F.softplus(self.w_raw[pre, post])
        sw = F.softplus(self.sensory_w_raw[spre, spost])
        sigma = self.sigma[pre, post]
        ssigma = self.sensory_sigma[spre, spost]
        gleak = F.softplus(self.gleak_raw)
        return _Derived(
            sgather=self.spre_onehot.t() * (ssigma * self.input_w[spre]),
            sbias=ssigma * (self.input_b[spre] - self.sensory_mu[spre, spost]),
            sroute=torch.cat([self.spost_onehot * (sw * self.sensory_erev[spre, spost]).unsqueeze(1),
                              self.spost_onehot * sw.unsqueeze(1)], dim=1),
            gather=self.pre_onehot.t() * sigma,
            bias=-self.mu[pre, post] * sigma,
            route=torch.cat([self.post_onehot * (w * self.erev[pre, post]).unsqueeze(1),
                             self.post_onehot * w.unsqueeze(1)], dim=1),
            base=torch.cat([gleak * self.vleak, gleak + self.epsilon]),
            cm_unfolds=F.softplus(self.cm_raw) * self.ode_unfolds,
        )

    @torch.jit.unused
    def _cached_derive(self) -> _Derived:
        if torch.is_grad_enabled():
            return self._derive()
        key = tuple(p._version for p in self.parameters()) + tuple(id(p) for p in self.parameters())
        if self._cache is None or key != self._cache_key:
            with torch.no_grad():
                self._cache = _Derived(*(t.detach().clone() for t in self._derive()))
            self._cache_key = key
        return self._cache

    def derived(self) -> _Derived:
        """Derived tensors: fresh under autograd or TorchScript, cached in inference."""
        if torch.jit.is_scripting():
            return self._derive()
        return self._cached_derive()

    # -- solver ---------------------------------------------------------------------------------------------------

    def _constants(self, d: _Derived, x: Tensor, dt: Tensor) -> tuple[Tensor, Tensor]:
        """``cm_t`` (..., N) and the constant part (..., 2N) of numerator and denominator of a step."""
        if self.input_norm:
            x = x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + self.input_norm_eps)
        act = torch.sigmoid(torch.matmul(x, d.sgather) + d.sbias)
        const = torch.matmul(act, d.sroute) + d.base
        cm_t = d.cm_unfolds / dt
        const[..., self.state_size :] += cm_t
        return cm_t, const

    def _readout(self, v: Tensor) -> Tensor:
        return v[..., : self.output_size] * self.output_w + self.output_b

    def step(self, x: Tensor, h: Tensor, dt: Tensor) -> tuple[Tensor, Tensor]:
        """One step; ``dt`` (B, 1) in model time units."""
        d = self.derived()
        cm_t, const = self._constants(d, x, dt)
        v = h
        n = self.state_size
        for _ in range(self.ode_unfolds):
            act = torch.sigmoid(torch.addmm(d.bias, v, d.gather))
            nd = torch.addmm(const, act, d.route)
            v = torch.addcmul(nd[:, :n], cm_t, v) / nd[:, n:]
        return self._readout(v), v

    @torch.jit.unused
    def forward(self, x: Tensor, dt: Tensor | float | None = None, h0: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """A sequence (B, T, S) -> outputs (B, T, M), last state; equal to looping :meth:`step`.

        The sub-steps of all steps run inside one autograd node with a hand-written backward (:class:`_Unfold`), so
        training pays for a few small tensor operations per sub-step instead of an autograd graph of dozens.
        """
        if torch.is_autocast_enabled(x.device.type):
            # The solver runs in float32 under autocast: its hand-written backward and the division by the
            # denominator want the precision, and it is a small part of the cost next to the conv head.
            with torch.autocast(device_type=x.device.type, enabled=False):
                return self.forward(x.float(), dt, None if h0 is None else h0.float())
        dt = sequence_dt(dt, x)
        d = self.derived()
        cm_t, const = self._constants(d, x, dt)
        v0 = self.initial_state(x.shape[0], x.device).to(x.dtype) if h0 is None else h0
        states = _Unfold.apply(v0, cm_t, const, d.gather, d.bias, d.route, self.ode_unfolds)
        return self._readout(states), states[:, -1]

    def recurrent_parameter_count(self) -> int:
        """4 per synapse (sensory included) + 3 per neuron; see the module docstring."""
        synapses = self.wiring.synapse_count + self.wiring.sensory_synapse_count
        return 4 * synapses + 3 * self.state_size

    def parameter_count(self) -> int:
        """Recurrent parameters plus the affine input and output mappings."""
        return self.recurrent_parameter_count() + 2 * self.input_size + 2 * self.output_size


class _Unfold(torch.autograd.Function):
    """Every sub-step of a sequence as one autograd node.

    Inputs: ``v0`` (B, N), ``cm_t`` (B, T, N), ``const`` (B, T, 2N), the synapses' ``gather`` (N, E), ``bias``
    (E,) and ``route`` (E, 2N) (see :class:`_Derived`). Output: the state after every step (B, T, N).
    """

    @staticmethod
    def forward(ctx, v0, cm_t, const, gather, bias, route, unfolds):  # noqa: D102
        n = v0.shape[1]
        v = v0
        acts, dacts, dens, vs, outs = [], [], [], [], []
        for t in range(cm_t.shape[1]):
            c, k = cm_t[:, t], const[:, t]
            for _ in range(unfolds):
                act = torch.sigmoid(torch.addmm(bias, v, gather))
                nd = torch.addmm(k, act, route)
                den = nd[:, n:]
                vs.append(v)
                v = torch.addcmul(nd[:, :n], c, v) / den
                acts.append(act)
                dacts.append(act - act * act)
                dens.append(den)
            outs.append(v)
        out = torch.stack(outs, dim=1)
        ctx.unfolds = unfolds
        ctx.lists = (acts, dacts, dens, vs)
        ctx.save_for_backward(cm_t, gather, route, out)
        return out

    @staticmethod
    def backward(ctx, grad_out):  # noqa: D102
        cm_t, gather, route, out = ctx.saved_tensors
        acts, dacts, dens, vs = ctx.lists
        unfolds = ctx.unfolds
        batch, steps, n = out.shape
        gather_t, route_t = gather.t(), route.t()
        g_v = torch.zeros_like(out[:, 0])
        g_cm = torch.empty_like(cm_t)
        g_const = torch.empty(batch, steps, 2 * n, dtype=out.dtype, device=out.device)
        g_nds, g_zs = [], []
        i = steps * unfolds
        for t in reversed(range(steps)):
            g_v = g_v + grad_out[:, t]
            c = cm_t[:, t]
            g_c = torch.zeros_like(c)
            g_k = torch.zeros(batch, 2 * n, dtype=out.dtype, device=out.device)
            for k in range(unfolds):
                i -= 1
                v_new = out[:, t] if k == 0 else vs[i + 1]
                g_num = g_v / dens[i]
                g_nd = torch.cat([g_num, -g_num * v_new], dim=1)
                g_k = g_k + g_nd
                g_c = torch.addcmul(g_c, g_num, vs[i])
                g_z = (g_nd @ route_t) * dacts[i]
                g_v = torch.addcmul(g_z @ gather_t, g_num, c)
                g_nds.append(g_nd)
                g_zs.append(g_z)
            g_cm[:, t] = g_c
            g_const[:, t] = g_k
        g_nds.reverse()
        g_zs.reverse()
        g_z_all = torch.cat(g_zs)  # (K*B, E), in forward order
        g_route = torch.cat(acts).t() @ torch.cat(g_nds)
        g_gather = torch.cat(vs).t() @ g_z_all
        return g_v, g_cm, g_const, g_gather, g_z_all.sum(0), g_route, None
