"""Cache-relevant fields of published model configs (Hugging Face ``config.json`` names).

Only what the KV-cache layout needs is kept; ``ModelCacheSpec.from_config`` reads these the
same way it reads a full config. Values are from the models' published configs (FACTS.md).
"""

PRESETS = {
    "gemma3-1b": {
        "model_type": "gemma3_text", "num_hidden_layers": 26, "num_key_value_heads": 1,
        "head_dim": 256, "sliding_window": 512, "sliding_window_pattern": 6,
        "torch_dtype": "bfloat16",
    },
    "gemma3-4b": {
        "model_type": "gemma3_text", "num_hidden_layers": 34, "num_key_value_heads": 4,
        "head_dim": 256, "sliding_window": 1024, "sliding_window_pattern": 6,
        "torch_dtype": "bfloat16",
    },
    "gemma3-12b": {
        "model_type": "gemma3_text", "num_hidden_layers": 48, "num_key_value_heads": 8,
        "head_dim": 256, "sliding_window": 1024, "sliding_window_pattern": 6,
        "torch_dtype": "bfloat16",
    },
    "gemma3-27b": {
        "model_type": "gemma3_text", "num_hidden_layers": 62, "num_key_value_heads": 16,
        "head_dim": 128, "sliding_window": 1024, "sliding_window_pattern": 6,
        "torch_dtype": "bfloat16",
    },
    "gpt-oss-20b": {
        "model_type": "gpt_oss", "num_hidden_layers": 24, "num_key_value_heads": 8,
        "head_dim": 64, "sliding_window": 128,
        "layer_types": ["sliding_attention", "full_attention"] * 12,
        "torch_dtype": "bfloat16",
    },
    "llama3-8b": {
        "model_type": "llama", "num_hidden_layers": 32, "num_key_value_heads": 8,
        "hidden_size": 4096, "num_attention_heads": 32, "torch_dtype": "bfloat16",
    },
    "qwen3-8b": {
        "model_type": "qwen3", "num_hidden_layers": 36, "num_key_value_heads": 8,
        "head_dim": 128, "sliding_window": None, "use_sliding_window": False,
        "torch_dtype": "bfloat16",
    },
}
