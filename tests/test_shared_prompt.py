"""share_prompt_forward: each distinct prompt runs once, and log-probs, entropies, gradients and training match."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from peft import LoraConfig
from transformers import Qwen2Config, Qwen2ForCausalLM
from trl import GRPOTrainer

import egsw.shared_prompt as shared_prompt
from egsw import EGSWConfig, EGSWTrainer
from egsw.models.tiny_random import ARCHITECTURES, build_random_model, build_word_tokenizer
from egsw.shared_prompt import PackedPrompts, pack_shared_prompts, unsupported_reason
from tests.helpers import trainer_kwargs, word_variety_reward

VOCAB = 256


# ---- a micro-batch in TRL's layout ------------------------------------------------------------------------------


def ragged_batch(
    seed: int, prompt_lengths: list[int], group_size: int, completion_width: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, P + C) ids and mask: left-padded prompts of the given lengths, G ragged completions each, rows shuffled."""
    generator = torch.Generator().manual_seed(seed)
    width = max(prompt_lengths)
    ids, masks = [], []
    for length in prompt_lengths:
        prompt = torch.randint(3, VOCAB, (length,), generator=generator)
        for _ in range(group_size):
            used = int(torch.randint(1, completion_width + 1, (1,), generator=generator))
            completion = torch.randint(3, VOCAB, (completion_width,), generator=generator)
            ids.append(torch.cat([torch.zeros(width - length, dtype=torch.long), prompt, completion]))
            masks.append(
                torch.cat(
                    [torch.zeros(width - length), torch.ones(length + used), torch.zeros(completion_width - used)]
                )
            )
    order = torch.randperm(len(ids), generator=generator)
    return torch.stack(ids)[order], torch.stack(masks).long()[order]


def allowed_keys(packed: PackedPrompts) -> torch.Tensor:
    return packed.attention_mask("sdpa", torch.float32)[:, 0]


# ---- packing, without a model -----------------------------------------------------------------------------------


def test_packing_groups_rows_by_prompt_and_lays_out_each_completion_after_it():
    ids, mask = ragged_batch(0, [3, 7, 5], group_size=4, completion_width=6)
    packed = pack_shared_prompts(ids, mask, 6)  # attention free: one row per prompt
    assert isinstance(packed, PackedPrompts)
    assert packed.input_ids.size(0) == 3
    keys = allowed_keys(packed)
    seg = packed.segments
    for row in range(3):
        real = seg[row] >= 0
        for q in real.nonzero().flatten().tolist():
            seen = keys[row, q].nonzero().flatten()
            # A prompt token sees the prompt up to itself; a completion token the whole prompt and itself causally.
            expected = [k for k in range(q + 1) if seg[row, k] == 0 or seg[row, k] == seg[row, q]]
            assert seen.tolist() == expected
        for q in (~real).nonzero().flatten().tolist():
            assert keys[row, q].nonzero().flatten().tolist() == [q]  # padding sees its diagonal only

    # Every scored token is predicted by the hidden state of the token before it in its own completion, or by the
    # last prompt token, at the position the plain forward gives it.
    flat_ids, flat_positions = packed.input_ids.flatten(), packed.position_ids.flatten()
    prompt_width = ids.size(1) - 6
    members, columns = mask[:, prompt_width:].bool().nonzero(as_tuple=True)
    assert torch.equal(packed.targets, ids[members, prompt_width + columns])
    for index, member, column in zip(packed.hidden_index.tolist(), members.tolist(), columns.tolist(), strict=True):
        assert flat_ids[index] == ids[member, prompt_width + column - 1]
        assert flat_positions[index] == prompt_width + column - 1


def test_prompts_match_by_ids_and_mask_not_by_position():
    pad = 0
    prompts = [[pad, 5, 6], [pad, 5, 6], [0, 5, 6]]  # the third has a real token 0 where the others pad
    ids = torch.tensor([p + [9, 9] for p in prompts])
    mask = torch.tensor([[0, 1, 1, 1, 1], [0, 1, 1, 1, 1], [1, 1, 1, 1, 1]])
    packed = pack_shared_prompts(ids, mask, 2)
    assert isinstance(packed, PackedPrompts)
    assert packed.input_ids.size(0) == packed.prompts == 2
    assert sorted((packed.segments == 0).sum(1).tolist()) == [2, 3]


