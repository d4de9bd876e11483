// Tokenizers against their references. Goldens (tests/fixtures/tokenizer/goldens.json) come from
// scripts/make_tokenizer_goldens.py: Python sentencepiece, tiktoken, HF tokenizers and a Python
// port of llama2.c run.c, each on the corpus in corpus.json. Tests needing ../shared skip without
// it.
#include "jointnas/tokenizer/tokenizer.h"

#include <gtest/gtest.h>

#include "jointnas/core/paths.h"

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>

#include "jointnas/core/error.h"
#include "jointnas/core/json_util.h"
#include "jointnas/core/mapped_file.h"

using namespace jointnas;
namespace fs = std::filesystem;

namespace {

std::string shared_path(const std::string& rel) {
  return (fs::path(JNAS_SHARED_DIR) / rel).string();
}
std::string fixture_path(const std::string& rel) {
  return (fs::path(JNAS_FIXTURES_DIR) / rel).string();
}
// models/stories260K is checked into the repo (two levels above tests/fixtures).
std::string repo_path(const std::string& rel) {
  return (fs::path(JNAS_FIXTURES_DIR).parent_path().parent_path() / rel).string();
}

#define REQUIRE_FILE(path)                                       \
  do {                                                           \
    if (!fs::exists(path)) GTEST_SKIP() << "missing " << (path); \
  } while (0)

// Expects `fn` to throw IoError whose message contains `needle` (the file name, usually).
void expect_io_error(const std::function<void()>& fn, const std::string& needle) {
  try {
    fn();
    ADD_FAILURE() << "expected IoError mentioning '" << needle << "', nothing was thrown";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos)
        << "IoError message '" << e.what() << "' does not mention '" << needle << "'";
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected IoError, got another exception: " << e.what();
  }
}

fs::path scratch_dir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("jnas_tok_" + name + "_" + std::to_string(::getpid()));
  jointnas::remove_tree(fs::path(d).string());
  fs::create_directories(d);
  return d;
}

void write_file(const fs::path& p, const std::string& bytes) {
  std::ofstream(p, std::ios::binary) << bytes;
}

// GPT-2's bytes_to_unicode written out: ids 0..255 are the single bytes (as byte-level strings,
// printable Latin-1 as itself, the rest from U+0100 on), and 256 is "ab".
Json all_bytes_vocab() {
  Json v = Json::object();
  int next = 0;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
    const uint32_t cp = printable ? static_cast<uint32_t>(b) : 256u + static_cast<uint32_t>(next++);
    std::string utf8 = cp < 0x80 ? std::string(1, static_cast<char>(cp))
                                 : std::string{static_cast<char>(0xC0 | (cp >> 6)),
                                               static_cast<char>(0x80 | (cp & 0x3F))};
    v[utf8] = b;
  }
  v["ab"] = 256;
  return v;
}

const std::string kLlama3Ranks = "data/tokenizers/llama3/tokenizer.model";
const std::string kGpt2Dir = "data/tokenizers/gpt2";

// One golden set: how to load the tokenizer, and which file it needs.
struct GoldenCase {
  std::string name;  // key in goldens.json
  std::string file;  // needed file (absolute)
  std::function<std::unique_ptr<tok::Tokenizer>()> load;
  bool decode_after_bos = false;  // llama2.c goldens decode as run.c does, after BOS
};

// gtest prints parameters in test names and failures; the name is all that is useful.
void PrintTo(const GoldenCase& c, std::ostream* os) { *os << c.name; }

