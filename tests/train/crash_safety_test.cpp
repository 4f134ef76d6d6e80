// Crash safety of everything `bfcn` writes: `bfcn train` killed with SIGKILL at random moments
// (half of the kills inside a checkpoint write, widened by BFCN_FAULT_COMMIT_DELAY_MS) resumes
// every time from an intact checkpoint and ends bit-identical to an uninterrupted run; with the
// file-size limit lowered, checkpoint, export and prediction writes fail with a clear error and
// leave the previous file intact and no temp file behind.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <chrono>
#include <cstring>
#include <random>
#include <thread>

#include "tests/support/test_support.h"
#include "tests/train/tiny_data.h"
#include "train/hdf5_io.h"
#include "train/metrics_log.h"

extern char** environ;

using namespace bfcn;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

bool has_checkpoint_tmp(const fs::path& dir) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.path().filename().string().find(".h5.tmp") != std::string::npos) return true;
  return false;
}

// Spawns `bfcn train <args>` with stdout+stderr to `log` and extra environment entries.
pid_t spawn_train(const std::vector<std::string>& args, const fs::path& log,
                  const std::vector<std::string>& extra_env) {
  std::vector<std::string> argv_s = {test::bfcn_binary().string(), "train"};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& s : argv_s) argv.push_back(s.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_s(extra_env);
  for (char** e = environ; *e; ++e) env_s.emplace_back(*e);
  std::vector<char*> envp;
  for (auto& s : env_s) envp.push_back(s.data());
  envp.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, argv_s[0].c_str(), &fa, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  REQUIRE(rc == 0);
  return pid;
}

std::string read_text(const fs::path& f) {
  std::ifstream in(f);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void require_same_params(const fs::path& a, const fs::path& b) {
  const TensorFile ta = load_tensor_file(a), tb = load_tensor_file(b);
  int compared = 0;
  for (const auto& [key, t] : ta.tensors) {
    if (key.rfind("params/", 0) != 0) continue;
    INFO(key);
    REQUIRE(tb.tensors.count(key) == 1);
    const Tensor& u = tb.tensors.at(key);
    REQUIRE(u.numel() == t.numel());
    REQUIRE(std::memcmp(t.data<float>(), u.data<float>(), sizeof(float) * t.numel()) == 0);
    ++compared;
  }
  REQUIRE(compared > 10);
}

}  // namespace

TEST_CASE("SIGKILL at random moments, mid-checkpoint included, resumes to the uninterrupted result",
          "[train][e2e][crash]") {
  if (!fs::exists(test::bfcn_binary())) BFCN_SKIP("bfcn binary not built");
  const bool sanitized = std::getenv("BFCN_SANITIZED") != nullptr;
  // 20 kills in the Release run; the ASan/UBSan pass (10x slower per step) checks 6 for memory
  // errors on the same paths.
  const int iterations = sanitized ? 10 : 24, kills_wanted = sanitized ? 6 : 20;
  test::TempDir d("bfcn_kill");
  json cfg = test::tiny_config(test::shared_tiny_root(), iterations);
  cfg["train"]["optimizer"] = "sgd";
  cfg["train"]["lr"] = 0.01;
  cfg["train"]["checkpoint_interval"] = 1;
  cfg["train"]["keep_last"] = 2;
  cfg["train"]["eval_interval"] = 8;
  test::write_json(d / "c.json", cfg);
  const std::string c = (d / "c.json").string();

  const pid_t ref = spawn_train({"--config", c, "--out", (d / "a").string()}, d / "a.log", {});
  int st = 0;
  REQUIRE(waitpid(ref, &st, 0) == ref);
  INFO(read_text(d / "a.log"));
  REQUIRE((WIFEXITED(st) && WEXITSTATUS(st) == 0));

  // The killed run: checkpoint commits held open 60 ms (120 under ASan) so kills can land there.
  const std::string delay = "BFCN_FAULT_COMMIT_DELAY_MS=" + std::string(sanitized ? "120" : "60");
  const fs::path out = d / "b", log = d / "b.log";
  std::mt19937 rng(20261201);
  int kills = 0, mid_write = 0, resumes = 0;
  bool finished = false;
  while (!finished) {
    const bool resume = fs::exists(out / "last.h5");
    if (resume) {
      // Every resume must start from an intact checkpoint: last.h5 loads as a whole file.
      INFO("before resume " << resumes);
      REQUIRE_NOTHROW(load_tensor_file(out / "last.h5"));
      ++resumes;
    }
    const std::vector<std::string> args =
        resume ? std::vector<std::string>{"--resume", out.string()}
               : std::vector<std::string>{"--config", c, "--out", out.string()};
    const pid_t pid = spawn_train(args, log, {delay});
    // Kill while this process's second checkpoint temp file is open (mid-write), or at a random
    // moment no later than the end of its first checkpoint commit: each cycle then advances the
    // run by at most one iteration, so the 20 kills all happen before it can finish.
    bool killed = false;
    if (kills < kills_wanted) {
      const bool mid = kills % 2 == 0;
      std::uniform_int_distribution<int> ms(0, sanitized ? 6000 : 2000);
      const auto t0 = std::chrono::steady_clock::now();
      const auto deadline = t0 + std::chrono::milliseconds(ms(rng));
      int opened = 0, closed = 0;
      bool in_tmp = false;
      while (waitpid(pid, &st, WNOHANG) == 0 &&
             std::chrono::steady_clock::now() - t0 < std::chrono::seconds(300)) {
        const bool now = has_checkpoint_tmp(out);
        opened += now && !in_tmp;
        closed += !now && in_tmp;
        in_tmp = now;
        const bool fire =
            mid ? opened == 2 && now : std::chrono::steady_clock::now() >= deadline || closed == 1;
        if (fire) {
          kill(pid, SIGKILL);
          killed = true;
          mid_write += mid;
          break;
        }
        std::this_thread::sleep_for(std::chrono::microseconds(500));
      }
    }
    if (killed) {
      REQUIRE(waitpid(pid, &st, 0) == pid);
      REQUIRE((WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL));
      ++kills;
      continue;
    }
    if (waitpid(pid, &st, WNOHANG) == 0) REQUIRE(waitpid(pid, &st, 0) == pid);
    INFO(read_text(log));
    REQUIRE((WIFEXITED(st) && WEXITSTATUS(st) == 0));
    finished = true;
  }
  INFO(read_text(log));
  CHECK(kills >= kills_wanted);
  CHECK(mid_write >= kills_wanted / 2);
  WARN("crash test: " << kills << " SIGKILLs survived (" << mid_write
                      << " inside a checkpoint write), " << resumes << " resumes");

  // The final parameters and the whole loss curve equal the uninterrupted run's, bit for bit.
  require_same_params(d / "a" / "last.h5", out / "last.h5");
  const auto la = test::losses_of(d / "a" / "metrics.jsonl"),
             lb = test::losses_of(out / "metrics.jsonl");
  REQUIRE(la.size() == size_t(iterations));
  REQUIRE(lb.size() == la.size());
  for (const auto& [it, l] : la) {
    INFO("iteration " << it);
    CHECK(lb.at(it) == l);
  }
  for (const auto& e : fs::directory_iterator(out))
    CHECK(e.path().string().find(".tmp") == std::string::npos);
}

