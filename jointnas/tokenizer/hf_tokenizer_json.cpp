// Loaders for HF byte-level BPE files: tokenizer.json (`tokenizers` serialization) and GPT-2's
// original encoder.json + vocab.bpe. Both feed ByteLevelBpe; every malformed field is an IoError
// naming the file and the field.
#include "jointnas/core/error.h"
#include "jointnas/core/json_util.h"
#include "jointnas/core/mapped_file.h"
#include "jointnas/tokenizer/byte_level_bpe.h"

namespace jointnas::tok {
namespace {

// Ids above this are refused: a vocabulary is at most a few hundred thousand tokens, and a bogus
// huge id must not make us allocate gigabytes for the id -> bytes table.
constexpr int64_t kMaxTokenId = int64_t(1) << 22;

// A byte-level vocabulary object {"Ġthe": 262, ...} -> id -> raw bytes. `by_string` receives the
// vocabulary strings themselves (merges refer to tokens by these strings).
std::vector<std::string> read_byte_level_vocab(const Json& vocab, const std::string& source,
                                               BytesIndex& by_string) {
  JNAS_CHECK_IO(vocab.is_object() && !vocab.empty(),
                "{}: the vocabulary must be a non-empty object {{\"token\": id}}", source);
  std::vector<std::string> id_to_bytes;
  for (const auto& [token, value] : vocab.items()) {
    JNAS_CHECK_IO(value.is_number_integer(), "{}: vocabulary id of '{}' must be an integer, got {}",
                  source, token, value.dump());
    const int64_t id = value.get<int64_t>();
    JNAS_CHECK_IO(id >= 0 && id < kMaxTokenId,
                  "{}: vocabulary id {} of '{}' is out of range [0, {})", source, id, token,
                  kMaxTokenId);
    auto bytes = byte_level_to_bytes(token);
    JNAS_CHECK_IO(bytes.has_value() && !bytes->empty(),
                  "{}: vocabulary token '{}' is not byte-level (a character outside GPT-2's "
                  "bytes_to_unicode map)",
                  source, token);
    if (static_cast<size_t>(id) >= id_to_bytes.size())
      id_to_bytes.resize(static_cast<size_t>(id) + 1);
    JNAS_CHECK_IO(id_to_bytes[static_cast<size_t>(id)].empty(), "{}: id {} is used twice", source,
                  id);
    id_to_bytes[static_cast<size_t>(id)] = std::move(*bytes);
    by_string.emplace(token, static_cast<int32_t>(id));
  }
  return id_to_bytes;
}

// One merge "a b" (or ["a", "b"]) of rank `rank`, located by `where` in errors.
void add_merge_strings(ByteLevelBpe& bpe, const BytesIndex& by_string, std::string_view a,
                       std::string_view b, int32_t rank, const std::string& where) {
  auto ia = by_string.find(a);
  auto ib = by_string.find(b);
  JNAS_CHECK_IO(ia != by_string.end() && ib != by_string.end(),
                "{}: merge '{} {}' uses a token that is not in the vocabulary", where, a, b);
  JNAS_CHECK_IO(bpe.add_merge(ia->second, ib->second, rank),
                "{}: merge '{} {}' produces '{}{}', which is not in the vocabulary", where, a, b, a,
                b);
}

// Escapes a literal string for PCRE2 (HF Split with {"String": ...}).
std::string regex_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (std::string_view("\\^$.|?*+()[]{}/-#").find(c) != std::string_view::npos)
      out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

struct PreTokenizerInfo {
  bool byte_level = false;
};

// HF pre_tokenizer -> splitters, recursively through Sequence.
void add_pre_tokenizer(ByteLevelBpe& bpe, const Json& pt, const std::string& path,
                       PreTokenizerInfo& info, int depth) {
  if (pt.is_null()) return;
  JNAS_CHECK_IO(depth < 8 && pt.is_object(), "{}: pre_tokenizer must be an object", path);
  const std::string type = get_string(pt, "type", path).value_or("");
  if (type == "Sequence") {
    const Json* list = pt.contains("pretokenizers") ? &pt["pretokenizers"] : nullptr;
    JNAS_CHECK_IO(list && list->is_array(),
                  "{}: Sequence pre_tokenizer needs a 'pretokenizers' "
                  "array",
                  path);
    for (const Json& p : *list) add_pre_tokenizer(bpe, p, path, info, depth + 1);
  } else if (type == "ByteLevel") {
    info.byte_level = true;
    // HF's defaults when a key is absent: add_prefix_space true, use_regex true.
    bpe.set_add_prefix_space(get_bool(pt, "add_prefix_space", path).value_or(true));
    if (get_bool(pt, "use_regex", path).value_or(true)) {
      bpe.add_splitter(
          std::make_unique<RegexSplitter>(kGpt2Pattern, SplitBehavior::kIsolated, false, path));
    }
  } else if (type == "Split") {
    const Json* pattern = pt.contains("pattern") ? &pt["pattern"] : nullptr;
    JNAS_CHECK_IO(pattern && pattern->is_object(),
                  "{}: Split pre_tokenizer needs a 'pattern' "
                  "object {{\"Regex\": ...}} or {{\"String\": ...}}",
                  path);
    std::string regex;
    if (auto r = get_string(*pattern, "Regex", path)) {
      regex = *r;
    } else if (auto s = get_string(*pattern, "String", path)) {
      regex = regex_escape(*s);
    } else {
      throw IoError(fmt::format("{}: Split pattern must hold 'Regex' or 'String', got {}", path,
                                pattern->dump()));
    }
    const std::string behavior = get_string(pt, "behavior", path).value_or("Isolated");
    SplitBehavior b;
    if (behavior == "Isolated") {
      b = SplitBehavior::kIsolated;
    } else if (behavior == "Removed") {
      b = SplitBehavior::kRemoved;
    } else if (behavior == "MergedWithPrevious") {
      b = SplitBehavior::kMergedWithPrevious;
    } else if (behavior == "MergedWithNext") {
      b = SplitBehavior::kMergedWithNext;
    } else {
      throw IoError(fmt::format("{}: Split behavior '{}' is not supported", path, behavior),
                    "supported: Isolated, Removed, MergedWithPrevious, MergedWithNext");
    }
    bpe.add_splitter(std::make_unique<RegexSplitter>(
        regex, b, get_bool(pt, "invert", path).value_or(false), path));
  } else {
    throw IoError(fmt::format("{}: pre_tokenizer type '{}' is not supported", path, type),
                  "supported: ByteLevel, Split, Sequence of them (byte-level BPE tokenizers)");
  }
}

// BOS from a TemplateProcessing post-processor ("single": [SpecialToken BOS, Sequence A]).
std::optional<int32_t> template_bos(const ByteLevelBpe& bpe, const Json& pp, int depth) {
  if (!pp.is_object() || depth > 4) return std::nullopt;
  const std::string type = string_or(pp, "type", "");
  if (type == "Sequence" && pp.contains("processors") && pp["processors"].is_array()) {
    for (const Json& p : pp["processors"]) {
      if (auto bos = template_bos(bpe, p, depth + 1)) return bos;
    }
  }
  if (type != "TemplateProcessing" || !pp.contains("single") || !pp["single"].is_array() ||
      pp["single"].empty()) {
    return std::nullopt;
  }
  const Json& first = pp["single"][0];
  if (!first.is_object() || !first.contains("SpecialToken")) return std::nullopt;
  const Json& st = first["SpecialToken"];
  if (!st.is_object() || !st.contains("id") || !st["id"].is_string()) return std::nullopt;
  const int32_t id = bpe.token_to_id(st["id"].get<std::string>());
  return id >= 0 ? std::optional<int32_t>(id) : std::nullopt;
}

int32_t first_known(const ByteLevelBpe& bpe, std::initializer_list<const char*> names) {
  for (const char* n : names) {
    if (int32_t id = bpe.token_to_id(n); id >= 0) return id;
  }
  return -1;
}

}  // namespace

std::unique_ptr<Tokenizer> load_hf_tokenizer_json(const std::string& path) {
  const Json j = read_json_file(path);
  JNAS_CHECK_IO(j.is_object(), "{}: expected a tokenizer.json object", path);
  JNAS_CHECK_IO(j.contains("model") && j["model"].is_object(), "{}: missing 'model' object", path);
  const Json& model = j["model"];
  const std::string type = get_string(model, "type", path).value_or("BPE");
  JNAS_CHECK_IO(type == "BPE", "{}: model type '{}' is not supported (only byte-level BPE)", path,
                type);
  const Json normalizer = j.value("normalizer", Json());
  if (!normalizer.is_null()) {
    throw IoError(
        fmt::format("{}: normalizer '{}' is not supported by the byte-level BPE reader", path,
                    string_or(normalizer, "type", "?")),
        "SentencePiece-style tokenizer.json files come with a tokenizer.model: load that");
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    JNAS_CHECK_IO(get_string(model, key, path).value_or("").empty(),
                  "{}: model.{} is not "
                  "supported",
                  path, key);
  }
  JNAS_CHECK_IO(!get_bool(model, "byte_fallback", path).value_or(false),
                "{}: model.byte_fallback (SentencePiece-style BPE) is not supported", path);

  auto bpe = std::make_unique<ByteLevelBpe>("bpe", path);
  BytesIndex by_string;
  JNAS_CHECK_IO(model.contains("vocab"), "{}: missing model.vocab", path);
  bpe->set_vocab(read_byte_level_vocab(model["vocab"], path, by_string));

  // HF tokenizers refuses a BPE model without merges ("missing field `merges`"); reading it as an
  // empty list made every byte its own token, a silently different tokenizer.
  if (!model.contains("merges")) {
    throw IoError(fmt::format("{}: missing model.merges (a BPE model lists its merges, [] when it has none)", path),
                  "the file is truncated or was written by another tool; use the tokenizer.json that came with "
                  "the model");
  }
  const Json& merges = model["merges"];
  JNAS_CHECK_IO(merges.is_array(), "{}: model.merges must be an array", path);
  JNAS_CHECK_IO(merges.size() < static_cast<size_t>(kMaxTokenId) * 4, "{}: {} merges is too many",
                path, merges.size());
  for (size_t i = 0; i < merges.size(); ++i) {
    const Json& m = merges[i];
    const std::string where = fmt::format("{}: model.merges[{}]", path, i);
    if (m.is_string()) {
      // "a b": byte-level tokens never contain a space (it is written 'Ġ'), so split at the one.
      const std::string& s = m.get_ref<const std::string&>();
      const size_t sp = s.find(' ');
      JNAS_CHECK_IO(sp != std::string::npos && s.find(' ', sp + 1) == std::string::npos,
                    "{} must be two tokens separated by one space, got '{}'", where, s);
      add_merge_strings(*bpe, by_string, std::string_view(s).substr(0, sp),
                        std::string_view(s).substr(sp + 1), static_cast<int32_t>(i), where);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      add_merge_strings(*bpe, by_string, m[0].get_ref<const std::string&>(),
                        m[1].get_ref<const std::string&>(), static_cast<int32_t>(i), where);
    } else {
      throw IoError(fmt::format("{} must be \"a b\" or [\"a\", \"b\"], got {}", where, m.dump()));
    }
  }
  bpe->set_ignore_merges(get_bool(model, "ignore_merges", path).value_or(false));

  const Json added = j.value("added_tokens", Json::array());
  JNAS_CHECK_IO(added.is_array(), "{}: added_tokens must be an array", path);
  for (size_t i = 0; i < added.size(); ++i) {
    const std::string where = fmt::format("{}: added_tokens[{}]", path, i);
    auto id = get_int(added[i], "id", where);
    auto content = get_string(added[i], "content", where);
    JNAS_CHECK_IO(id && content, "{} needs 'id' and 'content'", where);
    JNAS_CHECK_IO(*id >= 0 && *id < kMaxTokenId, "{}: id {} is out of range", where, *id);
    bpe->add_token({static_cast<int32_t>(*id), *content,
                    get_bool(added[i], "special", where).value_or(false)});
  }

  PreTokenizerInfo info;
  add_pre_tokenizer(*bpe, j.value("pre_tokenizer", Json()), path, info, 0);
  const Json decoder = j.value("decoder", Json());
  const bool byte_decoder = string_or(decoder, "type", "") == "ByteLevel";
  JNAS_CHECK_IO(info.byte_level || byte_decoder,
                "{}: not a byte-level BPE (no ByteLevel "
                "pre_tokenizer or decoder)",
                path);
  bpe->finalize(/*require_all_bytes=*/false);

  // BOS: the post-processor's template says whether a BOS is prepended; otherwise the usual names.
  auto bos = template_bos(*bpe, j.value("post_processor", Json()), 0);
  const int32_t eos = first_known(*bpe, {"<|end_of_text|>", "</s>", "<|endoftext|>", "<eos>"});
  bpe->set_special_ids(bos.value_or(first_known(*bpe, {"<|begin_of_text|>", "<s>", "<bos>"})), eos,
                       bos.has_value());
  return bpe;
}

std::unique_ptr<Tokenizer> load_gpt2(const std::string& encoder_json,
                                     const std::string& vocab_bpe) {
  auto bpe = std::make_unique<ByteLevelBpe>("bpe", encoder_json);
  BytesIndex by_string;
  bpe->set_vocab(read_byte_level_vocab(read_json_file(encoder_json), encoder_json, by_string));

  const std::string text = read_text_file(vocab_bpe);
  int32_t rank = 0;
  for_each_line(text, [&](std::string_view line, size_t line_no) {
    if (line.empty() || (line_no == 1 && line.starts_with("#version"))) return;
    const size_t sp = line.find(' ');
    const std::string where = fmt::format("{}:{}", vocab_bpe, line_no);
    JNAS_CHECK_IO(sp != std::string_view::npos && line.find(' ', sp + 1) == std::string_view::npos,
                  "{}: expected two tokens separated by one space, got '{}'", where, line);
    add_merge_strings(*bpe, by_string, line.substr(0, sp), line.substr(sp + 1), rank++, where);
  });
  JNAS_CHECK_IO(rank > 0, "{}: no merges", vocab_bpe);
  bpe->add_splitter(
      std::make_unique<RegexSplitter>(kGpt2Pattern, SplitBehavior::kIsolated, false, vocab_bpe));
  // <|endoftext|> is both BOS and EOS for GPT-2 and is never prepended by default.
  auto eot = by_string.find("<|endoftext|>");
  if (eot != by_string.end()) bpe->add_token({eot->second, "<|endoftext|>", true});
  bpe->finalize(/*require_all_bytes=*/true);
  const int32_t eot_id = eot != by_string.end() ? eot->second : -1;
  bpe->set_special_ids(eot_id, eot_id, false);
  return bpe;
}

}  // namespace jointnas::tok