std::vector<GoldenCase> golden_cases() {
  const std::string tok512 = repo_path("models/stories260K/tok512.bin");
  const std::string l3json = fixture_path("tokenizer/llama3_tokenizer.json");
  return {
      {"ref-17m", shared_path("models/ref-17m/tokenizer.model"),
       [] { return tok::load_sentencepiece(shared_path("models/ref-17m/tokenizer.model")); }},
      {"llama2", shared_path("data/tokenizers/llama2/tokenizer.model"),
       [] {
         return tok::load_sentencepiece(shared_path("data/tokenizers/llama2/tokenizer.model"));
       }},
      {"llama3-tiktoken", shared_path(kLlama3Ranks),
       [] { return tok::load_tiktoken(shared_path(kLlama3Ranks)); }},
      {"llama3-json", l3json, [l3json] { return tok::load_hf_tokenizer_json(l3json); }},
      {"gpt2", shared_path(kGpt2Dir + "/encoder.json"),
       [] {
         return tok::load_gpt2(shared_path(kGpt2Dir + "/encoder.json"),
                               shared_path(kGpt2Dir + "/vocab.bpe"));
       }},
      {"stories260K-llama2c", tok512, [tok512] { return tok::load_llama2c_tokenizer(tok512, 512); },
       true},
      {"llama2-llama2c", shared_path("data/tokenizers/llama2/tokenizer.bin"),
       [] {
         return tok::load_llama2c_tokenizer(shared_path("data/tokenizers/llama2/tokenizer.bin"),
                                            32000);
       },
       true},
  };
}

class TokenizerParity : public ::testing::TestWithParam<GoldenCase> {};

// Ids must equal the reference exactly on every corpus string, and decode must equal the
// reference's decode (for byte-level BPE and SentencePiece, that is the input text itself).
TEST_P(TokenizerParity, MatchesReferenceIdsAndDecode) {
  const GoldenCase& c = GetParam();
  REQUIRE_FILE(c.file);
  const Json corpus = read_json_file(fixture_path("tokenizer/corpus.json"));
  const Json goldens = read_json_file(fixture_path("tokenizer/goldens.json"));
  ASSERT_TRUE(goldens.contains(c.name)) << "regenerate goldens: scripts/make_tokenizer_goldens.py";
  const Json& g = goldens[c.name];
  ASSERT_EQ(g["ids"].size(), corpus.size());
  auto tok = c.load();
  size_t mismatches = 0;
  for (size_t i = 0; i < corpus.size(); ++i) {
    const std::string text = corpus[i].get<std::string>();
    const auto expected = g["ids"][i].get<std::vector<int32_t>>();
    const auto ids = tok->encode(text);
    EXPECT_EQ(ids, expected) << c.name << " on corpus[" << i << "] = " << Json(text).dump();
    mismatches += ids != expected;
    std::vector<int32_t> to_decode = expected;
    if (c.decode_after_bos) to_decode.insert(to_decode.begin(), tok->bos_id());
    EXPECT_EQ(tok->decode(to_decode), g["decoded"][i].get<std::string>())
        << c.name << " decode of corpus[" << i << "]";
  }
  // parse_special: literal special tokens in the text become their ids.
  if (g.contains("special_texts")) {
    for (size_t i = 0; i < g["special_texts"].size(); ++i) {
      const std::string text = g["special_texts"][i].get<std::string>();
      const auto expected = g["special_ids"][i].get<std::vector<int32_t>>();
      EXPECT_EQ(tok->encode(text, /*parse_special=*/true), expected) << c.name << ": " << text;
      EXPECT_EQ(tok->decode(expected, /*skip_special=*/false), text);
      // Without parse_special the same text is ordinary text: no special id appears.
      for (int32_t id : tok->encode(text, /*parse_special=*/false)) {
        EXPECT_NE(id, tok->eos_id()) << c.name << ": special parsed without parse_special";
        EXPECT_NE(id, tok->bos_id()) << c.name << ": special parsed without parse_special";
      }
    }
  }
  std::printf("[parity] %-20s %zu strings, %zu mismatches (reference: %s)\n", c.name.c_str(),
              corpus.size(), mismatches, g.value("reference", "?").c_str());
}

// FNV-1a 64 over the ids as little-endian int32 bytes (the script hashes the same way).
std::string fnv1a64(const std::vector<int32_t>& ids) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (int32_t id : ids) {
    const auto u = static_cast<uint32_t>(id);
    for (int k = 0; k < 4; ++k) h = (h ^ ((u >> (8 * k)) & 0xFF)) * 0x100000001b3ull;
  }
  return fmt::format("{:016x}", h);
}

