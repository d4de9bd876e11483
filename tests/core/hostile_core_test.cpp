// Issue 26 at the core layer: strict JSON (no NUL and garbage after the document, no duplicate
// keys), error messages of bounded size, unpredictable temporaries that refuse planted links,
// file kinds named as they are (a FIFO is not "missing"), outputs that alias or contain inputs,
// the directory lock and the machine's limits.
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <string>

#include <gtest/gtest.h>

#include "jointnas/core/atomic_file.h"
#include "jointnas/core/dir_lock.h"
#include "jointnas/core/error.h"
#include "jointnas/core/json_util.h"
#include "jointnas/core/machine.h"
#include "jointnas/core/mapped_file.h"
#include "jointnas/core/paths.h"

using namespace jointnas;
namespace fs = std::filesystem;

namespace {

fs::path fresh(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("jnas_hostile_core_" + name);
  remove_tree(d.string());
  fs::create_directories(d);
  return d;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// The message of the IoError `f` throws ("" when it throws nothing).
template <typename F>
std::string io_error_of(F&& f) {
  try {
    f();
  } catch (const IoError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

// nlohmann's lexer takes a NUL byte for the end of the input, so `{...}\0garbage` parsed as the
// object alone: a safetensors header or a config.json with anything after a NUL was accepted.
TEST(StrictJson, NulAndGarbageAfterTheDocumentAreRefused) {
  const std::string text("{\"a\": 1}\0garbage", 16);
  const std::string msg = io_error_of([&] { parse_json(text, "cfg.json"); });
  EXPECT_NE(msg.find("cfg.json"), std::string::npos) << msg;
  EXPECT_NE(msg.find("NUL"), std::string::npos) << msg;
  EXPECT_NE(msg.find("offset 8"), std::string::npos) << msg;
  // Trailing whitespace stays valid JSON (safetensors pads its header with spaces).
  EXPECT_EQ(parse_json("{\"a\": 1}    \n", "cfg.json")["a"], 1);
}

// Duplicate keys: RFC 8259 leaves them undefined, nlohmann keeps the last one, safetensors
// forbids them. A file that says two things about one key is refused wherever it is.
TEST(StrictJson, DuplicateKeysAreRefusedAtAnyDepth) {
  for (const char* bad : {R"({"a": 1, "a": 2})", R"({"x": [{"b": 1}, {"c": {"d": 1, "d": 1}}]})"}) {
    const std::string msg = io_error_of([&] { parse_json(bad, "t.json"); });
    EXPECT_NE(msg.find("t.json"), std::string::npos) << bad << ": " << msg;
    EXPECT_NE(msg.find("duplicate key"), std::string::npos) << bad << ": " << msg;
  }
  // The same key in sibling objects is fine.
  EXPECT_NO_THROW(parse_json(R"({"x": {"a": 1}, "y": {"a": 2}, "z": [{"a": 1}, {"a": 2}]})", "t"));
}

// A value of 10 MB echoed into a message made a 10 MB error line.
TEST(ErrorMessages, AreBoundedWhateverTheyQuote) {
  const std::string huge(10 << 20, 'x');
  const IoError e(fmt::format("cfg.json: model_type '{}' is not a Llama-family model", huge), huge);
  EXPECT_LT(std::string(e.what()).size(), 4096u);
  EXPECT_LT(e.hint().size(), 4096u);
  // Both ends survive: the file name at the start, what is wrong at the end.
  EXPECT_EQ(std::string(e.what()).rfind("cfg.json: model_type '", 0), 0u);
  EXPECT_NE(std::string(e.what()).find("is not a Llama-family model"), std::string::npos);
  EXPECT_NE(std::string(e.what()).find("bytes omitted"), std::string::npos);
  // Short messages are untouched.
  EXPECT_STREQ(ConfigError("short").what(), "short");
}

// A planted `PATH.tmp` symlink made a write go through it to a file outside the directory.
TEST(AtomicFile, APlantedTemporarySymlinkIsNeverFollowed) {
  const fs::path d = fresh("planted");
  fs::create_directories(d / "out");
  std::ofstream(d / "victim.txt") << "precious";
  for (const char* tmp : {"config.json.tmp", "config.json.tmp.0", "config.json.part"}) {
    fs::create_symlink(d / "victim.txt", d / "out" / tmp);
  }
  write_file_atomic((d / "out" / "config.json").string(), "new");
  EXPECT_EQ(slurp(d / "victim.txt"), "precious");
  EXPECT_EQ(slurp(d / "out" / "config.json"), "new");
  // The temporary is not a fixed name: two writers of one path never share it.
  AtomicFile a((d / "out" / "x").string()), b((d / "out" / "x").string());
  a.write("1", 1);
  b.write("2", 1);
  a.commit();
  b.commit();
  EXPECT_EQ(slurp(d / "out" / "x"), "2");
  int temporaries = 0;
  for (const auto& e : fs::directory_iterator(d / "out")) {
    temporaries += e.path().filename().string().find(".tmp.") != std::string::npos &&
                   !fs::is_symlink(e.symlink_status());
  }
  EXPECT_EQ(temporaries, 0);
}

TEST(AtomicFile, TemporariesOfADeadWriterAreRemoved) {
  const fs::path d = fresh("stale");
  // A writer killed with -9 leaves its temporary; pid 2^22 + 1 is above pid_max on Linux.
  const std::string stale = "arch.json.tmp.4194305.0123456789ab";
  std::ofstream(d / stale) << "half";
  write_file_atomic((d / "arch.json").string(), "{}");
  EXPECT_FALSE(fs::exists(d / stale));
  EXPECT_EQ(slurp(d / "arch.json"), "{}");
}

// A FIFO where a file should be was reported as missing (and opening one would block forever).
TEST(FileKinds, AFifoIsNamedAsAFifoAndNeverOpened) {
  const fs::path d = fresh("fifo");
  ASSERT_EQ(::mkfifo((d / "config.json").c_str(), 0644), 0);
  for (auto f : {std::function<void()>([&] { require_regular_file((d / "config.json").string(), "config.json"); }),
                 std::function<void()>([&] { MappedFile::open((d / "config.json").string()); }),
                 std::function<void()>([&] { read_text_file((d / "config.json").string()); })}) {
    const std::string msg = io_error_of(f);
    EXPECT_NE(msg.find("FIFO"), std::string::npos) << msg;
    EXPECT_NE(msg.find((d / "config.json").string()), std::string::npos) << msg;
  }
  EXPECT_NE(io_error_of([&] { require_regular_file((d / "nothing").string(), "x"); }).find("does not exist"),
            std::string::npos);
  EXPECT_NE(io_error_of([&] { require_regular_file(d.string(), "x"); }).find("directory"), std::string::npos);
  EXPECT_EQ(file_kind((d / "config.json").string()), "a FIFO (named pipe)");
}

TEST(OutputAliasing, OutputsThatAliasOrContainInputsAreRefused) {
  const fs::path d = fresh("alias");
  fs::create_directories(d / "run" / "model");
  fs::create_directories(d / "elsewhere");
  std::ofstream(d / "text.txt") << "x";
  fs::create_symlink(d / "run" / "model", d / "link");
  auto refused = [&](const fs::path& out, const fs::path& in) {
    try {
      check_output_separate(out.string(), "--out", {{in.string(), "--model"}});
    } catch (const ConfigError& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find("--out"), std::string::npos) << m;
      EXPECT_NE(m.find("--model"), std::string::npos) << m;
      return true;
    }
    return false;
  };
  EXPECT_TRUE(refused(d / "run" / "model", d / "run" / "model"));         // the same directory
  EXPECT_TRUE(refused(d / "run" / "model" / "", d / "run" / "model"));    // spelled otherwise
  EXPECT_TRUE(refused(d / "run", d / "run" / "model"));                    // contains the input
  EXPECT_TRUE(refused(d / "run", d / "link"));                             // through a symlink
  EXPECT_TRUE(refused(d / "run" / "model" / "sub", d / "run" / "model"));  // inside an input directory
  EXPECT_TRUE(refused(d / "text.txt", d / "text.txt"));                    // one file
  EXPECT_FALSE(refused(d / "elsewhere" / "new", d / "run" / "model"));
  EXPECT_FALSE(refused(d / "run" / "model2", d / "run" / "model"));        // a prefix, not a parent
}

TEST(DirLock, ASecondHolderIsRefusedWithTheHolderNamed) {
  const fs::path d = fresh("lock");
  {
    DirLock first = DirLock::acquire((d / "run").string(), "jointnas run cfg.yaml");
    try {
      DirLock second = DirLock::acquire((d / "run").string(), "jointnas run other.yaml");
      FAIL() << "a second lock was granted";
    } catch (const ConfigError& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find((d / "run").string()), std::string::npos) << m;
      EXPECT_NE(m.find("jointnas run cfg.yaml"), std::string::npos) << m;
      EXPECT_NE(m.find(std::to_string(::getpid())), std::string::npos) << m;
      EXPECT_FALSE(e.hint().empty());
    }
  }
  // Released with its holder: the next one gets it.
  EXPECT_NO_THROW(DirLock::acquire((d / "run").string(), "again"));
}

TEST(Machine, ThreadCountsAreCappedByTheCores) {
  const int cores = machine_cores();
  ASSERT_GE(cores, 1);
  EXPECT_EQ(bounded_thread_count(100000, "--threads"), cores);
  EXPECT_EQ(bounded_thread_count(1, "--threads"), 1);
  EXPECT_EQ(bounded_thread_count(0, "--threads"), 0);  // 0: the library's default
  EXPECT_THROW(bounded_thread_count(-3, "--threads"), ConfigError);
}

TEST(Machine, AnAllocationAboveTheMachinesMemoryIsRefusedBeforeItIsMade) {
  const uint64_t mem = machine_memory_bytes();
  ASSERT_GT(mem, uint64_t(1) << 28);
  EXPECT_NO_THROW(check_memory_fits(uint64_t(1) << 20, "a small table", "--window"));
  try {
    check_memory_fits(mem * 2, "the logits of one batch", "--batch");
    FAIL() << "accepted twice the machine's memory";
  } catch (const ConfigError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("the logits of one batch"), std::string::npos) << m;
    EXPECT_NE(m.find("GiB"), std::string::npos) << m;
    EXPECT_NE(std::string(e.hint()).find("--batch"), std::string::npos) << e.hint();
  }
}
