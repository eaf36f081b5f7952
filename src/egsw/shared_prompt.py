"""Shared-prompt forward: each distinct prompt of a micro-batch runs once for all the completions that share it.

In GRPO every prompt is sampled G times, and TRL's ``_get_per_token_logps_and_entropies`` runs the identical
prompt G times in every log-prob forward (training, old policy, reference). Here the rows of a micro-batch are
matched by prompt (ids and mask, never by position: TRL shuffles the generation batch before splitting it) and
packed, one row per distinct prompt (or per chunk of its completions, see ``_members_per_row``)::

    [ prompt | c1 | c2 | ... | ck | pad ]

with a 4D boolean attention mask (each completion sees the whole prompt and itself causally, never another
completion; every padded query sees its own diagonal so no row is fully masked) and position ids that are those
of the plain forward (a prompt token keeps its column, completion token j is at ``prompt_width + j``), so RoPE
sees identical positions. It is one forward call, so DDP and gradient checkpointing see an ordinary forward.

The LM head and the log-prob/entropy kernel are TRL's own: the call goes through the model's fused-LM-head
forward (``trl.trainer.utils.add_fused_lm_head``) with pre-shifted labels, and a forward hook on the backbone
replaces its last hidden state (R, S, H) by the hidden states that predict the scored tokens, (1, N, H), the last
prompt position once per completion of that prompt. TRL's temperature, fp32 cast, logit scale and softcap apply
unchanged, and only scored tokens reach the head (TRL's CPU path projects every position). docs/shared-prompt.md
has the derivation, the fallbacks and the measurements.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from accelerate.utils import is_peft_model
from transformers.utils import logging

logger = logging.get_logger(__name__)

# Decoder-only architectures whose backbone takes a custom 4D mask and explicit position ids unchanged (checked in
# transformers 5.x: create_causal_mask returns a 4D mask as-is; RoPE reads position_ids). Llama and Qwen2 are tested.
SUPPORTED_MODEL_TYPES = frozenset({"llama", "qwen2", "qwen3", "mistral"})
# Attention implementations and how each takes the mask: sdpa a boolean mask, eager an additive float mask.
SUPPORTED_ATTENTION = frozenset({"sdpa", "eager"})
# Keys of a generation batch that the model's forward takes besides ids and masks (as in TRL's _compute_loss):
# the multimodal inputs of TRL's _get_per_token_logps_and_entropies.
MULTIMODAL_KEYS = (
    "pixel_values",
    "image_grid_thw",
    "num_images",
    "pixel_attention_mask",
    "spatial_shapes",
    "num_tiles",
    "image_sizes",
    "token_type_ids",
    "mm_token_type_ids",
    "image_position_ids",
)


@dataclass(frozen=True)
class PackedPrompts:
    """A micro-batch of B rows ``[prompt (P) | completion (C)]`` packed into R rows of S tokens.

    input_ids, position_ids: (R, S) long; segments: (R, S) long, 0 on prompt tokens, i >= 1 on the i-th completion
    of the row, -1 on padding; hidden_index: (N,) long, the flat index into (R * S) of the hidden state that predicts
    each scored token; targets: (N,) long, the scored token ids; scored: (B, C) bool, where the N scored tokens go,
    in row-major order (TRL's completion mask); prompts: the number of distinct prompts.
    """

    input_ids: torch.Tensor
    position_ids: torch.Tensor
    segments: torch.Tensor
    hidden_index: torch.Tensor
    targets: torch.Tensor
    scored: torch.Tensor
    prompts: int

    def attention_mask(self, implementation: str, dtype: torch.dtype) -> torch.Tensor:
        """(R, 1, S, S): query q sees key k iff k <= q and k is a prompt token or in q's segment; pads see themselves.

        Boolean (True = attend) for sdpa; additive (0 or the dtype's minimum) for eager attention.
        """
        seg = self.segments
        size = seg.size(1)
        causal = torch.ones(size, size, dtype=torch.bool, device=seg.device).tril()
        same = (seg.unsqueeze(2) == seg.unsqueeze(1)) | (seg.unsqueeze(1) == 0)
        real = (seg.unsqueeze(2) >= 0) & (seg.unsqueeze(1) >= 0)
        allowed = (causal & same & real) | torch.eye(size, dtype=torch.bool, device=seg.device)
        allowed = allowed.unsqueeze(1)
        if implementation == "eager":
            return torch.zeros(allowed.shape, dtype=dtype, device=seg.device).masked_fill(
                ~allowed, torch.finfo(dtype).min
            )
        return allowed


@dataclass(frozen=True)
class _Group:
    """One distinct prompt: its first real column, and its members (rows) with their input lengths."""

    start: int
    members: list[int]
    lengths: list[int]  # completion tokens each member feeds in: up to, not including, its last scored token


def pack_shared_prompts(
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    logits_to_keep: int,
    attention_cost: float = 0.0,
) -> PackedPrompts | str:
    """Packs a (B, P + C) micro-batch by distinct prompt, or returns why it cannot (a one-line reason).

    input_ids, attention_mask: (B, L), prompts left-padded in the first ``L - logits_to_keep`` columns, completions
    right-padded after them (TRL's layout). ``attention_cost``: the cost of one attended (query, key) pair relative
    to one token through the linear layers (``attention_cost_per_pair``); it decides how many completions share a
    packed row.
    """
    width = input_ids.size(1)
    prompt_width = width - logits_to_keep
    if prompt_width < 1 or logits_to_keep < 1:
        return "the micro-batch has no prompt or no completion columns"
    mask = attention_mask.bool().cpu()
    prompt_mask, completion_mask = mask[:, :prompt_width], mask[:, prompt_width:]
    # Left padding: zeros then ones, at least one real token; completions: ones then zeros.
    if not (prompt_mask[:, -1].all() and (prompt_mask.int().diff(dim=1) >= 0).all()):
        return "prompts are not left-padded"
    if not (completion_mask.int().diff(dim=1) <= 0).all():
        return "completion masks are not contiguous"
    groups = _groups(input_ids[:, :prompt_width].cpu(), prompt_mask, completion_mask)
    per_row = _members_per_row(groups, prompt_width, attention_cost)
    return _pack(input_ids, completion_mask, groups, prompt_width, per_row)


def _groups(prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, completion_mask: torch.Tensor) -> list[_Group]:
    """Rows with equal prompt ids and mask, in order of first occurrence. (B, P) ids and masks, (B, C) mask."""
    key = prompt_ids.masked_fill(~prompt_mask, -1)  # ids are >= 0, so -1 marks padding: equal keys, equal prompts
    _, inverse = torch.unique(key, dim=0, return_inverse=True)
    starts = (~prompt_mask).sum(dim=1).tolist()
    last_scored = completion_mask.sum(dim=1).tolist()  # completion masks are prefixes of ones
    by_key: dict[int, _Group] = {}
    for row, label in enumerate(inverse.tolist()):
        group = by_key.setdefault(label, _Group(starts[row], [], []))
        group.members.append(row)
        group.lengths.append(max(last_scored[row] - 1, 0))
    return list(by_key.values())


def _members_per_row(groups: list[_Group], prompt_width: int, attention_cost: float) -> int:
    """How many completions of a prompt share one packed row: the k in 1..G that minimises the packed forward's cost.

    The cost of R rows of S tokens is ``R * (S + attention_cost * S**2)``: the linear layers per token, and the
    dense masked attention per (query, key) pair (a completion's queries also meet the other completions' keys,
    masked but computed). Long completions make one row per completion cheaper; short ones, one row per prompt.
    """
    best, best_cost = 1, math.inf
    for k in range(1, max(len(g.members) for g in groups) + 1):
        lengths = [
            prompt_width - g.start + sum(g.lengths[i : i + k]) for g in groups for i in range(0, len(g.members), k)
        ]
        size = max(lengths)
        cost = len(lengths) * (size + attention_cost * size * size)
        if cost < best_cost:
            best, best_cost = k, cost
    return best


def _pack(
    input_ids: torch.Tensor, completion_mask: torch.Tensor, groups: list[_Group], prompt_width: int, per_row: int
) -> PackedPrompts:
    """Lays the groups out as rows ``[prompt | c_1 | ... | c_k]`` and indexes the hidden state of each scored token."""
    ids = input_ids.cpu()
    rows: list[tuple[list[int], list[int], list[int]]] = []  # (ids, positions, segments) per packed row
    predictor: dict[tuple[int, int], tuple[int, int]] = {}  # (row, column j) -> (packed row, its position)
    for group in groups:
        prompt = ids[group.members[0], group.start : prompt_width].tolist()
        for first in range(0, len(group.members), per_row):
            row_ids, positions = list(prompt), list(range(group.start, prompt_width))
            segments = [0] * len(prompt)
            for segment, (member, length) in enumerate(
                zip(group.members[first : first + per_row], group.lengths[first : first + per_row], strict=True),
                start=1,
            ):
                predictor[(member, 0)] = (len(rows), len(prompt) - 1)  # the last prompt token predicts token 0
                offset = len(row_ids)
                for column in range(1, length + 1):
                    predictor[(member, column)] = (len(rows), offset + column - 1)
                row_ids += ids[member, prompt_width : prompt_width + length].tolist()
                positions += range(prompt_width, prompt_width + length)
                segments += [segment] * length
            rows.append((row_ids, positions, segments))
    size = max(len(r[0]) for r in rows)
    device = input_ids.device

    def padded(index: int, fill: int) -> torch.Tensor:
        return torch.tensor([r[index] + [fill] * (size - len(r[index])) for r in rows], dtype=torch.long, device=device)

    scored = completion_mask.bool()
    members, columns = scored.nonzero(as_tuple=True)  # row-major, as masked_scatter fills
    places = [predictor[place] for place in zip(members.tolist(), columns.tolist(), strict=True)]
    hidden_index = [row * size + position for row, position in places]
    targets = input_ids[:, prompt_width:][scored.to(device)]
    return PackedPrompts(
        input_ids=padded(0, int(ids[0, -1])),
        position_ids=padded(1, 0),
        segments=padded(2, -1),
        hidden_index=torch.tensor(hidden_index, dtype=torch.long, device=device),
        targets=targets,
        scored=scored.to(device),
        prompts=len(groups),
    )


# ---- the model side -------------------------------------------------------------------------------------------


def causal_lm_of(model: torch.nn.Module, unwrap: Callable[[torch.nn.Module], torch.nn.Module]) -> torch.nn.Module:
    """The causal LM inside DDP/accelerate (``unwrap``) and PEFT wrappers: the module whose forward TRL patched."""
    inner = unwrap(model)
    return inner.get_base_model() if is_peft_model(inner) else inner


def unsupported_reason(causal_lm: torch.nn.Module) -> str | None:
    """Why this model cannot take the packed forward exactly, or None if it can."""
    config = causal_lm.config
    if getattr(config, "model_type", None) not in SUPPORTED_MODEL_TYPES:
        return f"architecture {getattr(config, 'model_type', type(causal_lm).__name__)!r} is not one of " + ", ".join(
            sorted(SUPPORTED_MODEL_TYPES)
        )
    implementation = getattr(config, "_attn_implementation", None)
    if implementation not in SUPPORTED_ATTENTION:
        return f"attention implementation {implementation!r} is not sdpa or eager"
    if "sliding_attention" in (getattr(config, "layer_types", None) or ()) or (
        config.model_type == "mistral" and getattr(config, "sliding_window", None) is not None
    ):
        return "sliding-window attention layers would ignore the custom mask's window"
    if getattr(config, "output_router_logits", False):
        return "mixture-of-experts router losses need the plain layout"
    if causal_lm.training and _has_active_dropout(causal_lm):
        # The prompt's activations would get one dropout mask for all G completions instead of G masks.
        return "the model has active dropout"
    return None


def _has_active_dropout(model: torch.nn.Module) -> bool:
    config = model.config
    if any(float(getattr(config, name, 0.0) or 0.0) > 0 for name in ("attention_dropout", "hidden_dropout")):
        return True
    return any(isinstance(m, torch.nn.Dropout) and m.p > 0 and m.training for m in model.modules())


def attention_cost_per_pair(config: Any) -> float:  # noqa: ANN401 - a transformers PretrainedConfig
    """Multiply-adds of one attended (query, key) pair over those of one token through the linear layers, per layer."""
    hidden = config.hidden_size
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or hidden // heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    linear = hidden * head_dim * (2 * heads + 2 * kv_heads) + 3 * hidden * config.intermediate_size
    return 2 * heads * head_dim / linear


@contextmanager
def _hidden_states_at(backbone: torch.nn.Module, index: torch.Tensor) -> Iterator[None]:
    """While active, the backbone returns the hidden states at the flat positions ``index``: (R, S, H) -> (1, N, H)."""

    def gather(module: torch.nn.Module, args: Any, output: Any) -> Any:  # noqa: ANN401
        hidden = output.last_hidden_state
        output.last_hidden_state = hidden.reshape(-1, hidden.size(-1)).index_select(0, index).unsqueeze(0)
        return output

    handle = backbone.register_forward_hook(gather)
    try:
        yield
    finally:
        handle.remove()


def packed_logps_and_entropies(
    model: torch.nn.Module,
    causal_lm: torch.nn.Module,
    packed: PackedPrompts,
    compute_entropy: bool,
    autocast: Callable[[], AbstractContextManager[Any]],
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One forward of ``model`` (any wrapper of ``causal_lm``) on the packed rows: log-probs and entropies (B, C).

    Values at unscored positions are 0, as in TRL's fused head.
    """
    implementation = causal_lm.config._attn_implementation
    mask = packed.attention_mask(implementation, next(causal_lm.parameters()).dtype)
    with _hidden_states_at(causal_lm.base_model, packed.hidden_index), autocast():
        outputs = model(
            input_ids=packed.input_ids,
            attention_mask=mask,
            position_ids=packed.position_ids,
            shift_labels=packed.targets.unsqueeze(0),
            fused_lm_head=True,
        )
    logps = outputs.log_probs[0]
    scatter = packed.scored
    entropies = outputs.entropy[0] if compute_entropy and outputs.entropy is not None else None
    return (
        logps.new_zeros(scatter.shape).masked_scatter(scatter, logps),
        None if entropies is None else entropies.new_zeros(scatter.shape).masked_scatter(scatter, entropies),
    )


def shared_prompt_forward(
    trainer: Any,  # noqa: ANN401 - an EGSWTrainer (a GRPOTrainer)
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    logits_to_keep: int,
    batch_size: int | None = None,
    compute_entropy: bool = False,
    compute_aux_loss: bool = False,
    **multimodal: Any,
) -> tuple[torch.Tensor, torch.Tensor | None, None] | None:
    """GRPOTrainer._get_per_token_logps_and_entropies with shared prompts, or None where it cannot apply.

    Takes TRL's arguments; returns (log-probs (B, C), entropies (B, C) or None, None) like TRL's method, chunked into
    ``batch_size`` rows as TRL chunks them. None (after one info line per reason) tells the caller to run TRL's plain
    forward.
    """
    causal_lm = causal_lm_of(model, trainer.accelerator.unwrap_model)
    reason = _configuration_reason(trainer, causal_lm, compute_aux_loss, multimodal)
    if reason is not None:
        return _fall_back(trainer, reason)
    batch_size = batch_size or input_ids.size(0)
    cost = attention_cost_per_pair(causal_lm.config)
    chunks = []
    for start in range(0, input_ids.size(0), batch_size):
        packed = pack_shared_prompts(
            input_ids[start : start + batch_size], attention_mask[start : start + batch_size], logits_to_keep, cost
        )
        if isinstance(packed, str):
            return _fall_back(trainer, packed)
        chunks.append(packed)
    if all(packed.prompts == packed.scored.size(0) for packed in chunks):
        return _fall_back(trainer, "no prompt occurs twice in a micro-batch")
    results = [
        packed_logps_and_entropies(model, causal_lm, packed, compute_entropy, trainer.accelerator.autocast)
        for packed in chunks
    ]
    logps = torch.cat([r[0] for r in results])
    parts = [r[1] for r in results]
    entropies = torch.cat(parts) if compute_entropy and all(p is not None for p in parts) else None  # type: ignore[arg-type]
    return logps, entropies, None


def _configuration_reason(
    trainer: Any,  # noqa: ANN401
    causal_lm: torch.nn.Module,
    compute_aux_loss: bool,
    multimodal: dict[str, Any],
) -> str | None:
    if any(multimodal.get(key) is not None for key in MULTIMODAL_KEYS):
        return "multimodal inputs"
    if compute_aux_loss:
        return "mixture-of-experts auxiliary loss"
    if getattr(trainer, "tools", None):
        return "tool-calling (multi-turn) completions"
    return unsupported_reason(causal_lm)


def _fall_back(trainer: Any, reason: str) -> None:  # noqa: ANN401
    """Logs ``reason`` once per trainer and returns None: the caller runs TRL's plain forward."""
    seen: set[str] = trainer._egsw_shared_prompt_fallbacks
    if reason not in seen:
        seen.add(reason)
        logger.info(f"share_prompt_forward: plain forward instead of the shared-prompt one ({reason}).")
    return None