@pytest.mark.parametrize(
    ("ids", "mask", "reason"),
    [
        ([[5, 6, 9], [5, 6, 8]], [[1, 0, 1], [1, 0, 1]], "prompts are not left-padded"),
        ([[5, 6, 9, 9], [5, 6, 8, 8]], [[1, 1, 0, 1], [1, 1, 1, 1]], "completion masks are not contiguous"),
    ],
)
def test_packing_refuses_layouts_it_cannot_reproduce(ids, mask, reason):
    completion_width = len(ids[0]) - 2
    assert pack_shared_prompts(torch.tensor(ids), torch.tensor(mask), completion_width) == reason


def test_long_completions_get_a_row_each_and_short_ones_share_the_prompt_row():
    cost = shared_prompt.attention_cost_per_pair(_smollm2_config())
    short = pack_shared_prompts(*ragged_batch(1, [120, 125], 4, 40), 40, cost)
    assert isinstance(short, PackedPrompts) and short.input_ids.size(0) == 2
    ids, mask = ragged_batch(2, [64, 60], 4, 512)
    mask[:, 64:] = 1  # every completion 512 tokens long
    long = pack_shared_prompts(ids, mask, 512, cost)
    assert isinstance(long, PackedPrompts) and long.input_ids.size(0) == 8


def _smollm2_config():
    from transformers import LlamaConfig

    return LlamaConfig(**ARCHITECTURES["smollm2-135m"])


def test_share_prompt_forward_is_a_validated_bool_on_by_default(tmp_path):
    assert EGSWConfig(**trainer_kwargs(tmp_path)).share_prompt_forward is True
    with pytest.raises(ValueError, match="share_prompt_forward must be true or false"):
        EGSWConfig(**trainer_kwargs(tmp_path, share_prompt_forward="yes"))


# ---- models -----------------------------------------------------------------------------------------------------


def tiny_model(architecture: str, attention: str = "sdpa") -> tuple[torch.nn.Module, object]:
    """A tiny random fp32 Llama or Qwen2 (2 layers, vocabulary 256) and its word tokenizer."""
    if architecture == "llama":
        model, tokenizer = build_random_model("tiny", seed=0)
    else:
        tokenizer = build_word_tokenizer(VOCAB)
        config = Qwen2Config(
            vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=512, tie_word_embeddings=True,
            pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        )  # fmt: skip
        torch.manual_seed(0)
        model = Qwen2ForCausalLM(config)
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        model.generation_config.eos_token_id = tokenizer.eos_token_id
    with torch.no_grad():
        model.get_input_embeddings().weight[tokenizer.eos_token_id] *= 16.0  # ragged completions
    model.set_attn_implementation(attention)
    return model, tokenizer


@pytest.fixture
def packed_calls(monkeypatch) -> list[torch.nn.Module]:
    """The models the shared-prompt forward ran on, in order (so a silent fallback fails the test)."""
    calls: list[torch.nn.Module] = []
    original = shared_prompt.packed_logps_and_entropies

    def spy(model, *args, **kwargs):
        calls.append(model)
        return original(model, *args, **kwargs)

    monkeypatch.setattr(shared_prompt, "packed_logps_and_entropies", spy)
    return calls


def make_trainer(architecture, attention, dataset, out: Path, **fields) -> EGSWTrainer:
    model, tokenizer = tiny_model(architecture, attention)
    peft = fields.pop("peft", None)
    args = EGSWConfig(**trainer_kwargs(out, **fields))
    return EGSWTrainer(
        model=model, reward_funcs=word_variety_reward, args=args, train_dataset=dataset, processing_class=tokenizer,
        peft_config=peft,
    )  # fmt: skip


def logps_entropies_grads(trainer: EGSWTrainer, share: bool, ids, mask, width, batch_size=None):
    """Log-probs and entropies (B, C), and every parameter's gradient of a loss that uses both."""
    trainer.args.share_prompt_forward = share
    trainer.model.zero_grad()
    logps, entropies, _ = trainer._get_per_token_logps_and_entropies(
        trainer.model, ids, mask, width, batch_size=batch_size, compute_entropy=True
    )
    weights = torch.linspace(-1.0, 1.0, logps.numel()).view_as(logps)
    ((logps * weights).sum() + 0.3 * (entropies * weights.flip(0)).sum()).backward()
    grads = {name: p.grad.clone() for name, p in trainer.model.named_parameters() if p.grad is not None}
    return logps.detach(), entropies.detach(), grads


