import pytest

from torchtune.config import ConfigError, ConfigValidationError, DictConfig, parse, parse_args


@pytest.fixture
def cfg_path(write_yaml):
    return write_yaml(
        """
        output_dir: /tmp/out
        seed: 1
        logger:
          log_dir: ${output_dir}/logs
        model:
          _component_: torchtune.models.a.small
          lora_rank: 8
        """
    )


def test_parse_args_applies_overrides_then_resolves(cfg_path):
    cfg = parse_args(["--config", str(cfg_path), "output_dir=/o", "seed=2", "~model.lora_rank"])
    assert cfg.logger.log_dir == "/o/logs"
    assert cfg.seed == 2 and cfg.model.to_dict() == {"_component_": "torchtune.models.a.small"}


def test_equals_forms_and_allow_root(cfg_path):
    cfg = parse_args([f"--config={cfg_path}", "--allow-component-root", "mypkg.", "--allow-component-root=other"])
    assert cfg._extra_roots == ("mypkg.", "other")


def test_decorator_reads_argv_and_checks_known_keys(cfg_path):
    seen = {}

    @parse
    def main(cfg: DictConfig) -> int:
        seen["cfg"] = cfg
        return 0

    assert main(["--config", str(cfg_path)]) == 0 and seen["cfg"].seed == 1

    @parse(known_keys={"output_dir", "seed", "model"})
    def strict(cfg: DictConfig) -> None:
        raise AssertionError("must not run")

    with pytest.raises(ConfigValidationError, match=rf"{cfg_path}:3: unknown key 'logger'"):
        strict(["--config", str(cfg_path)])


@pytest.mark.parametrize(
    "argv, message",
    [
        ([], r"missing --config; usage: --config PATH"),
        (["--config"], r"--config needs a value"),
        (["--config", "a.yaml", "--config", "b.yaml"], r"--config given twice \('a.yaml' and 'b.yaml'\)"),
        (["--config", "a.yaml", "--lr", "1"], r"unknown option '--lr'"),
        (["--allow-component-root"], r"--allow-component-root needs a value"),
    ],
)
def test_bad_command_lines(argv, message):
    with pytest.raises(ConfigError, match=message):
        parse_args(argv)


def test_bad_override_through_parse_args(cfg_path):
    with pytest.raises(ConfigError, match="override 'seed' is not of the form key=value"):
        parse_args(["--config", str(cfg_path), "seed"])
