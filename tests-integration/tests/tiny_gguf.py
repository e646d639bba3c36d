"""A tiny random-weight llama GGUF, written with the ``gguf`` package: 2 layers, 64 wide, a
259-token byte vocabulary. It loads and generates in well under a second on a CPU, which is
all a test of the supervision path needs from a real engine."""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np

N_VOCAB = 259  # <unk>, <s>, </s> and the 256 bytes
N_EMBD = 64
N_LAYER = 2
N_HEAD = 4
N_FF = 128
N_CTX = 256


def write_tiny_llama(path: Path, seed: int = 0) -> Path:
    """Write the model to ``path`` and return it."""
    rng = np.random.default_rng(seed)

    def weights(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("rbee-hive test model")
    writer.add_context_length(N_CTX)
    writer.add_embedding_length(N_EMBD)
    writer.add_block_count(N_LAYER)
    writer.add_feed_forward_length(N_FF)
    writer.add_head_count(N_HEAD)
    writer.add_head_count_kv(N_HEAD)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_dimension_count(N_EMBD // N_HEAD)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)

    tokens = [b"<unk>", b"<s>", b"</s>"] + [f"<0x{b:02X}>".encode() for b in range(256)]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL] + [
        gguf.TokenType.BYTE
    ] * 256
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores([0.0] * N_VOCAB)
    writer.add_token_types(types)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)

    ones = np.ones(N_EMBD, dtype=np.float32)
    writer.add_tensor("token_embd.weight", weights(N_VOCAB, N_EMBD))
    writer.add_tensor("output_norm.weight", ones)
    writer.add_tensor("output.weight", weights(N_VOCAB, N_EMBD))
    for layer in range(N_LAYER):
        prefix = f"blk.{layer}."
        writer.add_tensor(prefix + "attn_norm.weight", ones)
        writer.add_tensor(prefix + "attn_q.weight", weights(N_EMBD, N_EMBD))
        writer.add_tensor(prefix + "attn_k.weight", weights(N_EMBD, N_EMBD))
        writer.add_tensor(prefix + "attn_v.weight", weights(N_EMBD, N_EMBD))
        writer.add_tensor(prefix + "attn_output.weight", weights(N_EMBD, N_EMBD))
        writer.add_tensor(prefix + "ffn_norm.weight", ones)
        writer.add_tensor(prefix + "ffn_gate.weight", weights(N_FF, N_EMBD))
        writer.add_tensor(prefix + "ffn_up.weight", weights(N_FF, N_EMBD))
        writer.add_tensor(prefix + "ffn_down.weight", weights(N_EMBD, N_FF))

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
