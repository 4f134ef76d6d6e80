// `bfcn bench train`: img/s and peak RSS of full training steps (forward, loss, backward, SGD
// update) on synthetic tensors, FP32 and W1A2 FCN-8s ResNet-18 by default, against PyTorch
// (bench/torch_train_ref.py, same batch/input/threads) run in the same invocation. Each model is
// measured in a forked child so its peak RSS (VmHWM) is its own; the parent never starts OpenMP.
#include <omp.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <tuple>
#include <vector>

#include "autograd/ops.h"
#include "bench/bench.h"
#include "core/error.h"
#include "layers/model.h"
#include "train/config.h"
#include "train/distributed.h"
#include "train/optim.h"

namespace {

using nlohmann::json;

struct Setup {
  int batch = 8, height = 256, width = 256, threads = 2, iters = 5;
};

double vm_hwm_mb() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  return 0.0;
}

// The model in train mode, its optimizer and one random batch of `batch` images (labels < the
// model's classes), what both measurements step on.
struct TrainBench {
  std::shared_ptr<bfcn::SegmentationModel> model;
  std::unique_ptr<bfcn::Optimizer> opt;
  bfcn::Tensor x, y;
};

TrainBench make_train_bench(const json& model_cfg, const Setup& s, int batch, uint64_t seed) {
  omp_set_num_threads(s.threads);
  TrainBench b;
  b.model = bfcn::build_model(model_cfg, 1, "model");
  b.model->train();
  bfcn::OptimOptions oo;
  oo.weight_decay = 1e-4;
  b.opt = bfcn::make_optimizer(b.model->named_parameters(), oo);
  bfcn::Rng rng(seed);
  b.x = bfcn::Tensor::empty({batch, 3, s.height, s.width});
  for (float& v : b.x.span<float>()) v = rng.normal();
  b.y = bfcn::Tensor::empty({batch, s.height, s.width}, bfcn::DType::u8);
  for (uint8_t& v : b.y.span<uint8_t>())
    v = static_cast<uint8_t>(rng.randint(0, b.model->n_classes()));
  return b;
}

