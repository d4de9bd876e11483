// The machine-wide timing lock (core/file_lock.h): a process that times holds it exclusively, and
// training loops of other processes wait at their next step until it is released.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "jointnas/core/file_lock.h"

namespace jointnas {
namespace {

namespace fs = std::filesystem;

TEST(FileLock, TrainingLoopsWaitWhileAnotherProcessTimes) {
  const fs::path dir = fs::temp_directory_path() / ("jnas_file_lock_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  ::setenv("TMPDIR", dir.c_str(), 1);
  EXPECT_EQ(timing_lock_path(), (dir / "jointnas-timing.lock").string());
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {  // the process that times: holds the lock for 400 ms
    const FileLock lock(timing_lock_path());
    const char c = lock.held() ? 'y' : 'n';
    (void)!::write(ready[1], &c, 1);
    ::usleep(400 * 1000);
    _exit(0);
  }
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  ASSERT_EQ(c, 'y');
  const auto t0 = std::chrono::steady_clock::now();
  yield_to_timing();  // blocks until the child releases the lock
  const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_GT(waited, 0.2);
  int st = 0;
  ::waitpid(pid, &st, 0);
  // Nobody times: no wait, and the lock can be taken again.
  const auto t1 = std::chrono::steady_clock::now();
  yield_to_timing();
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count(), 0.2);
  EXPECT_TRUE(FileLock(timing_lock_path()).held());
  // A symlink planted as the lock file is never followed.
  const fs::path link = dir / "link.lock";
  fs::create_symlink(dir / "elsewhere", link);
  EXPECT_FALSE(FileLock(link.string()).held());
  EXPECT_FALSE(fs::exists(dir / "elsewhere"));
  ::unsetenv("TMPDIR");
  fs::remove_all(dir);
}

// Whether another process could take the lock on `path` now (a child tries without waiting).
bool free_for_another_process(const std::string& path) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT, 0600);
    _exit(fd >= 0 && ::flock(fd, LOCK_EX | LOCK_NB) == 0 ? 0 : 1);
  }
  int st = 0;
  ::waitpid(pid, &st, 0);
  return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

// The llama.cpp profile holds the lock for the whole table and times its calibration through the
// bench stage, which locks again: the inner lock is held at once (a second open file description
// would wait for the first forever), and the lock goes only with the outer one.
TEST(FileLock, ANestedLockInTheSameThreadIsHeldAtOnce) {
  const fs::path dir = fs::temp_directory_path() / ("jnas_file_lock_nested_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string path = (dir / "t.lock").string();
  {
    const FileLock outer(path);
    ASSERT_TRUE(outer.held());
    EXPECT_FALSE(free_for_another_process(path));
    {
      const FileLock inner(path);  // a deadlock here would hang the test until ctest's timeout
      EXPECT_TRUE(inner.held());
    }
    EXPECT_FALSE(free_for_another_process(path));  // the inner lock's end releases nothing
  }
  EXPECT_TRUE(free_for_another_process(path));
  {
    const FileLock again(path);  // taken afresh, and released again
    EXPECT_TRUE(again.held());
    EXPECT_FALSE(free_for_another_process(path));
  }
  EXPECT_TRUE(free_for_another_process(path));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace jointnas