// Parity on the whole wikitext-2 test file (1.3 MB), compared through a count and a hash of the
// reference ids. The timing printed here is the throughput report (a report, not an assertion).
TEST_P(TokenizerParity, MatchesReferenceOnWikitext) {
  const GoldenCase& c = GetParam();
  REQUIRE_FILE(c.file);
  const Json goldens = read_json_file(fixture_path("tokenizer/goldens.json"));
  // llama2.c has no golden here (its Python port is O(n^2)): it still reports speed and round trip.
  const Json g = goldens[c.name].value("wikitext", Json::object());
  const std::string wiki = shared_path("data/text/wikitext2/wiki.test.raw");
  REQUIRE_FILE(wiki);
  const std::string text = read_text_file(wiki);
  using Clock = std::chrono::steady_clock;
  auto t0 = Clock::now();
  auto tok = c.load();
  auto t1 = Clock::now();
  const auto ids = tok->encode(text);
  auto t2 = Clock::now();
  const double load_s = std::chrono::duration<double>(t1 - t0).count();
  const double encode_s = std::chrono::duration<double>(t2 - t1).count();
  std::printf(
      "[throughput] %-16s load %.3f s | %zu bytes -> %zu tokens in %.3f s = %.0f tok/s "
      "(%.2f MB/s)\n",
      c.name.c_str(), load_s, text.size(), ids.size(), encode_s, ids.size() / encode_s,
      text.size() / encode_s / 1e6);
  if (g.contains("fnv1a64")) {
    EXPECT_EQ(ids.size(), g["count"].get<size_t>()) << c.name << " token count on " << wiki;
    EXPECT_EQ(fnv1a64(ids), g["fnv1a64"].get<std::string>()) << c.name << " ids differ on " << wiki;
  }
  // SentencePiece normalizes whitespace (ref-17m), so only the other kinds round-trip exactly.
  if (tok->kind() != "sentencepiece") {
    EXPECT_TRUE(tok->decode(ids) == text) << c.name << ": decode(encode(wikitext)) != wikitext";
  }
}