// Runs in the child: median step time of `iters` steps after one warm-up.
json measure_ours(const json& model_cfg, const Setup& s) {
  TrainBench b = make_train_bench(model_cfg, s, s.batch, 3);
  auto& model = b.model;
  auto& opt = b.opt;
  const bfcn::Tensor &x = b.x, &y = b.y;
  auto step = [&] {
    opt->zero_grad();
    bfcn::Var loss = bfcn::softmax_cross_entropy(model->forward(bfcn::Var(x)), y, 255);
    loss.backward();
    opt->step(0.001);
  };
  step();
  std::vector<double> t;
  for (int i = 0; i < s.iters; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    step();
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  const double med = t[t.size() / 2];
  return {{"img_s", s.batch / med}, {"step_ms", med * 1e3}, {"peak_rss_mb", vm_hwm_mb()}};
}

// Under mpirun (N ranks, no fork): each rank steps on batch/N images and the gradients are
// averaged (train/distributed.h: GradientReducer, 4 MB buckets, MPI_Iallreduce overlapped with the
// backward pass unless --grad-overlap off) before the update, as `bfcn train` does. Step time is
// barrier to barrier (the slowest rank); the allreduce time is the time the step spends in the
// reducer (packing, starting and polling sums during backward, then waiting for them and
// unpacking), which includes waiting for the slowest rank to arrive.
json measure_data_parallel(const json& model_cfg, const Setup& s, bool overlap,
                           bfcn::Communicator& comm) {
  const int n = comm.size();
  BFCN_CHECK(s.batch % n == 0, "bench train: --batch ", s.batch, " is not divisible by the ", n,
             " MPI ranks");
  TrainBench b =
      make_train_bench(model_cfg, s, s.batch / n, 3 + static_cast<uint64_t>(comm.rank()));
  auto& model = b.model;
  auto& opt = b.opt;
  const bfcn::Tensor &x = b.x, &y = b.y;
  double grad_bytes = 0;
  for (const auto& [name, p] : opt->params())
    grad_bytes += 4.0 * static_cast<double>(p.value().numel());
  bfcn::GradientReducer reducer(comm, opt->params(), 4u << 20, overlap);
  auto step = [&] {
    opt->zero_grad();
    bfcn::Var loss = bfcn::softmax_cross_entropy(model->forward(bfcn::Var(x)), y, 255);
    reducer.backward(loss);
    opt->step(0.001);
  };
  step();
  std::vector<double> t;
  comm.barrier();
  const double ar0 = comm.allreduce_seconds();
  double total = 0;
  for (int i = 0; i < s.iters; ++i) {
    comm.barrier();
    const auto t0 = std::chrono::steady_clock::now();
    step();
    comm.barrier();
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    total += t.back();
  }
  double ar[2] = {comm.allreduce_seconds() - ar0, 0};  // summed over ranks → mean
  comm.allreduce_sum(ar, 2);
  std::sort(t.begin(), t.end());
  const double med = t[t.size() / 2];
  return {{"img_s", s.batch / med},
          {"step_ms", med * 1e3},
          {"allreduce_share", ar[0] / n / total},
          {"allreduce_ms_per_step", ar[0] / n / s.iters * 1e3},
          {"grad_mb", grad_bytes / 1e6},
          {"buckets", reducer.buckets()},
          {"grad_overlap", overlap},
          {"ranks", n},
          {"peak_rss_mb", vm_hwm_mb()}};
}

json in_child(const json& model_cfg, const Setup& s) {
  int fd[2];
  BFCN_CHECK(pipe(fd) == 0, "bench train: pipe failed");
  const pid_t pid = fork();
  BFCN_CHECK(pid >= 0, "bench train: fork failed");
  if (pid == 0) {
    close(fd[0]);
    std::string out;
    try {
      out = measure_ours(model_cfg, s).dump();
    } catch (const std::exception& e) {
      out = json{{"error", e.what()}}.dump();
    }
    [[maybe_unused]] auto n = write(fd[1], out.data(), out.size());
    close(fd[1]);
    _exit(0);
  }
  close(fd[1]);
  std::string text;
  char buf[4096];
  for (ssize_t n; (n = read(fd[0], buf, sizeof buf)) > 0;) text.append(buf, static_cast<size_t>(n));
  close(fd[0]);
  int st = 0;
  waitpid(pid, &st, 0);
  BFCN_CHECK(!text.empty(), "bench train: the measuring child died (status ", st, ")");
  json j = json::parse(text);
  BFCN_CHECK(!j.contains("error"), "bench train: ", j.value("error", std::string()));
  return j;
}

json measure_torch(const std::string& kind, const Setup& s, int n_classes) {
  return bfcn::bench::run_python_peer(
      "torch_train_ref.py", "--model " + kind + " --batch " + std::to_string(s.batch) +
                                " --height " + std::to_string(s.height) + " --width " +
                                std::to_string(s.width) + " --threads " +
                                std::to_string(s.threads) + " --iters " + std::to_string(s.iters) +
                                " --classes " + std::to_string(n_classes));
}

int run(const bfcn::cli::Args& a) {
  Setup s;
  s.batch = a.get_int("batch");
  std::tie(s.height, s.width) = a.get_hw("input");
  s.threads = a.get_int("threads");
  s.iters = a.get_int("iters");
  const std::string peer = a.get("peer");

  bfcn::Communicator& comm = bfcn::world();
  if (comm.size() > 1) {  // mpirun: the data-parallel measurement, rank 0 prints
    const bool overlap = a.get("grad-overlap") == "on";
    json results = json::array();
    std::vector<std::pair<std::string, json>> dp_models;
    if (a.has("config")) {
      for (const auto& f : a.get_all("config")) {
        json c = bfcn::load_json_file(f);
        dp_models.emplace_back(f, c.contains("model") ? c["model"] : c);
      }
    } else {
      const json fp = {{"backbone", "resnet18"}, {"head", "fcn8s"}, {"n_classes", 21}};
      json q = fp;
      q["quant"] = {{"w_bits", 1}, {"a_bits", 2}, {"first_last_fp", true}};
      dp_models = {{"fp32", fp}, {"w1a2", q}};
    }
    if (comm.is_root())
      std::printf(
          "bench train (data parallel, %s): global batch %d, input %dx%d, %d threads per "
          "rank, median of %d steps, gradient reduction %s\n%-8s %10s %10s %12s %10s %10s\n",
          comm.describe().c_str(), s.batch, s.height, s.width, s.threads, s.iters,
          overlap ? "overlapped with backward" : "after backward", "model", "img/s", "step ms",
          "allreduce %", "ar ms", "grad MB");
    for (const auto& [kind, cfg] : dp_models) {
      json r = measure_data_parallel(cfg, s, overlap, comm);
      r["model"] = kind;
      if (comm.is_root())
        std::printf("%-8s %10.2f %10.1f %11.1f%% %10.1f %10.1f\n", kind.c_str(),
                    r["img_s"].get<double>(), r["step_ms"].get<double>(),
                    100 * r["allreduce_share"].get<double>(),
                    r["allreduce_ms_per_step"].get<double>(), r["grad_mb"].get<double>());
      results.push_back(r);
    }
    if (comm.is_root() && a.has("json"))
      bfcn::bench::write_json("train", a.get("json"),
                              {{"batch", s.batch},
                               {"height", s.height},
                               {"width", s.width},
                               {"threads", s.threads},
                               {"iters", s.iters},
                               {"ranks", comm.size()},
                               {"grad_overlap", overlap},
                               {"models", results}});
    return 0;
  }
  std::vector<std::pair<std::string, json>> models;
  if (a.has("config")) {
    for (const auto& f : a.get_all("config")) {
      json c = bfcn::load_json_file(f);
      const json m = c.contains("model") ? c["model"] : c;
      const bool quant = m.contains("quant") && m["quant"].value("w_bits", 32) < 32;
      models.emplace_back(quant ? "w1a2" : "fp32", m);  // the torch peer's closest model
    }
  } else {
    const json fp = {{"backbone", "resnet18"}, {"head", "fcn8s"}, {"n_classes", 21}};
    json q = fp;
    q["quant"] = {{"w_bits", 1}, {"a_bits", 2}, {"first_last_fp", true}};
    models = {{"fp32", fp}, {"w1a2", q}};
  }
  std::printf("bench train: batch %d, input %dx%d, %d threads, median of %d steps\n", s.batch,
              s.height, s.width, s.threads, s.iters);
  std::printf("%-8s %10s %10s %7s %10s %10s %7s\n", "model", "ours img/s", "torch", "ratio",
              "ours MB", "torch MB", "ratio");
  json results = json::array();
  double fp32_ms = 0, w1a2_ms = 0;
  for (const auto& [kind, cfg] : models) {
    json ours = in_child(cfg, s);
    json torch = peer == "torch" ? measure_torch(kind, s, cfg.value("n_classes", 21)) : json();
    if (kind == "fp32") fp32_ms = ours["step_ms"].get<double>();
    if (kind == "w1a2") w1a2_ms = ours["step_ms"].get<double>();
    json r = {{"model", kind},
              {"config", cfg},
              {"img_s", ours["img_s"]},
              {"step_ms", ours["step_ms"]},
              {"peak_rss_mb", ours["peak_rss_mb"]}};
    const bool have_torch = torch.is_object() && torch.contains("img_s");
    if (have_torch) {
      r["peer_torch_img_s"] = torch["img_s"];
      r["peer_torch_step_ms"] = torch["step_ms"];
      r["peer_torch_peak_rss_mb"] = torch["peak_rss_mb"];
      r["img_s_ratio"] = ours["img_s"].get<double>() / torch["img_s"].get<double>();
      r["rss_ratio"] = ours["peak_rss_mb"].get<double>() / torch["peak_rss_mb"].get<double>();
      std::printf("%-8s %10.2f %10.2f %6.2fx %10.0f %10.0f %6.2fx\n", kind.c_str(),
                  ours["img_s"].get<double>(), torch["img_s"].get<double>(),
                  r["img_s_ratio"].get<double>(), ours["peak_rss_mb"].get<double>(),
                  torch["peak_rss_mb"].get<double>(), r["rss_ratio"].get<double>());
    } else {
      if (torch.is_object() && torch.contains("error")) r["peer_torch_error"] = torch["error"];
      std::printf("%-8s %10.2f %10s %7s %10.0f %10s %7s\n", kind.c_str(),
                  ours["img_s"].get<double>(), "-", "-", ours["peak_rss_mb"].get<double>(), "-",
                  "-");
    }
    results.push_back(r);
  }
  json out = {{"batch", s.batch},     {"height", s.height}, {"width", s.width},
              {"threads", s.threads}, {"iters", s.iters},   {"models", results}};
  if (fp32_ms > 0 && w1a2_ms > 0) {
    out["w1a2_over_fp32_step_time"] = w1a2_ms / fp32_ms;
    std::printf("W1A2 step time / our FP32 step time: %.2fx (target <= 1.15x)\n",
                w1a2_ms / fp32_ms);
  }
  if (a.has("json")) bfcn::bench::write_json("train", a.get("json"), out);
  return 0;
}

}  // namespace