TEST_CASE("a checkpoint, export or prediction write over the file-size limit fails cleanly",
          "[train][e2e][crash]") {
  if (!fs::exists(test::bfcn_binary())) BFCN_SKIP("bfcn binary not built");
  test::TempDir d("bfcn_fsize");
  json cfg = test::tiny_config(test::shared_tiny_root(), 4);
  cfg["train"]["optimizer"] = "sgd";
  cfg["train"]["checkpoint_interval"] = 1;
  test::write_json(d / "c.json", cfg);
  const std::string bin = test::bfcn_binary().string(), out = (d / "o").string();
  auto r = test::run_command(bin + " train --config " + (d / "c.json").string() + " --out " + out +
                             " --stop-at 2 2>&1");
  INFO(r.output);
  REQUIRE(r.status == 0);
  const auto before = read_file_bytes(d / "o" / "last.h5");
  const uintmax_t ckpt_bytes = fs::file_size(d / "o" / "last.h5");
  // A limit of half a checkpoint (in 1 KiB blocks): SIGXFSZ ignored, so write() fails with EFBIG.
  const std::string limit =
      "trap '' XFSZ; ulimit -f " + std::to_string(ckpt_bytes / 2048) + "; exec ";

  r = test::run_command("(" + limit + bin + " train --resume " + out + ") 2>&1");
  INFO(r.output);
  CHECK(r.status == 1);  // a user-facing IoError, not a crash
  CHECK_THAT(r.output, Catch::Contains("ckpt_3.h5") || Catch::Contains("last.h5"));
  CHECK_THAT(r.output, Catch::Contains("is unchanged") || Catch::Contains("write"));
  const bool intact = read_file_bytes(d / "o" / "last.h5") == before;  // (not printed: 90 MB)
  CHECK(intact);  // the previous checkpoint is byte-identical
  for (const auto& e : fs::directory_iterator(d / "o"))
    CHECK(e.path().string().find(".tmp") == std::string::npos);

  // Export: no half-written .bfcn, no temp file; the error names the output.
  const fs::path model = d / "m.bfcn";
  r = test::run_command("(trap '' XFSZ; ulimit -f 16; exec " + bin + " export --checkpoint " +
                        (d / "o" / "last.h5").string() + " --out " + model.string() + ") 2>&1");
  INFO(r.output);
  CHECK(r.status == 1);
  CHECK_THAT(r.output, Catch::Contains("m.bfcn"));
  CHECK(!fs::exists(model));
  CHECK(!fs::exists(model.string() + ".tmp"));

  // Predictions: a limit below one PNG fails naming the file and leaves no partial PNG.
  r = test::run_command(bin + " export --checkpoint " + (d / "o" / "last.h5").string() + " --out " +
                        model.string() + " 2>&1");
  INFO(r.output);
  REQUIRE(r.status == 0);
  r = test::run_command("(trap '' XFSZ; ulimit -f 0; exec " + bin + " infer --model " +
                        model.string() + " --input " +
                        (test::shared_tiny_root() / "images" / "val").string() + " --out " +
                        (d / "pred").string() + ") 2>&1");
  INFO(r.output);
  CHECK(r.status == 1);
  CHECK_THAT(r.output, Catch::Contains(".png"));
  if (fs::exists(d / "pred"))  // no partial prediction and no temp file is left behind
    for (const auto& e : fs::directory_iterator(d / "pred")) FAIL("left behind: " << e.path());
}
