// A found model as one GGUF file for llama.cpp (docs/export.md): architecture `llama` when every
// kept block has the same shape, else `deci` with per-layer head / KV-head / FFN arrays; dropped
// blocks removed; heads cut to 2k of d dimensions zero-padded back to d (exact: the kept RoPE
// pairs keep their frequencies, the padding contributes nothing, and the score scale 1/sqrt(d) is
// jointnas's own); Q and K rows permuted from HF's rotate-half layout to ggml's interleaved RoPE
// (as convert_hf_to_gguf.py does). Each linear in its ggml format, byte for byte, or jointnas's
// own formats converted to the nearest ggml type with the conversion's error reported.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "jointnas/core/json_util.h"
#include "jointnas/export/gguf_file.h"
#include "jointnas/model/checkpoint.h"
#include "jointnas/model/llama.h"

namespace jointnas::exporting {

// The tokenizer in GGUF form (tokenizer.ggml.*).
struct GgufVocab {
  std::string model;  // "llama" (SentencePiece) or "gpt2" (byte-level BPE)
  std::string pre;    // gpt2: the pre-tokenizer ("llama-bpe", "gpt-2", ...)
  std::vector<std::string> tokens;
  std::vector<float> scores;         // llama only
  std::vector<int32_t> token_types;  // 1 normal, 2 unknown, 3 control, 4 user-defined, 6 byte
  std::vector<std::string> merges;   // gpt2 only: "a b"
  int64_t bos_id = -1, eos_id = -1, unk_id = -1;
  bool add_bos = true;
  std::string source;  // the file it came from
};

// The tokenizer of the checkpoint at `model_path`: llama2.c tokenizer.bin / tok512.bin beside a
// .bin, or tokenizer.model (SentencePiece) / tokenizer.json (byte-level BPE) in an HF directory.
// Sizes read from files are bounded before allocating. IoError when none can be read.
GgufVocab read_vocab(const model::Checkpoint& ckpt, const std::string& model_path);

struct GgufExportOptions {
  // ggml type of token_embd (and output, when untied): f32, f16 or q8_0.
  std::string embedding_type = "f16";
  std::string name;  // general.name
  Json provenance;   // written as jointnas.* keys (source model, arch, budget)
};

// One tensor of the file, for the export's report.
struct GgufTensorReport {
  std::string name;           // "blk.3.attn_q.weight"
  std::string source_format;  // the layer's jointnas format ("q4_k", "w8a16", "bf16", ...)
  std::string ggml_type;      // what the file holds
  bool exact = true;          // the file's values are the runtime's, bit for bit
  double rel_error = 0.0;     // ||converted - source|| / ||source|| (0 when exact)
};

struct GgufExportResult {
  std::string architecture;          // "llama" or "deci"
  std::vector<int64_t> kept_layers;  // source layer of each block in the file
  std::vector<GgufTensorReport> tensors;
  uint64_t bytes = 0;
};

// Everything the file will hold, checked before anything is written: ConfigError naming the
// layer and the reason for what GGUF cannot hold (a width that is not whole ggml blocks for the
// format's ggml type, a cut head whose score scale is not 1/sqrt(head_dim), llama3 RoPE scaling).
GgufExportResult build_gguf(const model::LlamaModel& m, const GgufVocab& vocab,
                            const GgufExportOptions& opts, GgufFile* file);

// build_gguf, then the file written atomically to `out`.
GgufExportResult write_gguf(const model::LlamaModel& m, const GgufVocab& vocab,
                            const GgufExportOptions& opts, const std::string& out);

// The report as JSON (what `jointnas export` prints).
Json gguf_report_json(const GgufExportResult& r);

}  // namespace jointnas::exporting
