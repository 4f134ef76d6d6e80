// Data-parallel training (train/distributed.h). Always: the single-process communicator, and the
// loader's shards (the ranks' parts of a batch are exactly the unsharded batch). With MPI built
// (BFCN_HAVE_MPI; configure prints why when not), end to end under
// `mpirun --allow-run-as-root --oversubscribe -np 2`: 2 ranks x batch B/2 reach the parameters of
// 1 rank x batch B with synchronised BN (and not without it), ranks stay bit-identical every
// step (BFCN_CHECK_REPLICAS), gradient buckets reduced during backward give bit for bit the
// parameters of the same buckets reduced after it, a run resumed under a different rank count
// continues the loss curve, and a batch the ranks do not divide is a clear error.
#include "train/distributed.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>

#include "autograd/ops.h"
#include "datasets/loader.h"
#include "tests/support/test_support.h"
#include "tests/train/tiny_data.h"
#include "train/hdf5_io.h"

using namespace bfcn;
using nlohmann::json;
namespace fs = std::filesystem;

TEST_CASE("without an MPI launcher the communicator is one rank", "[train][distributed]") {
  Communicator& c = world();
  CHECK(c.size() == 1);
  CHECK(c.rank() == 0);
  CHECK(c.is_root());
  CHECK_THAT(c.describe(), Catch::Contains("single process"));
  // The reducer's backward is plain backward on one rank: the gradients are this rank's.
  Var w(Tensor::from_vector(Shape{2}, {1.5f, -2.0f}), true);
  GradientReducer reducer(c, {{"w", w}}, 4, true);
  CHECK(reducer.buckets() == 1);
  reducer.backward(sum(mul(w, w)));
  CHECK(w.grad().to_vector() == std::vector<float>{3.0f, -4.0f});
  double d[2] = {3.0, 4.0};
  c.allreduce_sum(d, 2);
  CHECK((d[0] == 3.0 && d[1] == 4.0));
}

TEST_CASE("loader shards: the ranks' parts of each batch are the unsharded batch",
          "[train][distributed][datasets]") {
  DataConfig cfg;
  cfg.dataset = "folder";
  cfg.root = test::shared_tiny_root().string();
  cfg.augment.scale_min = cfg.augment.scale_max = 1.0f;
  cfg.augment.crop = {0, 0};
  cfg.augment.flip = true;  // per-sample random flips must follow the sample, not the rank
  cfg.workers = 1;
  std::shared_ptr<const SegDataset> ds = make_dataset(cfg, "train");
  const int batch = 4;
  DataLoader whole(ds, cfg, batch, true, 9);
  DataLoader r0(ds, cfg, batch, true, 9), r1(ds, cfg, batch, true, 9);
  r0.set_shard(0, 2);
  r1.set_shard(1, 2);
  CHECK(r0.batches_per_epoch() == whole.batches_per_epoch());
  r0.set_state({1, 1});  // positions count whole batches, whatever the shard count
  r1.set_state({1, 1});
  whole.set_state({1, 1});
  for (int step = 0; step < 5; ++step) {  // crosses into epoch 2
    Batch w, a, b;
    REQUIRE((whole.next(w) || whole.next(w)));
    REQUIRE((r0.next(a) || r0.next(a)));
    REQUIRE((r1.next(b) || r1.next(b)));
    REQUIRE(a.images.dim(0) == 2);
    REQUIRE(b.images.dim(0) == 2);
    const size_t half = static_cast<size_t>(a.images.numel());
    CHECK(std::memcmp(w.images.f32(), a.images.f32(), half * 4) == 0);
    CHECK(std::memcmp(w.images.f32() + half, b.images.f32(), half * 4) == 0);
    CHECK(w.ids == std::vector<std::string>{a.ids[0], a.ids[1], b.ids[0], b.ids[1]});
  }
  CHECK_THROWS_WITH(DataLoader(ds, cfg, 3, true, 9).set_shard(0, 2),
                    Catch::Contains("dividing the batch 3"));
}

#if BFCN_HAVE_MPI

