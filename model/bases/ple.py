"""PLE: stacked CGC levels. Each level has slot-specific experts and shared experts; slot p's
gate mixes its own and the shared experts; a shared gate over all experts feeds the next
level's shared input."""
from __future__ import annotations

from typing import List, Optional

import torch
from torch import Tensor, nn

from model.layers.mlp import SlotLinear


class CGCLevel(nn.Module):
    def __init__(self, in_dim: int, n_slots: int, n_specific: int, n_shared: int, expert_dim: int, last: bool):
        super().__init__()
        self.n_slots = n_slots
        self.n_specific = n_specific
        self.n_shared = n_shared
        self.expert_dim = expert_dim
        self.last = last
        # specific experts: per slot, on that slot's input
        self.specific = SlotLinear(n_slots, in_dim, n_specific * expert_dim)
        self.shared = nn.Linear(in_dim, n_shared * expert_dim)
        self.slot_gates = SlotLinear(n_slots, in_dim, n_specific + n_shared)
        self.shared_gate: Optional[nn.Linear] = None
        if not last:  # the last level has no shared output to gate
            self.shared_gate = nn.Linear(in_dim, n_slots * n_specific + n_shared)

    def forward(self, slot_inputs: Tensor, shared_input: Tensor) -> List[Tensor]:
        b = shared_input.size(0)
        specific = torch.relu(self.specific(slot_inputs)).view(b, self.n_slots, self.n_specific, self.expert_dim)
        shared = torch.relu(self.shared(shared_input)).view(b, 1, self.n_shared, self.expert_dim)
        candidates = torch.cat([specific, shared.expand(-1, self.n_slots, -1, -1)], dim=2)   # [B, S, k+m, H]
        gates = torch.softmax(self.slot_gates(slot_inputs), dim=-1).unsqueeze(-1)             # [B, S, k+m, 1]
        slot_out = (gates * candidates).sum(2)                                                # [B, S, H]
        shared_gate_layer = self.shared_gate
        if shared_gate_layer is None:
            return [slot_out, shared_input]
        everything = torch.cat([specific.reshape(b, self.n_slots * self.n_specific, self.expert_dim),
                                shared.squeeze(1)], dim=1)
        shared_gate = torch.softmax(shared_gate_layer(shared_input), dim=-1).unsqueeze(-1)
        return [slot_out, (shared_gate * everything).sum(1)]


class PLE(nn.Module):
    def __init__(self, in_dim: int, n_slots: int, n_scenarios: int = 2, out_dim: int = 32,
                 n_levels: int = 2, n_specific: int = 2, n_shared: int = 2, expert_dim: int = 64):
        super().__init__()
        self.out_dim = out_dim
        self.n_slots = n_slots
        levels = []
        dim = in_dim
        for i in range(n_levels):
            levels.append(CGCLevel(dim, n_slots, n_specific, n_shared, expert_dim, last=i == n_levels - 1))
            dim = expert_dim
        self.levels = nn.ModuleList(levels)
        self.tower = SlotLinear(n_slots, expert_dim, out_dim)

    def forward(self, x: Tensor, scenario: Tensor) -> Tensor:
        slot_inputs = x.unsqueeze(1).expand(-1, self.n_slots, -1)
        shared_input = x
        for level in self.levels:
            out = level(slot_inputs, shared_input)
            slot_inputs = out[0]
            shared_input = out[1]
        return torch.relu(self.tower(slot_inputs))