// Issue 26: text is tokenized in bounded chunks (a 1 GB line used to take tens of GB). The chunks
// are cut where every supported tokenizer decides nothing across the cut (a space between two
// printable ASCII characters), so the ids must be exactly those of the whole text: checked here
// on wikitext-2 (1.3 MB) and its GPTQ-joined form, cut every 4 KiB at most (hundreds of cuts).
TEST_P(TokenizerParity, ChunkedEncodingEqualsWholeText) {
  const GoldenCase& c = GetParam();
  REQUIRE_FILE(c.file);
  auto tok = c.load();
  for (const char* name : {"wiki.test.raw", "wikitext2_test.gptq_joined.txt"}) {
    const std::string path = shared_path(std::string("data/text/wikitext2/") + name);
    REQUIRE_FILE(path);
    const std::string text = read_text_file(path);
    const std::vector<int32_t> whole = tok->encode(text);
    for (const size_t chunk : {size_t(4096), size_t(65536)}) {
      tok::ChunkedEncoder enc(*tok, chunk);
      std::vector<int32_t> ids;
      // Fed in odd-sized pieces, as a file is read in blocks.
      for (size_t pos = 0; pos < text.size(); pos += 9973) {
        enc.feed(std::string_view(text).substr(pos, 9973), ids);
      }
      enc.finish(ids);
      EXPECT_EQ(enc.forced_cuts(), 0) << c.name << " " << name;
      ASSERT_EQ(ids.size(), whole.size()) << c.name << " " << name << " chunk " << chunk;
      EXPECT_TRUE(ids == whole) << c.name << " " << name << " chunk " << chunk;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllTokenizers, TokenizerParity, ::testing::ValuesIn(golden_cases()),
                         [](const auto& info) {
                           std::string n = info.param.name;
                           for (char& ch : n) {
                             if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           }
                           return n;
                         });

TEST(Tokenizer, Llama2cDecodesGreedyOutputLikeRunC) {
  const std::string dir = repo_path("models/stories260K");
  REQUIRE_FILE(dir + "/tok512.bin");
  auto tok = tok::load_llama2c_tokenizer(dir + "/tok512.bin", 512);
  // The golden was printed by run.c: BOS(1) as the prompt, then the 256 greedy ids, then "\n".
  std::vector<int32_t> ids{tok->bos_id()};
  std::ifstream in(dir + "/expected_greedy_ids.txt");
  for (int32_t x; in >> x;) ids.push_back(x);
  ASSERT_EQ(ids.size(), 257u);
  const std::string text = read_text_file(dir + "/expected_greedy_text.txt");
  EXPECT_EQ(tok->decode(ids) + "\n", text);
  // run.c's encoder on its own output: decode(encode(x)) == x, and merges happen.
  const std::string body = text.substr(0, text.size() - 1);
  auto enc = tok->encode(body);
  EXPECT_EQ(tok->decode(enc), body);
  EXPECT_LT(enc.size(), body.size() / 2);
  // Byte fallback for characters outside the 512-token vocabulary.
  EXPECT_EQ(tok->decode(tok->encode("café 😀")), "café 😀");
  EXPECT_EQ(tok->vocab_size(), 512);
  EXPECT_EQ(tok->token_to_id("<s>"), 1);
}

TEST(Tokenizer, SpecialIdsAndConventions) {
  REQUIRE_FILE(shared_path("models/ref-17m/tokenizer_config.json"));
  auto sp = tok::load_tokenizer(shared_path("models/ref-17m"));
  EXPECT_EQ(sp->kind(), "sentencepiece");
  EXPECT_EQ(sp->vocab_size(), 8192);
  EXPECT_EQ(sp->bos_id(), 1);
  EXPECT_EQ(sp->eos_id(), 2);
  EXPECT_TRUE(sp->add_bos());
  EXPECT_EQ(sp->token_to_id("</s>"), 2);
  EXPECT_EQ(sp->token_to_id("no such piece"), -1);
  EXPECT_EQ(sp->decode({1, sp->encode("Hello")[0], 2}, /*skip_special=*/false).find("<s>"), 0u);

  REQUIRE_FILE(shared_path(kLlama3Ranks));
  auto l3 = tok::load_tiktoken(shared_path(kLlama3Ranks));
  EXPECT_EQ(l3->kind(), "tiktoken");
  EXPECT_EQ(l3->vocab_size(), 128256);
  EXPECT_EQ(l3->bos_id(), 128000);
  EXPECT_EQ(l3->eos_id(), 128001);
  EXPECT_TRUE(l3->add_bos());
  EXPECT_EQ(l3->token_to_id("<|start_header_id|>"), 128006);
  EXPECT_EQ(l3->token_to_id("<|end_header_id|>"), 128007);
  EXPECT_EQ(l3->token_to_id("<|reserved_special_token_4|>"), 128008);
  EXPECT_EQ(l3->token_to_id("<|eot_id|>"), 128009);
  EXPECT_EQ(l3->token_to_id("<|reserved_special_token_5|>"), 128010);
  EXPECT_EQ(l3->token_to_id("<|reserved_special_token_250|>"), 128255);
  auto ids = l3->encode("Hello");
  ids.insert(ids.begin(), 128000);
  ids.push_back(128009);
  EXPECT_EQ(l3->decode(ids), "Hello");
  EXPECT_EQ(l3->decode(ids, /*skip_special=*/false), "<|begin_of_text|>Hello<|eot_id|>");
  // Ids past the vocabulary (padded embedding rows) decode to nothing rather than crashing.
  EXPECT_EQ(l3->decode({-5, 999999, 9906}), "Hello");

  // The converted tokenizer.json: BOS from its TemplateProcessing post-processor.
  auto l3j = tok::load_hf_tokenizer_json(fixture_path("tokenizer/llama3_tokenizer.json"));
  EXPECT_EQ(l3j->kind(), "bpe");
  EXPECT_EQ(l3j->vocab_size(), 128256);
  EXPECT_EQ(l3j->bos_id(), 128000);
  EXPECT_EQ(l3j->eos_id(), 128001);
  EXPECT_TRUE(l3j->add_bos());

  REQUIRE_FILE(shared_path(kGpt2Dir + "/encoder.json"));
  auto g2 = tok::load_tokenizer(shared_path(kGpt2Dir));
  EXPECT_EQ(g2->kind(), "bpe");
  EXPECT_EQ(g2->vocab_size(), 50257);
  EXPECT_EQ(g2->bos_id(), 50256);
  EXPECT_EQ(g2->eos_id(), 50256);
  EXPECT_FALSE(g2->add_bos());
}

// load_tokenizer tells a tiktoken tokenizer.model from a SentencePiece one by content, and takes
// BOS / EOS from config.json (eos_token_id may be a list: the first entry is used).
TEST(Tokenizer, LoadTokenizerReadsModelDirectoryConventions) {
  REQUIRE_FILE(shared_path(kLlama3Ranks));
  fs::path d = scratch_dir("l3dir");
  fs::copy_file(shared_path(kLlama3Ranks), d / "tokenizer.model");
  write_file(d / "config.json", R"({"bos_token_id": 128000, "eos_token_id": [128009, 128001]})");
  auto tok = tok::load_tokenizer(d.string());
  EXPECT_EQ(tok->kind(), "tiktoken");
  EXPECT_EQ(tok->bos_id(), 128000);
  EXPECT_EQ(tok->eos_id(), 128009);
  // tokenizer_config.json wins over config.json for the tokenizer's own tokens.
  write_file(d / "tokenizer_config.json",
             R"({"eos_token": {"content": "<|end_of_text|>"}, "add_bos_token": false})");
  tok = tok::load_tokenizer(d.string());
  EXPECT_EQ(tok->eos_id(), 128001);
  EXPECT_FALSE(tok->add_bos());
  EXPECT_EQ(tok->encode("Hello world"), (std::vector<int32_t>{9906, 1917}));
  // An unknown bos_token string is an error naming the file.
  write_file(d / "tokenizer_config.json", R"({"bos_token": "<nope>"})");
  expect_io_error([&] { tok::load_tokenizer(d.string()); }, "tokenizer_config.json");
  write_file(d / "tokenizer_config.json", "{}");
  write_file(d / "config.json", R"({"eos_token_id": "two"})");
  expect_io_error([&] { tok::load_tokenizer(d.string()); }, "config.json");
  jointnas::remove_tree(fs::path(d).string());

  // llama2.c directory: tokenizer.bin, vocab size from config.json.
  const std::string tok512 = repo_path("models/stories260K/tok512.bin");
  REQUIRE_FILE(tok512);
  d = scratch_dir("l2cdir");
  fs::copy_file(tok512, d / "tokenizer.bin");
  write_file(d / "config.json", R"({"vocab_size": 512, "bos_token_id": 1, "eos_token_id": 2})");
  tok = tok::load_tokenizer(d.string());
  EXPECT_EQ(tok->kind(), "llama2c");
  EXPECT_EQ(tok->vocab_size(), 512);
  write_file(d / "config.json", R"({"vocab_size": 600})");
  expect_io_error([&] { tok::load_tokenizer(d.string()); }, "tokenizer.bin");
  jointnas::remove_tree(fs::path(d).string());
}

// Byte-level BPE takes arbitrary bytes: invalid UTF-8 and long runs encode without error and
// decode back to the exact input.
TEST(Tokenizer, ByteLevelRoundTripsArbitraryBytes) {
  REQUIRE_FILE(shared_path(kLlama3Ranks));
  REQUIRE_FILE(shared_path(kGpt2Dir + "/encoder.json"));
  std::vector<std::unique_ptr<tok::Tokenizer>> toks;
  toks.push_back(tok::load_tiktoken(shared_path(kLlama3Ranks)));
  toks.push_back(tok::load_gpt2(shared_path(kGpt2Dir + "/encoder.json"),
                                shared_path(kGpt2Dir + "/vocab.bpe")));
  std::mt19937 rng(7);
  std::string random_bytes(20000, '\0');
  for (char& c : random_bytes) c = static_cast<char>(rng() & 0xFF);
  const std::vector<std::string> inputs = {
      std::string("\xff\xfe bad \xc3 utf8 \xe2\x82"),
      std::string(100000, ' '),
      std::string(100000, 'a'),
      std::string(50000, '\n') + "x" + std::string(50000, '\t'),
      std::string(30000, '7'),
      std::string("nul\0inside", 10),
      random_bytes,
  };
  for (const auto& t : toks) {
    for (const auto& s : inputs) {
      const auto start = std::chrono::steady_clock::now();
      auto ids = t->encode(s);
      EXPECT_EQ(t->decode(ids), s) << t->kind() << " round trip of " << s.size() << " bytes";
      const double s_elapsed =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      EXPECT_LT(s_elapsed, 5.0) << "pathological input took " << s_elapsed << " s";
    }
  }
}

// HF Split behaviors (and ByteLevel add_prefix_space) on a toy vocabulary: the bytes as ids 0..255
// and "ab" = 256. Expected ids were produced by HF tokenizers 0.23.3 from the same JSON.
TEST(Tokenizer, SplitBehaviorsMatchHfTokenizers) {
  struct Case {
    const char* behavior;
    bool invert;
    const char* pattern;  // a JSON pattern object
    std::vector<int32_t> ids;
  };
  const std::vector<Case> cases = {
      {"Isolated", false, R"({"String": " "})", {256, 32, 98, 32, 32, 256, 98, 99, 32, 256}},
      {"Isolated",
       false,
       R"({"Regex": "b+"})",
       {97, 98, 32, 98, 32, 32, 97, 98, 98, 99, 32, 97, 98}},
      {"Removed", false, R"({"String": " "})", {256, 98, 256, 98, 99, 256}},
      {"Removed", false, R"({"Regex": "b+"})", {97, 32, 32, 32, 97, 99, 32, 97}},
      {"Removed", true, R"({"String": " "})", {32, 32, 32, 32}},
      {"Removed", true, R"({"Regex": "b+"})", {98, 98, 98, 98, 98}},
      {"MergedWithPrevious",
       false,
       R"({"Regex": "b+"})",
       {256, 32, 98, 32, 32, 256, 98, 99, 32, 256}},
      {"MergedWithPrevious",
       true,
       R"({"Regex": "b+"})",
       {97, 98, 32, 98, 32, 32, 97, 98, 98, 99, 32, 97, 98}},
      {"MergedWithNext",
       false,
       R"({"Regex": "b+"})",
       {97, 98, 32, 98, 32, 32, 97, 98, 98, 99, 32, 97, 98}},
      {"MergedWithNext", true, R"({"Regex": "b+"})", {256, 32, 98, 32, 32, 256, 98, 99, 32, 256}},
  };
  fs::path d = scratch_dir("split");
  const std::string model = R"("model": {"type": "BPE", "vocab": )" + all_bytes_vocab().dump() +
                            R"(, "merges": [["a", "b"]]})";
  const std::string byte_level =
      R"({"type": "ByteLevel", "add_prefix_space": false, "use_regex": false})";
  for (const Case& c : cases) {
    const std::string json =
        "{" + model + R"(, "pre_tokenizer": {"type": "Sequence", "pretokenizers": [)" +
        R"({"type": "Split", "pattern": )" + c.pattern + R"(, "behavior": ")" + c.behavior +
        R"(", "invert": )" + (c.invert ? "true" : "false") + "}, " + byte_level + "]}}";
    write_file(d / "tokenizer.json", json);
    auto tok = tok::load_hf_tokenizer_json((d / "tokenizer.json").string());
    EXPECT_EQ(tok->encode("ab b  abbc ab"), c.ids)
        << c.behavior << " invert=" << c.invert << " pattern " << c.pattern;
  }
  write_file(
      d / "tokenizer.json",
      "{" + model + R"(, "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": true}})");
  EXPECT_EQ(tok::load_hf_tokenizer_json((d / "tokenizer.json").string())->encode("ab ab"),
            (std::vector<int32_t>{32, 256, 32, 256}));
  jointnas::remove_tree(fs::path(d).string());
}