namespace {

// mpirun on the PATH (Debian's openmpi-bin; scripts/deps.sh installs it).
bool have_mpirun() { return test::run_command("command -v mpirun >/dev/null").status == 0; }

// The ASan pass of scripts/test.sh leaves the mpirun runs to the Release pass: OpenMPI's
// process-lifetime allocations under LeakSanitizer are not yet suppressed and checked
// (the code they drive is covered under ASan by the single-process and sync-BN unit tests).
bool sanitized() { return std::getenv("BFCN_SANITIZED") != nullptr; }

// The first line of every test that runs mpirun: skips without it and in the ASan pass.
#define NEEDS_MPIRUN()                                                                    \
  do {                                                                                    \
    if (!have_mpirun()) BFCN_SKIP("mpirun not found (apt-get install openmpi-bin)");      \
    if (sanitized()) BFCN_SKIP_SANITIZED("the mpirun runs are left to the Release pass"); \
  } while (0)

std::string mpirun(int np) {
  // --bind-to none: each rank runs its own OpenMP threads on the shared cores. The ranks inherit
  // this process's environment (the ASan pass's ASAN_OPTIONS/LSAN_OPTIONS: scripts/lsan.supp
  // suppresses OpenMPI's own process-lifetime allocations).
  return "mpirun --allow-run-as-root --oversubscribe --bind-to none -np " + std::to_string(np) +
         " -x BFCN_CHECK_REPLICAS=1 -x OMP_NUM_THREADS=1 ";
}

test::RunResult train_np(int np, const std::string& flags) {
  const std::string bin = test::bfcn_binary().string() + " train --threads 1 " + flags;
  return test::run_command(np == 0 ? bin : mpirun(np) + bin);
}

// Few steps: this tiny FCN (batch 4 of 32x32, so layer4's batch norms see 4 values per channel)
// is chaotic, a 1e-7 relative perturbation of the initial weights changes single-process
// parameters by ~10% after 4 steps, so any two runs that round differently (1 rank vs 2) part
// after 3-4 steps however exact the data-parallel code is (after 1 step they agree to 1.4e-7).
// An FP32 FCN (no quantizer steps that tiny float differences could flip), SGD with momentum, no
// ignore pixels (so the mean of the ranks' mean losses is the whole batch's mean loss).
json fp32_config(int iterations, bool sync_bn) {
  json cfg = test::tiny_config(test::shared_tiny_root(), iterations, 32);
  cfg["train"]["optimizer"] = "sgd";
  cfg["train"]["lr"] = 0.02;
  cfg["train"]["batch"] = 4;
  cfg["train"]["sync_bn"] = sync_bn;
  cfg["train"]["threads"] = 1;
  return cfg;
}

// Per parameter and BN buffer of two checkpoints: max |a - b| / (max |a| + 0.1), i.e. relative to
// the tensor's largest value, with a floor for tensors that start at zero (BN biases are ~1e-4
// after a few steps, sums of thousands of near-cancelling terms). The largest over all tensors,
// and the tensors above `report` (name and value).
struct Diff {
  double worst = 0;
  std::string over;
};
Diff max_rel_diff(const fs::path& a, const fs::path& b, double report) {
  const TensorFile fa = load_tensor_file(a), fb = load_tensor_file(b);
  Diff d;
  int compared = 0;
  for (const auto& [key, ta] : fa.tensors) {
    if (key.rfind("params/", 0) != 0 && key.rfind("buffers/", 0) != 0) continue;
    if (ta.dtype() != DType::f32) continue;
    const Tensor& tb = fb.tensors.at(key);
    REQUIRE(tb.numel() == ta.numel());
    double diff = 0, scale = 0;
    for (int64_t i = 0; i < ta.numel(); ++i) {
      diff = std::max(diff, std::abs(double(ta.f32()[i]) - double(tb.f32()[i])));
      scale = std::max(scale, std::abs(double(ta.f32()[i])));
    }
    const double rel = diff / (scale + 0.1);
    if (rel > report) d.over += "  " + key + " " + std::to_string(rel) + "\n";
    d.worst = std::max(d.worst, rel);
    ++compared;
  }
  REQUIRE(compared > 50);
  return d;
}

}  // namespace