@pytest.mark.parametrize(
    ("architecture", "attention", "batch_size"),
    [("llama", "sdpa", None), ("llama", "eager", None), ("qwen2", "sdpa", None), ("llama", "sdpa", 5)],
    ids=["llama-sdpa", "llama-eager", "qwen2-sdpa", "llama-chunks-of-5"],
)
def test_logps_entropies_and_gradients_equal_the_plain_forward(
    architecture, attention, batch_size, prompts_dataset, tmp_path, packed_calls
):
    trainer = make_trainer(architecture, attention, prompts_dataset, tmp_path)
    ids, mask = ragged_batch(3, [3, 9, 6, 1], group_size=4, completion_width=11)
    plain = logps_entropies_grads(trainer, False, ids, mask, 11, batch_size)
    assert not packed_calls
    shared = logps_entropies_grads(trainer, True, ids, mask, 11, batch_size)
    assert packed_calls and not trainer._egsw_shared_prompt_fallbacks

    scored = mask[:, -11:].bool()
    assert (plain[0][scored] != 0).all() and (plain[0][~scored] == 0).all()
    torch.testing.assert_close(shared[0], plain[0], rtol=0, atol=1e-5)
    torch.testing.assert_close(shared[1], plain[1], rtol=0, atol=1e-5)
    assert shared[2].keys() == plain[2].keys() and len(plain[2]) == len(list(trainer.model.parameters()))
    for name, grad in plain[2].items():
        assert grad.norm() > 0, name
        relative = ((shared[2][name] - grad).norm() / grad.norm()).item()
        assert relative <= 1e-5, f"{name}: relative gradient error {relative:.2e}"


def test_no_grad_pass_with_chunks_equals_trl(prompts_dataset, tmp_path, packed_calls):
    """The old-policy/reference passes: no grad, chunked by batch_size, compared with TRL's own method."""
    trainer = make_trainer("llama", "sdpa", prompts_dataset, tmp_path)
    ids, mask = ragged_batch(4, [4, 8, 2, 5, 7, 3], group_size=4, completion_width=9)
    with torch.no_grad():
        expected, _, _ = GRPOTrainer._get_per_token_logps_and_entropies(trainer, trainer.model, ids, mask, 9, 8)
        logps, entropies, _ = trainer._get_per_token_logps_and_entropies(trainer.model, ids, mask, 9, 8)
    assert len(packed_calls) == 3 and entropies is None
    torch.testing.assert_close(logps, expected, rtol=0, atol=1e-5)


# ---- training runs ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory) -> dict[str, Path]:
    """The tiny Llama and Qwen2 saved, so that TRL can load a reference model from the same folder (beta > 0)."""
    dirs = {}
    for architecture in ("llama", "qwen2"):
        model, tokenizer = tiny_model(architecture)
        dirs[architecture] = tmp_path_factory.mktemp(architecture)
        model.save_pretrained(dirs[architecture])
        tokenizer.save_pretrained(dirs[architecture])
    return dirs


def train_parameters(model_dir: Path, dataset, out: Path, share: bool, **fields):
    """Trains with plain SGD: Adam divides by sqrt(v) + 1e-8, so it turns fp32 rounding in near-zero gradients into
    parameter differences of lr-size; SGD keeps the comparison about the gradients."""
    peft = fields.pop("peft", None)
    fields = dict(optim="sgd", learning_rate=0.5, share_prompt_forward=share) | fields
    args = EGSWConfig(**trainer_kwargs(out, **fields))
    trainer = EGSWTrainer(
        model=str(model_dir), reward_funcs=word_variety_reward, args=args, train_dataset=dataset, peft_config=peft
    )
    trainer.train()
    params = {name: p.detach().clone() for name, p in trainer.model.named_parameters()}
    return trainer, params


def max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max((a[name] - b[name]).abs().max().item() for name in a)


