"""SmolLM2 presets with the sizes of the published ``HuggingFaceTB/SmolLM2-*`` ``config.json`` files."""

from torchtune.models._family import preset
from torchtune.models._lora_settings import lora_preset, qlora_preset
from torchtune.models.smollm2._component_builders import lora_smollm2, smollm2


_SMOLLM2_135M = dict(
    vocab_size=49_152,
    max_seq_len=8_192,
    num_layers=30,
    num_heads=9,
    num_kv_heads=3,
    embed_dim=576,
    intermediate_dim=1_536,
)
smollm2_135m = preset(smollm2, _SMOLLM2_135M, "smollm2_135m", __name__, "SmolLM2 135M (tied embeddings).")
lora_smollm2_135m = lora_preset(lora_smollm2, _SMOLLM2_135M, "lora_smollm2_135m", __name__)
qlora_smollm2_135m = qlora_preset(lora_smollm2, _SMOLLM2_135M, "qlora_smollm2_135m", __name__)

_SMOLLM2_360M = dict(
    vocab_size=49_152,
    max_seq_len=8_192,
    num_layers=32,
    num_heads=15,
    num_kv_heads=5,
    embed_dim=960,
    intermediate_dim=2_560,
)
smollm2_360m = preset(smollm2, _SMOLLM2_360M, "smollm2_360m", __name__, "SmolLM2 360M (tied embeddings).")
lora_smollm2_360m = lora_preset(lora_smollm2, _SMOLLM2_360M, "lora_smollm2_360m", __name__)
qlora_smollm2_360m = qlora_preset(lora_smollm2, _SMOLLM2_360M, "qlora_smollm2_360m", __name__)

_SMOLLM2_1_7B = dict(
    vocab_size=49_152,
    max_seq_len=8_192,
    rope_base=130000.0,
    num_layers=24,
    num_heads=32,
    num_kv_heads=32,
    embed_dim=2_048,
    intermediate_dim=8_192,
)
smollm2_1_7b = preset(smollm2, _SMOLLM2_1_7B, "smollm2_1_7b", __name__, "SmolLM2 1.7B (tied embeddings).")
lora_smollm2_1_7b = lora_preset(lora_smollm2, _SMOLLM2_1_7B, "lora_smollm2_1_7b", __name__)
qlora_smollm2_1_7b = qlora_preset(lora_smollm2, _SMOLLM2_1_7B, "qlora_smollm2_1_7b", __name__)