TEST_CASE("mpirun -np 2 x batch B/2 with sync BN gives the parameters of 1 rank x batch B",
          "[train][distributed][mpi][e2e]") {
  NEEDS_MPIRUN();
  test::TempDir d;
  const int steps = 2;
  for (bool sync : {true, false})
    test::write_json(d / (sync ? "s.json" : "p.json"), fp32_config(steps, sync));
  auto one = train_np(0, "--config " + (d / "s.json").string() + " --out " + (d / "one").string());
  INFO(one.output);
  REQUIRE(one.status == 0);
  auto two = train_np(2, "--config " + (d / "s.json").string() + " --out " + (d / "two").string());
  INFO(two.output);
  REQUIRE(two.status == 0);
  CHECK_THAT(two.output, Catch::Contains("data parallel: MPI, 2 ranks"));
  CHECK_THAT(two.output, Catch::Contains("BN synchronised"));
  // Rank 0 alone reports (one "done:" line) and writes the run folder.
  const std::string done = "done: " + std::to_string(steps) + " iterations";
  const size_t first = two.output.find(done);
  CHECK(first != std::string::npos);
  CHECK(two.output.find(done, first + 1) == std::string::npos);
  const Diff synced = max_rel_diff(d / "one" / "last.h5", d / "two" / "last.h5", 1e-4);
  INFO("tensors that differ by more than 1e-4:\n" << synced.over);
  CHECK(synced.worst < 1e-4);
  // The losses agree step by step too (rank 0 logs the mean over ranks).
  const auto l1 = test::losses_of(d / "one" / "metrics.jsonl"),
             l2 = test::losses_of(d / "two" / "metrics.jsonl");
  REQUIRE(l1.size() == size_t(steps));
  REQUIRE(l2.size() == size_t(steps));
  for (const auto& [it, l] : l1) CHECK(std::abs(l2.at(it) - l) < 1e-4 * (1 + std::abs(l)));

  // Per-rank BN normalises each half with its own statistics: legitimately different, which
  // shows the comparison above can fail.
  auto per_rank =
      train_np(2, "--config " + (d / "p.json").string() + " --out " + (d / "per").string());
  INFO(per_rank.output);
  REQUIRE(per_rank.status == 0);
  CHECK_THAT(per_rank.output, Catch::Contains("BN per rank"));
  const Diff unsynced = max_rel_diff(d / "one" / "last.h5", d / "per" / "last.h5", 1e30);
  INFO("synced " << synced.worst << ", per-rank " << unsynced.worst);
  CHECK(unsynced.worst > 100 * std::max(synced.worst, 1e-7));
}

TEST_CASE("a run resumed under a different rank count continues the loss curve",
          "[train][distributed][mpi][e2e]") {
  NEEDS_MPIRUN();
  test::TempDir d;
  const int steps = 3;
  test::write_json(d / "c.json", fp32_config(steps, true));
  const std::string c = (d / "c.json").string(), r = (d / "r").string();
  auto full = train_np(0, "--config " + c + " --out " + (d / "full").string());
  INFO(full.output);
  REQUIRE(full.status == 0);
  // 2 ranks to iteration 1, 1 rank to iteration 2, 2 ranks to the end.
  auto a = train_np(2, "--config " + c + " --out " + r + " --stop-at 1");
  INFO(a.output);
  REQUIRE(a.status == 0);
  CHECK_THAT(a.output, Catch::Contains("interrupted at iteration 1/3"));
  auto b = train_np(0, "--resume " + r + " --stop-at 2");
  INFO(b.output);
  REQUIRE(b.status == 0);
  CHECK_THAT(b.output, Catch::Contains("resumed from"));
  CHECK_THAT(b.output, Catch::Contains("interrupted at iteration 2/3"));
  auto e = train_np(2, "--resume " + r);
  INFO(e.output);
  REQUIRE(e.status == 0);
  CHECK_THAT(e.output, Catch::Contains("data parallel: MPI, 2 ranks"));
  const auto lf = test::losses_of(d / "full" / "metrics.jsonl"),
             lr = test::losses_of(d / "r" / "metrics.jsonl");
  REQUIRE(lf.size() == size_t(steps));
  REQUIRE(lr.size() == size_t(steps));
  for (const auto& [it, l] : lf) {
    INFO("iteration " << it << ": uninterrupted " << l << ", resumed " << lr.at(it));
    CHECK(std::abs(lr.at(it) - l) < 1e-4 * (1 + std::abs(l)));
  }
  const Diff diff = max_rel_diff(d / "full" / "last.h5", d / "r" / "last.h5", 1e-3);
  INFO("tensors that differ by more than 1e-3:\n" << diff.over);
  // Looser than the 2-step check above: the third step already amplifies the 1-vs-2-rank
  // rounding difference (see fp32_config); the losses above are the resume criterion.
  CHECK(diff.worst < 1e-3);
}

