// join_inside refuses every name that could leave the model directory; atomic writes leave the
// previous file on failure and say why.
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <functional>

#include <gtest/gtest.h>

#include "jointnas/core/atomic_file.h"
#include "jointnas/core/error.h"
#include "jointnas/core/paths.h"

namespace fs = std::filesystem;
using jointnas::IoError;
using jointnas::join_inside;

TEST(JoinInside, AcceptsPlainNames) {
  EXPECT_EQ(join_inside("/m", "model-00001-of-00002.safetensors", "idx"),
            "/m/model-00001-of-00002.safetensors");
  EXPECT_EQ(join_inside("/m", "sub/x.safetensors", "idx"), "/m/sub/x.safetensors");
}

TEST(JoinInside, RejectsEscapes) {
  for (const char* bad : {"../secret", "/etc/passwd", "a/../../b", "", "./x", "a//b"}) {
    EXPECT_THROW(join_inside("/m", bad, "idx"), IoError) << bad;
  }
  EXPECT_THROW(join_inside("/m", std::string("a\0b", 3), "idx"), IoError);
}

TEST(JoinInside, RejectsSymlinkOut) {
  fs::path dir = fs::temp_directory_path() / "jnas_paths_test";
  ASSERT_TRUE(jointnas::remove_tree(dir.string()));
  fs::create_directories(dir / "m");
  std::ofstream(dir / "outside.bin") << "x";
  fs::create_symlink(dir / "outside.bin", dir / "m" / "link.safetensors");
  EXPECT_THROW(join_inside((dir / "m").string(), "link.safetensors", "idx"), IoError);
  // remove_tree does not follow the link: the target outside survives until its own turn.
  ASSERT_TRUE(jointnas::remove_tree((dir / "m").string()));
  EXPECT_TRUE(fs::exists(dir / "outside.bin"));
  ASSERT_TRUE(jointnas::remove_tree(dir.string()));
  EXPECT_FALSE(fs::exists(dir));
  EXPECT_TRUE(jointnas::remove_tree(dir.string()));  // missing path: fine
}

// ---- atomic writes: a failed or abandoned write leaves the previous file ----

namespace {

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Runs `body` in a forked child (so that rlimits and uids stay there); the child's exit status:
// 0 when body returned true.
int in_child(const std::function<bool()>& body) {
  const pid_t pid = fork();
  if (pid == 0) {
    bool ok = false;
    try {
      ok = body();
    } catch (...) {
      ok = false;
    }
    _exit(ok ? 0 : 1);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// Temporaries of `path` in its directory ("<name>.tmp.<pid>.<random>": AtomicFile's names).
int temporaries_of(const std::string& path) {
  const fs::path p(path);
  int n = 0;
  for (const auto& e : fs::directory_iterator(p.parent_path())) {
    n += e.path().filename().string().rfind(p.filename().string() + ".tmp.", 0) == 0;
  }
  return n;
}

}  // namespace

TEST(AtomicFile, CommitReplacesAndAbandonKeepsThePreviousFile) {
  fs::path dir = fs::temp_directory_path() / "jnas_atomic_test";
  ASSERT_TRUE(jointnas::remove_tree(dir.string()));
  fs::create_directories(dir);
  const std::string path = (dir / "a.json").string();
  jointnas::write_file_atomic(path, "old\n");
  {
    jointnas::AtomicFile f(path);
    f.write("new, half written", 9);
    EXPECT_EQ(temporaries_of(path), 1);
    // destroyed without commit: an exception on the way out of a writer
  }
  EXPECT_EQ(slurp(path), "old\n");
  EXPECT_EQ(temporaries_of(path), 0);
  jointnas::write_file_atomic(path, "new\n");
  EXPECT_EQ(slurp(path), "new\n");
  jointnas::copy_file_atomic(path, (dir / "b.json").string());
  EXPECT_EQ(slurp(dir / "b.json"), "new\n");
  EXPECT_THROW(jointnas::copy_file_atomic((dir / "missing").string(), (dir / "c").string()), IoError);
  EXPECT_FALSE(fs::exists(dir / "c"));
}

// A full disk, simulated by a file-size limit (the write fails with EFBIG, as it would with
// ENOSPC): IoError says the disk is full, and the previous file is intact.
TEST(AtomicFile, FullDiskGivesAClearErrorAndKeepsThePreviousFile) {
  fs::path dir = fs::temp_directory_path() / "jnas_atomic_full";
  ASSERT_TRUE(jointnas::remove_tree(dir.string()));
  fs::create_directories(dir);
  const std::string path = (dir / "table.json").string();
  jointnas::write_file_atomic(path, "previous good table\n");
  const int rc = in_child([&] {
    signal(SIGXFSZ, SIG_IGN);
    rlimit lim{1 << 20, 1 << 20};
    setrlimit(RLIMIT_FSIZE, &lim);
    try {
      jointnas::write_file_atomic(path, std::string(3 << 20, 'x'));
    } catch (const IoError& e) {
      const std::string what = std::string(e.what()) + " " + e.hint();
      return what.find("disk is full") != std::string::npos && what.find(path) != std::string::npos;
    }
    return false;
  });
  EXPECT_EQ(rc, 0);
  EXPECT_EQ(slurp(path), "previous good table\n");
  EXPECT_EQ(temporaries_of(path), 0);
}

// A read-only output directory (mode 0555, written by an unprivileged uid: root ignores modes):
// IoError says the directory is read-only.
TEST(AtomicFile, ReadOnlyDirectoryGivesAClearError) {
  fs::path dir = fs::temp_directory_path() / "jnas_atomic_ro";
  ASSERT_TRUE(jointnas::remove_tree(dir.string()));
  fs::create_directories(dir);
  fs::permissions(dir, fs::perms::owner_read | fs::perms::owner_exec | fs::perms::group_read |
                           fs::perms::group_exec | fs::perms::others_read | fs::perms::others_exec);
  const std::string path = (dir / "arch.json").string();
  const int rc = in_child([&] {
    if (geteuid() == 0 && setuid(65534) != 0) return false;
    try {
      jointnas::write_file_atomic(path, "{}\n");
    } catch (const IoError& e) {
      const std::string what = std::string(e.what()) + " " + e.hint();
      return what.find("read-only") != std::string::npos && what.find(path) != std::string::npos;
    }
    return false;
  });
  EXPECT_EQ(rc, 0);
  EXPECT_FALSE(fs::exists(path));
  fs::permissions(dir, fs::perms::owner_all);
}
