// `bfcn train` end to end on a tiny generated dataset: resume reproduces an uninterrupted run's
// losses exactly, bad configs exit 1 naming the key, NaN stops with a message and keeps the last
// good checkpoint, SIGINT checkpoints and exits 0, keep_last prunes, a W1A2 FCN's loss falls, and
// --init-from fine-tuning logs its starting mIoU and window-mean losses.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <thread>

#include "tests/support/test_support.h"
#include "tests/train/tiny_data.h"
#include "train/config.h"
#include "train/metrics_log.h"

extern char** environ;

using namespace bfcn;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

test::RunResult train(const std::string& flags) {
  return test::run_command(test::bfcn_binary().string() + " train " + flags + " 2>&1");
}

std::string cfg_file(const test::TempDir& d, const json& cfg, const std::string& name = "c.json") {
  test::write_json(d / name, cfg);
  return (d / name).string();
}

}  // namespace

TEST_CASE("resume reproduces the uninterrupted run's losses exactly", "[train][e2e]") {
  test::TempDir d;
  json cfg = test::tiny_config(test::shared_tiny_root(), 4);
  cfg["train"]["optimizer"] = "sgd";
  cfg["train"]["lr"] = 0.01;
  cfg["train"]["checkpoint_interval"] = 1;
  cfg["train"]["keep_last"] = 2;
  const std::string c = cfg_file(d, cfg);
  auto a = train("--config " + c + " --out " + (d / "a").string());
  INFO(a.output);
  REQUIRE(a.status == 0);
  auto b1 = train("--config " + c + " --out " + (d / "b").string() + " --stop-at 2");
  INFO(b1.output);
  REQUIRE(b1.status == 0);
  CHECK_THAT(b1.output, Catch::Contains("interrupted at iteration 2/4"));
  auto b2 = train("--resume " + (d / "b").string());
  INFO(b2.output);
  REQUIRE(b2.status == 0);
  CHECK_THAT(b2.output, Catch::Contains("resumed from"));

  const auto la = test::losses_of(d / "a" / "metrics.jsonl"),
             lb = test::losses_of(d / "b" / "metrics.jsonl");
  REQUIRE(la.size() == 4);
  REQUIRE(lb.size() == 4);
  for (const auto& [it, l] : la) {
    INFO("iteration " << it);
    CHECK(lb.at(it) == l);  // exact: same arithmetic in the same order
  }
  // keep_last = 2 pruned ckpt_1/ckpt_2; last.h5, best.h5, curves.png, config.json are there.
  CHECK(!fs::exists(d / "a" / "ckpt_2.h5"));
  CHECK(fs::exists(d / "a" / "ckpt_3.h5"));
  CHECK(fs::exists(d / "a" / "ckpt_4.h5"));
  for (const char* f : {"last.h5", "best.h5", "curves.png", "config.json"})
    CHECK(fs::exists(d / "a" / f));
  for (const auto& e : fs::directory_iterator(d / "a"))
    CHECK(e.path().string().find(".tmp") == std::string::npos);
}

TEST_CASE("bad configs and flags exit 1 naming the key", "[train]") {
  test::TempDir d;
  const json good = test::tiny_config(test::shared_tiny_root(), 2);
  auto expect_fail = [&](const json& cfg, const std::string& extra, const std::string& needle) {
    auto r = train("--config " + cfg_file(d, cfg) + " --out " + (d / "o").string() + extra);
    INFO(r.output);
    CHECK(r.status == 1);
    CHECK_THAT(r.output, Catch::Contains(needle));
    CHECK(!fs::exists(d / "o" / "metrics.jsonl"));  // rejected before training started
  };
  json j = good;
  j["train"]["lrr"] = 0.1;
  expect_fail(j, "", "c.json: train.lrr: unknown key");
  j = good;
  j["train"]["batch"] = "4";
  expect_fail(j, "", "train.batch: expected an integer");
  j = good;
  j["train"]["lr"] = 100;
  expect_fail(j, "", "train.lr: expected a value in (0, 10]");
  j = good;
  j["model"]["backbone"] = "resnet19";
  expect_fail(j, "", "model.backbone");
  j = good;
  j["data"]["root"] = (d / "nowhere").string();
  expect_fail(j, "", "nowhere");
  expect_fail(good, " --set train.foo=1", "has no key 'train.foo'");
  expect_fail(good, " --set train.batch=big", "--set train.batch: expected an integer");
  expect_fail(good, " --bogus 1", "--bogus");
}

TEST_CASE("a NaN loss stops with the iteration named and keeps the last good checkpoint",
          "[train][e2e]") {
  test::TempDir d;
  json cfg = test::tiny_config(test::shared_tiny_root(), 10);
  cfg["train"]["optimizer"] = "sgd";
  cfg["train"]["checkpoint_interval"] = 1;
  auto r =
      train("--config " + cfg_file(d, cfg) + " --out " + (d / "o").string() + " --fault-nan-at 2");
  INFO(r.output);
  CHECK(r.status == 1);
  CHECK_THAT(r.output, Catch::Contains("loss is nan at iteration 2"));
  CHECK_THAT(r.output, Catch::Contains("last good checkpoint: " + (d / "o" / "last.h5").string()));
  REQUIRE(fs::exists(d / "o" / "last.h5"));
  CHECK(fs::exists(d / "o" / "ckpt_1.h5"));
  CHECK(!fs::exists(d / "o" / "ckpt_2.h5"));
}