TEST_CASE("gradients reduced during backward equal those reduced after it, bit for bit",
          "[train][distributed][mpi][e2e]") {
  NEEDS_MPIRUN();
  // The same bucket layout (1 MB buckets: many, so several sums are in flight while backward
  // runs) started during the pass (overlap) or after it: the same MPI sums of the same packed
  // gradients, so the parameters after 3 steps must be identical, not merely close. A gradient
  // packed before its last contribution arrived would change them.
  test::TempDir d;
  for (bool overlap : {true, false}) {
    json cfg = fp32_config(3, true);
    cfg["train"]["grad_overlap"] = overlap;
    cfg["train"]["grad_bucket_mb"] = 1.0;
    test::write_json(d / (overlap ? "on.json" : "off.json"), cfg);
  }
  auto on = train_np(2, "--config " + (d / "on.json").string() + " --out " + (d / "on").string());
  INFO(on.output);
  REQUIRE(on.status == 0);
  CHECK_THAT(on.output, Catch::Contains("overlapped with backward"));
  const size_t at = on.output.find("gradients in ");
  REQUIRE(at != std::string::npos);
  CHECK(std::stoi(on.output.substr(at + 13)) >= 8);  // ResNet-18's 45 MB of gradients
  auto off =
      train_np(2, "--config " + (d / "off.json").string() + " --out " + (d / "off").string());
  INFO(off.output);
  REQUIRE(off.status == 0);
  CHECK_THAT(off.output, Catch::Contains("reduced after backward"));
  const Diff diff = max_rel_diff(d / "on" / "last.h5", d / "off" / "last.h5", 0);
  INFO("tensors that differ:\n" << diff.over);
  CHECK(diff.worst == 0);
  const auto l_on = test::losses_of(d / "on" / "metrics.jsonl"),
             l_off = test::losses_of(d / "off" / "metrics.jsonl");
  CHECK(l_on == l_off);
}

TEST_CASE("a batch the ranks do not divide is an error naming train.batch and N",
          "[train][distributed][mpi]") {
  NEEDS_MPIRUN();
  test::TempDir d;
  json cfg = fp32_config(2, false);
  cfg["train"]["batch"] = 3;
  test::write_json(d / "c.json", cfg);
  auto r = train_np(2, "--config " + (d / "c.json").string() + " --out " + (d / "o").string());
  INFO(r.output);
  CHECK(r.status != 0);
  CHECK_THAT(r.output,
             Catch::Contains("c.json: train.batch 3 is not divisible by the 2 MPI ranks"));
  CHECK(!fs::exists(d / "o" / "metrics.jsonl"));
}

#else

TEST_CASE("data-parallel end-to-end tests need MPI", "[train][distributed][mpi]") {
  BFCN_SKIP(
      "built without MPI (BFCN_MPI=OFF or MPI not found: apt-get install libopenmpi-dev "
      "openmpi-bin, reconfigure with -DBFCN_MPI=ON)");
}

#endif  // BFCN_HAVE_MPI