TEST(Tokenizer, MalformedSentencePieceAndLlama2cAreIoErrors) {
  fs::path d = scratch_dir("bad_sp");
  write_file(d / "tokenizer.model", "not a protobuf at all");
  expect_io_error([&] { tok::load_sentencepiece((d / "tokenizer.model").string()); },
                  "tokenizer.model");
  expect_io_error([&] { tok::load_sentencepiece((d / "missing.model").string()); },
                  "missing.model");
  expect_io_error([&] { tok::load_tokenizer(d.string()); }, "tokenizer.model");
  expect_io_error([&] { tok::load_tokenizer((d / "missing").string()); }, "missing");
  fs::remove(d / "tokenizer.model");
  expect_io_error([&] { tok::load_tokenizer(d.string()); }, "no tokenizer");

  const std::string tok512 = repo_path("models/stories260K/tok512.bin");
  REQUIRE_FILE(tok512);
  fs::copy_file(tok512, d / "tok.bin");
  fs::resize_file(d / "tok.bin", 1000);
  expect_io_error([&] { tok::load_llama2c_tokenizer((d / "tok.bin").string(), 512); }, "tok.bin");
  auto bin = [](std::initializer_list<int32_t> words) {
    return std::string(reinterpret_cast<const char*>(words.begin()), words.size() * 4);
  };
  write_file(d / "neg.bin", bin({10, 0, -5}));  // max_len, score bits, negative length
  expect_io_error([&] { tok::load_llama2c_tokenizer((d / "neg.bin").string(), -1); }, "neg.bin");
  write_file(d / "huge.bin", bin({10, 0, 1 << 30}));  // length past max_len and the file
  expect_io_error([&] { tok::load_llama2c_tokenizer((d / "huge.bin").string(), -1); }, "huge.bin");
  write_file(d / "hdr.bin", bin({-1}));
  expect_io_error([&] { tok::load_llama2c_tokenizer((d / "hdr.bin").string(), -1); }, "hdr.bin");
  write_file(d / "empty.bin", "");
  expect_io_error([&] { tok::load_llama2c_tokenizer((d / "empty.bin").string(), -1); },
                  "empty.bin");
  write_file(d / "few.bin", bin({4, 0, 1}) + "a");  // valid but too small for byte fallback
  expect_io_error([&] { tok::load_llama2c_tokenizer((d / "few.bin").string(), -1); }, "few.bin");
  jointnas::remove_tree(fs::path(d).string());
}

