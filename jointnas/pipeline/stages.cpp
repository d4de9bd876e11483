#include "jointnas/pipeline/stages.h"

#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <map>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "jointnas/core/atomic_file.h"
#include "jointnas/core/error.h"
#include "jointnas/core/file_lock.h"
#include "jointnas/core/log.h"
#include "jointnas/core/mapped_file.h"
#include "jointnas/core/paths.h"

namespace jointnas::pipeline {
namespace {

using Clock = std::chrono::steady_clock;

// Starts this binary with `args`, stdout to `stdout_path`.part; stderr stays on the terminal, or
// goes to `stderr_path` when one is given.
pid_t spawn(const std::vector<std::string>& args, const std::string& stdout_path, const std::string& stderr_path = "") {
  const std::string tmp = stdout_path + ".part";  // not ".tmp": AtomicFile uses that name
  static const std::string self = "/proc/self/exe";
  std::string prog = "jointnas";
  std::vector<std::string> copy = args;
  std::vector<char*> argv{prog.data()};
  for (auto& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t parent = getpid();
  const pid_t pid = fork();
  JNAS_CHECK_IO(pid >= 0, "fork failed");
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);  // a killed command takes its stages with it
    if (getppid() != parent) _exit(137);
    std::FILE* out = std::fopen(tmp.c_str(), "w");
    if (out == nullptr) _exit(3);
    dup2(fileno(out), STDOUT_FILENO);
    if (!stderr_path.empty()) {
      std::FILE* err = std::fopen(stderr_path.c_str(), "w");
      if (err == nullptr) _exit(3);
      dup2(fileno(err), STDERR_FILENO);
    }
    execv(self.c_str(), argv.data());
    _exit(127);
  }
  return pid;
}

std::string read_text_file_or_empty(const std::string& path) {
  try {
    return file_exists(path) ? read_text_file(path) : std::string();
  } catch (const Error&) {
    return {};
  }
}

std::vector<std::string> split_lines(const std::string& t) {
  std::vector<std::string> v;
  size_t a = 0;
  while (a < t.size()) {
    const size_t b = t.find('\n', a);
    v.push_back(t.substr(a, b == std::string::npos ? std::string::npos : b - a));
    if (b == std::string::npos) break;
    a = b + 1;
  }
  return v;
}

int exit_code(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status); }

// A successful stage's output (small; the child fsynced nothing) is copied atomically into place.
void publish(const std::string& stdout_path) {
  copy_file_atomic(stdout_path + ".part", stdout_path);
  std::remove((stdout_path + ".part").c_str());
}

}  // namespace

Json read_json_or_null(const std::string& path) {
  if (!file_exists(path)) return nullptr;
  try {
    return read_json_file(path);
  } catch (const Error&) {
    return nullptr;
  }
}

Stages::Stages(std::string path, const std::atomic<bool>& interrupt) : path_(std::move(path)), interrupt_(interrupt) {
  j_ = file_exists(path_) ? read_json_file(path_) : Json::object();
  JNAS_CHECK_IO(j_.is_object(), "{}: must be an object (delete it to rerun every stage)", path_);
}

bool Stages::done(const std::string& name) const { return j_.contains(name) && j_[name].value("done", false); }

void Stages::save() const { write_file_atomic(path_, j_.dump(1) + "\n"); }

// Waits for any of `pids` to exit; while waiting, a SIGINT / SIGTERM this process received (the
// flag) is passed on once to every child, which checkpoints and exits 130. Polls: the handler
// is installed with SA_RESTART, so waitpid would not return on the signal.
std::pair<pid_t, int> Stages::wait_any(const std::vector<pid_t>& pids, bool& forwarded) const {
  for (;;) {
    for (pid_t pid : pids) {
      int status = 0;
      const pid_t r = waitpid(pid, &status, WNOHANG);
      if (r == pid) return {pid, status};
      if (r < 0 && errno != EINTR) throw IoError(fmt::format("waitpid({}) failed", pid));
    }
    if (interrupt_.load() && !forwarded) {
      for (pid_t pid : pids) kill(pid, SIGINT);
      forwarded = true;
    }
    usleep(20 * 1000);
  }
}