TEST_CASE("SIGINT finishes the step, checkpoints, exits 0, and the run resumes", "[train][e2e]") {
  test::TempDir d;
  json cfg = test::tiny_config(test::shared_tiny_root(), 1000);
  cfg["train"]["optimizer"] = "sgd";
  const std::string c = cfg_file(d, cfg);
  const std::string bin = test::bfcn_binary().string(), out = (d / "o").string(),
                    log = (d / "log.txt").string();
  std::vector<std::string> argv_s = {bin, "train", "--config", c, "--out", out};
  std::vector<char*> argv;
  for (auto& s : argv_s) argv.push_back(s.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  pid_t pid = 0;
  REQUIRE(posix_spawn(&pid, bin.c_str(), &fa, nullptr, argv.data(), environ) == 0);
  posix_spawn_file_actions_destroy(&fa);
  // Wait for the first logged step (training is under way), then interrupt.
  const auto t0 = std::chrono::steady_clock::now();
  while (!fs::exists(d / "o" / "metrics.jsonl") || fs::file_size(d / "o" / "metrics.jsonl") == 0) {
    if (std::chrono::steady_clock::now() - t0 > std::chrono::seconds(300)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  kill(pid, SIGINT);
  int st = 0;
  REQUIRE(waitpid(pid, &st, 0) == pid);
  std::ifstream lf(log);
  const std::string text((std::istreambuf_iterator<char>(lf)), std::istreambuf_iterator<char>());
  INFO(text);
  REQUIRE(WIFEXITED(st));
  CHECK(WEXITSTATUS(st) == 0);
  CHECK_THAT(text, Catch::Contains("interrupted at iteration"));
  REQUIRE(fs::exists(d / "o" / "last.h5"));
  const int64_t stopped = test::losses_of(d / "o" / "metrics.jsonl").rbegin()->first;
  CHECK(stopped < 1000);
  auto r = train("--resume " + out + " --stop-at " + std::to_string(stopped + 1));
  INFO(r.output);
  CHECK(r.status == 0);
  const auto l = test::losses_of(d / "o" / "metrics.jsonl");
  CHECK(l.rbegin()->first == stopped + 1);
}

TEST_CASE("a W1A2 FCN trains on a tiny dataset: the loss falls and curves.png is drawn",
          "[train][e2e]") {
  test::TempDir d;
  const bool sanitized = std::getenv("BFCN_SANITIZED") != nullptr;
  const int iters = sanitized ? 6 : 16;
  json cfg = test::tiny_config(test::shared_tiny_root(), iters);
  cfg["train"]["optimizer"] = "sgd";
  cfg["train"]["lr"] = 0.01;
  cfg["train"]["eval_interval"] = iters / 2;
  auto r = train("--config " + cfg_file(d, cfg) + " --out " + (d / "o").string());
  INFO(r.output);
  REQUIRE(r.status == 0);
  const auto l = test::losses_of(d / "o" / "metrics.jsonl");
  REQUIRE(static_cast<int>(l.size()) == iters);
  // Mean of the first three logged losses vs the last three.
  double first = 0, last = 0;
  for (int i = 1; i <= 3; ++i) {
    first += l.at(i);
    last += l.at(iters + 1 - i);
  }
  CHECK(last < first);
  int n_val = 0;
  for (const auto& rec : read_metrics_file(d / "o" / "metrics.jsonl"))
    if (rec.contains("val_miou")) {
      ++n_val;
      CHECK(rec["val_per_class_iou"].contains("red"));
    }
  CHECK(n_val == 2);
  CHECK(fs::file_size(d / "o" / "curves.png") > 1000);
}

TEST_CASE("fine-tuning W1A2 from an FP32 run (--init-from); eval_at_start logs the starting mIoU",
          "[train][e2e]") {
  test::TempDir d;
  json fp = test::tiny_config(test::shared_tiny_root(), 3, 32);
  auto a = train("--config " + cfg_file(d, fp, "fp.json") + " --out " + (d / "fp").string());
  INFO(a.output);
  REQUIRE(a.status == 0);

  // Same W1A2 fine-tune logged every step and every 2 steps: "loss" of the second is the mean of
  // the first's two steps, "loss_last" the later one.
  json q = test::tiny_config(test::shared_tiny_root(), 4);
  q["train"]["eval_at_start"] = true;
  const std::string init = " --init-from " + (d / "fp" / "last.h5").string();
  auto b = train("--config " + cfg_file(d, q, "q1.json") + init + " --out " + (d / "q1").string());
  INFO(b.output);
  REQUIRE(b.status == 0);
  CHECK_THAT(b.output, Catch::Contains("init from"));
  CHECK_THAT(b.output, Catch::Contains("validation at 0:"));
  // The run's config.json names the weights it started from, not the config's init_from.
  CHECK(load_json_file(d / "q1" / "config.json").at("init_from") ==
        (d / "fp" / "last.h5").string());
  q["train"]["log_interval"] = 2;
  auto c = train("--config " + cfg_file(d, q, "q2.json") + init + " --out " + (d / "q2").string());
  INFO(c.output);
  REQUIRE(c.status == 0);

  const auto every = test::losses_of(d / "q1" / "metrics.jsonl");
  const auto recs = read_metrics_file(d / "q2" / "metrics.jsonl");
  REQUIRE(every.size() == 4);
  int n_loss = 0;
  bool val_at_0 = false;
  for (const auto& r : recs) {
    const int64_t it = r.at("iter").get<int64_t>();
    if (r.contains("val_miou") && it == 0) val_at_0 = true;
    if (!r.contains("loss")) continue;
    ++n_loss;
    REQUIRE(it % 2 == 0);
    CHECK(r["loss"].get<double>() == Approx((every.at(it - 1) + every.at(it)) / 2).epsilon(1e-6));
    CHECK(r["loss_last"].get<double>() == Approx(every.at(it)).epsilon(1e-6));
  }
  CHECK(n_loss == 2);
  CHECK(val_at_0);
}
