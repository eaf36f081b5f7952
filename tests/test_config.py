"""EGSWConfig: the egsw_* options, their validation, and parsing from the command line and YAML."""

from __future__ import annotations

import inspect

import pytest
from trl import GRPOConfig, GRPOTrainer, TrlParser

from egsw import EGSWConfig, EGSWTrainer


def make(tmp_path, **egsw):
    return EGSWConfig(output_dir=str(tmp_path), report_to=[], use_cpu=True, **egsw)


def test_defaults_and_grpo_fields_are_kept(tmp_path):
    config = make(tmp_path, learning_rate=3e-6, num_generations=4)
    assert isinstance(config, GRPOConfig)
    assert (config.egsw_mode, config.egsw_alpha, config.egsw_temperature) == ("step", 0.1, 1.0)
    assert config.egsw_rescale is True and config.egsw_target_ess == 0.8
    assert config.learning_rate == 3e-6 and config.num_generations == 4


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("egsw_mode", "token", "egsw_mode must be one of step, trajectory, none; got 'token'"),
        ("egsw_alpha", float("nan"), "egsw_alpha must be a finite number"),
        ("egsw_alpha", "much", "egsw_alpha must be a finite number"),
        ("egsw_temperature", -1, "egsw_temperature must be a finite number > 0 or 'auto'; got -1"),
        ("egsw_temperature", 0.0, "egsw_temperature must be a finite number > 0 or 'auto'"),
        ("egsw_temperature", "hot", "egsw_temperature must be a finite number > 0 or 'auto'"),
        ("egsw_temperature", None, "egsw_temperature must be a finite number > 0 or 'auto'"),
        ("egsw_temperature", float("inf"), "egsw_temperature must be a finite number > 0 or 'auto'"),
        ("egsw_target_ess", 0.0, "egsw_target_ess must be a number in \\(0, 1\\]"),
        ("egsw_target_ess", 1.5, "egsw_target_ess must be a number in \\(0, 1\\]"),
        ("egsw_rescale", "yes", "egsw_rescale must be true or false"),
    ],
)
def test_invalid_values_are_refused_with_one_line_naming_the_field(tmp_path, field, value, message):
    with pytest.raises(ValueError, match=message) as error:
        make(tmp_path, **{field: value})
    assert "\n" not in str(error.value)


def test_temperature_accepts_numbers_as_strings_and_auto(tmp_path):
    assert make(tmp_path, egsw_temperature="0.25").egsw_temperature == 0.25
    assert make(tmp_path, egsw_temperature="AUTO").egsw_temperature == "auto"


def test_command_line_and_yaml_set_every_egsw_field(tmp_path):
    parser = TrlParser((EGSWConfig,))
    (config,) = parser.parse_args_and_config(
        args=[
            "--output_dir", str(tmp_path), "--use_cpu", "--report_to", "none",
            "--egsw_mode", "trajectory", "--egsw_alpha", "0.5", "--egsw_temperature", "auto",
            "--egsw_target_ess", "0.6", "--egsw_rescale", "false",
        ]
    )  # fmt: skip
    assert config.egsw_mode == "trajectory" and config.egsw_alpha == 0.5
    assert config.egsw_temperature == "auto" and config.egsw_target_ess == 0.6 and config.egsw_rescale is False

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"output_dir: {tmp_path}\nuse_cpu: true\negsw_temperature: 0.3\negsw_mode: step\n")
    (config,) = parser.parse_args_and_config(args=["--config", str(recipe)])
    assert config.egsw_temperature == 0.3 and config.egsw_mode == "step"

    with pytest.raises(SystemExit):  # argparse refuses a mode outside the choices
        parser.parse_args_and_config(args=["--output_dir", str(tmp_path), "--egsw_mode", "token"])


def _constructed_state(trainer: GRPOTrainer) -> dict[str, object]:
    """Where GRPOTrainer puts what it was given, as identities and names (comparable across trainers)."""
    return {
        "processing_class": id(trainer.processing_class),
        "train_dataset": trainer.train_dataset.column_names,
        "eval_dataset": trainer.eval_dataset.column_names,
        "callbacks": [type(callback).__name__ for callback in trainer.callback_handler.callbacks],
        "reward_names": list(trainer.reward_func_names),
        "num_generations": trainer.num_generations,
    }


@pytest.mark.parametrize("by_keyword", [True, False])
def test_trainer_routes_every_grpo_argument_as_grpo_trainer_does(tmp_path, tiny_model_dir, prompts_dataset, by_keyword):
    """EGSWTrainer passes GRPOTrainer's arguments through (*rest, **kwargs): each lands where TRL puts it."""
    from transformers import AutoTokenizer, TrainerCallback

    from tests.helpers import trainer_kwargs, word_variety_reward

    class Marker(TrainerCallback):
        pass

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir, padding_side="left")
    states = []
    for trainer_class, config_class in ((GRPOTrainer, GRPOConfig), (EGSWTrainer, EGSWConfig)):
        args = config_class(**trainer_kwargs(tmp_path / trainer_class.__name__))
        arguments = dict(
            model=str(tiny_model_dir), reward_funcs=[word_variety_reward], args=args, train_dataset=prompts_dataset,
            eval_dataset=prompts_dataset, processing_class=tokenizer, reward_processing_classes=None,
            callbacks=[Marker()],
        )  # fmt: skip
        if by_keyword:
            trainer = trainer_class(**arguments)
        else:
            order = [name for name in inspect.signature(GRPOTrainer.__init__).parameters if name != "self"]
            trainer = trainer_class(*(arguments[name] for name in order[: len(arguments)]))
        states.append(_constructed_state(trainer))
    assert states[0] == states[1]
    assert states[1]["processing_class"] == id(tokenizer) and "Marker" in states[1]["callbacks"]


def test_trainer_refuses_a_plain_grpo_config(tmp_path):
    with pytest.raises(TypeError, match="EGSWTrainer needs args=EGSWConfig"):
        EGSWTrainer("unused", reward_funcs=[], args=GRPOConfig(output_dir=str(tmp_path), report_to=[], use_cpu=True))