BFCN_REGISTER_BENCH(
    bfcn::cli::Command("train", "training step img/s and peak RSS, FP32 and W1A2, vs PyTorch")
        .describe("Training-step throughput (img/s) and peak RSS, FP32 and W1A2 FCN8s-ResNet18 by "
                  "default, vs PyTorch (bench/torch_train_ref.py) with the same batch, input and "
                  "threads. Under mpirun -np N: data-parallel steps (batch/N per rank, gradients "
                  "averaged in buckets with MPI_Iallreduce, overlapped with the backward pass "
                  "unless --grad-overlap off) with the allreduce share of the step time.")
        .usage("bfcn bench train [--config C.json] [--batch B] [--input HxW] [--threads N] "
               "[--json FILE]")
        .with_flags(
            {bfcn::cli::text("config", "FILE",
                             "model/training config to time (default: FP32 and W1A2)")
                 .many(),
             bfcn::cli::integer("batch", "B", "batch size").at_least(1).defaults("8"),
             bfcn::cli::size("input", "input size").defaults("256x256"),
             bfcn::cli::integer("threads", "N", "threads for us and PyTorch")
                 .at_least(1)
                 .defaults("2"),
             bfcn::cli::integer("iters", "N", "timed steps per model, median reported")
                 .at_least(1)
                 .defaults("5"),
             bfcn::cli::choice("peer", {"torch", "none"}, "the peer to run").defaults("torch"),
             bfcn::cli::choice("grad-overlap", {"on", "off"},
                               "under mpirun: reduce gradient buckets during backward or after it")
                 .defaults("on"),
             bfcn::cli::text("json", "FILE", "write results as JSON")})
        .example("bfcn bench train --batch 8 --input 256x256 --threads 2 --json train.json")
        .runs(run));