void Stages::run(const StageJob& s) {
  if (done(s.name)) {
    JNAS_LOG_INFO("[stage] {}: done earlier, skipped", s.name);
    return;
  }
  if (interrupt_.load()) throw Interrupted("interrupted; run the same command again to resume");
  JNAS_LOG_INFO("[stage] {}: jointnas {}", s.name, fmt::join(s.args, " "));
  const auto t0 = Clock::now();
  const pid_t pid = spawn(s.args, s.log);
  bool forwarded = false;
  const int rc = exit_code(wait_any({pid}, forwarded).second);
  if (rc == 0) {  // a finished stage is kept even when a signal came in meanwhile
    publish(s.log);
    j_[s.name] = Json{{"done", true}, {"seconds", std::chrono::duration<double>(Clock::now() - t0).count()}};
    save();
  }
  if (rc == 130 || interrupt_.load()) {
    throw Interrupted(fmt::format("interrupted during stage '{}'; run the same command again to resume", s.name));
  }
  JNAS_CHECK_IO(rc == 0, "stage '{}' failed (exit {}); its error is above, its output in {}.part", s.name, rc, s.log);
}

std::vector<std::string> Stages::run_all(const std::vector<StageJob>& jobs, int parallel) {
  std::vector<std::string> failed;
  std::map<pid_t, std::pair<const StageJob*, Clock::time_point>> running;
  size_t next = 0;
  bool interrupted = false;
  bool forwarded = false;
  auto reap_one = [&] {
    std::vector<pid_t> pids;
    for (const auto& [pid, job] : running) pids.push_back(pid);
    const auto [pid, status] = wait_any(pids, forwarded);
    auto it = running.find(pid);
    const StageJob& s = *it->second.first;
    const double secs = std::chrono::duration<double>(Clock::now() - it->second.second).count();
    running.erase(it);
    const int rc = exit_code(status);
    if (rc != 0 && (rc == 130 || interrupt_.load())) {
      interrupted = true;
      return;
    }
    if (rc == 0) {
      publish(s.log);
      j_[s.name] = Json{{"done", true}, {"seconds", secs}};
      JNAS_LOG_INFO("[stage] {}: done in {:.1f} s", s.name, secs);
    } else {
      j_[s.name] = Json{{"done", false}, {"failed", true}, {"exit", rc}, {"seconds", secs}};
      failed.push_back(s.name);
      // The child's last error line says why.
      std::string last;
      for (const std::string& line : split_lines(read_text_file_or_empty(s.log + ".stderr.txt"))) {
        if (line.rfind("error: ", 0) == 0) last = line;
      }
      JNAS_LOG_WARN("[stage] {} failed (exit {}){}; its messages are in {}.stderr.txt; the other stages go on", s.name, rc,
                    last.empty() ? "" : ": " + last.substr(7), s.log);
      j_[s.name]["error"] = last.empty() ? Json(nullptr) : Json(last.substr(7));
    }
    save();
  };
  while (next < jobs.size() || !running.empty()) {
    while (!interrupted && !interrupt_.load() && next < jobs.size() && static_cast<int>(running.size()) < std::max(1, parallel)) {
      const StageJob& s = jobs[next++];
      if (done(s.name)) continue;
      // No stage starts while a stage beside it times (core/file_lock.h): a starting process loads
      // its libraries, model and text before its first pause. In the stories260K study of
      // 2026-12-07 (two at once) one search's fit read the original's fastest round at 0.34 to
      // 0.43 ms from one step to the next (0.36 ms in the quiet latency stage), and its winner at
      // 0.939x of the original where the latency stage measured 1.019x.
      yield_to_timing();
      JNAS_LOG_INFO("[stage] {}: jointnas {}", s.name, fmt::join(s.args, " "));
      running[spawn(s.args, s.log, s.log + ".stderr.txt")] = {&s, Clock::now()};
    }
    if (running.empty()) break;
    reap_one();
  }
  if (interrupted || interrupt_.load()) {
    throw Interrupted("interrupted; the finished stages are recorded, run the same command again to resume");
  }
  return failed;
}

}  // namespace jointnas::pipeline