TEST(Tokenizer, MalformedTiktokenFilesAreIoErrors) {
  fs::path d = scratch_dir("bad_tiktoken");
  auto expect_bad = [&](const std::string& name, const std::string& content) {
    write_file(d / name, content);
    expect_io_error([&] { tok::load_tiktoken((d / name).string()); }, name);
  };
  // A minimal valid file: the 256 single bytes, ranks 0..255, plus one merge.
  std::string good;
  static const char* kB64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (int b = 0; b < 256; ++b) {
    good +=
        std::string{kB64[b >> 2], kB64[(b & 3) << 4], '=', '='} + " " + std::to_string(b) + "\n";
  }
  write_file(d / "good.model", good + "YWI= 256\n");  // "ab"
  auto ok = tok::load_tiktoken((d / "good.model").string(), "none");
  EXPECT_EQ(ok->encode("ab"), (std::vector<int32_t>{256}));
  EXPECT_EQ(ok->bos_id(), -1);
  EXPECT_THROW(tok::load_tiktoken((d / "good.model").string(), "gpt5"), ConfigError);

  expect_bad("empty.model", "");
  expect_bad("b64.model", good + "a$b= 256\n");
  expect_bad("b64len.model", good + "YWI 256\n");
  expect_bad("norank.model", good + "YWI=\n");
  expect_bad("negrank.model", good + "YWI= -3\n");
  expect_bad("hugerank.model", good + "YWI= 99999999999\n");
  expect_bad("textrank.model", good + "YWI= 12x\n");
  expect_bad("duprank.model", good + "YWI= 255\n");
  expect_bad("dupbytes.model", good + "YQ== 256\n");  // "a" again under another rank
  expect_bad("missingbyte.model", good.substr(0, good.rfind("/w== 255\n")));
  expect_bad("binary.model", std::string("\x08\x01\x12\x00\xff", 5));
  jointnas::remove_tree(fs::path(d).string());
}