@pytest.mark.slow
@pytest.mark.parametrize("architecture", ["llama", "qwen2"])
def test_five_steps_train_to_the_same_parameters(architecture, model_dirs, prompts_dataset, tmp_path, packed_calls):
    # Two micro-batches per generation batch: TRL shuffles before splitting, so groups arrive split and shuffled.
    # beta > 0 adds the reference pass; num_iterations 2 the old-policy pass (EGSW's entropies come from it).
    fields = dict(
        max_steps=5, per_device_train_batch_size=8, gradient_accumulation_steps=2, num_iterations=2, beta=0.04,
        egsw_alpha=0.5, egsw_temperature=0.5,
    )  # fmt: skip
    model_dir = model_dirs[architecture]
    plain, plain_params = train_parameters(model_dir, prompts_dataset, tmp_path / "plain", False, **fields)
    assert not packed_calls
    shared, shared_params = train_parameters(model_dir, prompts_dataset, tmp_path / "shared", True, **fields)
    assert not shared._egsw_shared_prompt_fallbacks
    assert any(m is shared.ref_model for m in packed_calls) and any(m is not shared.ref_model for m in packed_calls)

    start = dict(tiny_model(architecture)[0].named_parameters())  # the saved model's weights
    assert max_difference({k: v.detach() for k, v in start.items()}, plain_params) > 1e-3
    assert max_difference(plain_params, shared_params) <= 1e-5
    a, b = plain.egsw_last, shared.egsw_last
    assert a is not None and b is not None and a.entropy_source == b.entropy_source == "old_logps"
    assert torch.equal(a.mask, b.mask)
    torch.testing.assert_close(b.entropies, a.entropies, rtol=0, atol=1e-5)
    torch.testing.assert_close(b.weights, a.weights, rtol=0, atol=1e-5)
    assert (a.weights[a.mask.bool()] != 1).any()


@pytest.mark.slow
@pytest.mark.parametrize(
    "fields",
    [
        dict(gradient_checkpointing=True),
        dict(peft=LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["q_proj", "v_proj"])),
        dict(egsw_mode="none"),
    ],
    ids=["gradient-checkpointing", "lora", "egsw-mode-none"],
)
def test_shared_training_matches_plain(fields, model_dirs, prompts_dataset, tmp_path, packed_calls):
    model_dir = model_dirs["llama"]
    _, plain_params = train_parameters(model_dir, prompts_dataset, tmp_path / "plain", False, **dict(fields))
    trainer, shared_params = train_parameters(model_dir, prompts_dataset, tmp_path / "shared", True, **dict(fields))
    assert packed_calls and not trainer._egsw_shared_prompt_fallbacks
    start = dict(tiny_model("llama")[0].named_parameters())
    common = {k: v for k, v in plain_params.items() if k in start}
    moved = max_difference({k: start[k].detach() for k in common}, common) if "peft" not in fields else 0.0
    assert "peft" in fields or moved > 1e-4
    if "peft" in fields:  # the adapters moved
        lora = [k for k in plain_params if "lora_B" in k]
        assert lora and max(plain_params[k].abs().max().item() for k in lora) > 0
    assert max_difference(plain_params, shared_params) <= 1e-5


# ---- fallbacks --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "reason"),
    [("dropout", "the model has active dropout"), ("distinct-prompts", "no prompt occurs twice in a micro-batch")],
)
def test_falls_back_to_the_plain_forward_with_one_info_line(
    case, reason, prompts_dataset, tmp_path, packed_calls, monkeypatch
):
    lines: list[str] = []
    monkeypatch.setattr(shared_prompt.logger, "info", lines.append)
    trainer = make_trainer("llama", "sdpa", prompts_dataset, tmp_path)
    trainer.model.train()
    group_size = 2
    if case == "dropout":
        trainer.model.config.attention_dropout = 0.1
    else:
        group_size = 1  # as with num_generations=1
    ids, mask = ragged_batch(5, [3, 5], group_size=group_size, completion_width=4)
    for _ in range(2):
        logps, _, _ = trainer._get_per_token_logps_and_entropies(trainer.model, ids, mask, 4)
    assert not packed_calls and logps.shape == (2 * group_size, 4)
    assert lines == [f"share_prompt_forward: plain forward instead of the shared-prompt one ({reason})."]


def test_unsupported_reason_names_what_is_missing():
    model, _ = tiny_model("llama")
    assert unsupported_reason(model) is None
    model.config._attn_implementation = "flex_attention"
    assert unsupported_reason(model) == "attention implementation 'flex_attention' is not sdpa or eager"
    model.config._attn_implementation = "sdpa"
    model.config.model_type = "gpt2"
    assert "architecture 'gpt2'" in unsupported_reason(model)