TEST(Tokenizer, MalformedTokenizerJsonAndGpt2FilesAreIoErrors) {
  fs::path d = scratch_dir("bad_json");
  auto expect_bad = [&](const std::string& name, const std::string& content) {
    write_file(d / name, content);
    expect_io_error([&] { tok::load_hf_tokenizer_json((d / name).string()); }, name);
  };
  // A small valid byte-level tokenizer.json to mutate: the bytes "a", "b", "Ġ" (space), "ab".
  const std::string pre =
      R"("pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true})";
  auto make = [&](const std::string& vocab, const std::string& merges,
                  const std::string& extra = "") {
    return "{\"model\": {\"type\": \"BPE\", \"vocab\": " + vocab + ", \"merges\": " + merges +
           "}, " + pre + extra + "}";
  };
  const std::string vocab = R"({"a": 0, "b": 1, "Ġ": 2, "ab": 3})";
  write_file(d / "ok.json", make(vocab, R"(["a b"])"));
  auto ok = tok::load_hf_tokenizer_json((d / "ok.json").string());
  EXPECT_EQ(ok->encode("ab a"), (std::vector<int32_t>{3, 2, 0}));
  write_file(d / "pairs.json", make(vocab, R"([["a", "b"]])"));
  EXPECT_EQ(tok::load_hf_tokenizer_json((d / "pairs.json").string())->encode("ab"),
            (std::vector<int32_t>{3}));

  expect_bad("truncated.json", make(vocab, R"(["a b"])").substr(0, 40));
  expect_bad("notobject.json", "[1, 2, 3]");
  expect_bad("nomodel.json", "{}");
  expect_bad("wordpiece.json", R"({"model": {"type": "WordPiece", "vocab": {}}})");
  expect_bad("vocabtype.json", make(R"({"a": "zero"})", "[]"));
  expect_bad("vocabneg.json", make(R"({"a": -1})", "[]"));
  expect_bad("vocabhuge.json", make(R"({"a": 123456789012})", "[]"));
  expect_bad("vocabdup.json", make(R"({"a": 0, "b": 0})", "[]"));
  expect_bad("notbytelevel.json", make(R"({"▁a": 0})", "[]"));
  expect_bad("mergeunknown.json", make(vocab, R"(["a c"])"));
  expect_bad("mergeresult.json", make(vocab, R"(["b a"])"));
  expect_bad("mergeshape.json", make(vocab, R"(["a b c"])"));
  expect_bad("mergetype.json", make(vocab, R"([42])"));
  expect_bad(
      "badregex.json",
      "{\"model\": {\"type\": \"BPE\", \"vocab\": " + vocab + ", \"merges\": []}, " +
          R"("pre_tokenizer": {"type": "Split", "pattern": {"Regex": "(unclosed"}, "behavior": "Isolated"}, "decoder": {"type": "ByteLevel"}})");
  expect_bad("pretype.json", "{\"model\": {\"type\": \"BPE\", \"vocab\": " + vocab +
                                 R"(, "merges": []}, "pre_tokenizer": {"type": "Metaspace"}})");
  expect_bad("normalizer.json", make(vocab, "[]", R"(, "normalizer": {"type": "NFKC"})"));
  expect_bad("addedtype.json",
             make(vocab, "[]", R"(, "added_tokens": [{"id": "x", "content": "<s>"}])"));
  expect_bad("addedhuge.json",
             make(vocab, "[]", R"(, "added_tokens": [{"id": 99999999, "content": "<s>"}])"));

  // GPT-2 files: the encoder must cover all 256 bytes (GPT-2's own does).
  write_file(d / "encoder.json", vocab);
  write_file(d / "vocab.bpe", "#version: 0.2\na b\n");
  expect_io_error(
      [&] { tok::load_gpt2((d / "encoder.json").string(), (d / "vocab.bpe").string()); },
      "needs all 256 bytes");
  write_file(d / "encoder.json", all_bytes_vocab().dump());
  auto g = tok::load_gpt2((d / "encoder.json").string(), (d / "vocab.bpe").string());
  EXPECT_EQ(g->encode("ab b"), (std::vector<int32_t>{256, ' ', 'b'}));
  write_file(d / "bad.bpe", "#version: 0.2\na b c\n");
  expect_io_error([&] { tok::load_gpt2((d / "encoder.json").string(), (d / "bad.bpe").string()); },
                  "bad.bpe");
  write_file(d / "unknown.bpe", "#version: 0.2\na q\n");
  expect_io_error(
      [&] { tok::load_gpt2((d / "encoder.json").string(), (d / "unknown.bpe").string()); },
      "unknown.bpe");
  write_file(d / "broken.json", "{\"a\": ");
  expect_io_error([&] { tok::load_gpt2((d / "broken.json").string(), (d / "vocab.bpe").string()); },
                  "broken.json");
  jointnas::remove_tree(fs::path(d).string());
}

}  // namespace
