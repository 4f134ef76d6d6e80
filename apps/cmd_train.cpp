// `bfcn train --config C.json [--set k=v]... [--out DIR] [--resume DIR|CKPT] [--init-from CKPT]`:
// resolves and validates the config (exit 1 naming the key on any problem), then runs the training
// loop. Ctrl-C / SIGTERM finish the current step, write a checkpoint and exit 0; a second Ctrl-C
// kills at once.
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "cli/command.h"
#include "core/error.h"
#include "train/checkpoint.h"
#include "train/config.h"
#include "train/distributed.h"
#include "train/trainer.h"

namespace {

void on_signal(int sig) {
  bfcn::request_training_stop();
  std::signal(sig, SIG_DFL);  // a second signal terminates immediately
}

int run_train(const bfcn::cli::Args& args) {
  namespace fs = std::filesystem;
  bfcn::TrainOptions o;
  nlohmann::json user;
  if (args.has("resume")) {
    o.resume = bfcn::resolve_checkpoint(args.get("resume"));
    if (!args.has("out"))
      o.out_dir = fs::is_directory(args.get("resume")) ? fs::path(args.get("resume"))
                                                       : o.resume.parent_path();
  }
  if (args.has("config")) {
    o.source = args.get("config");
    user = bfcn::load_json_file(o.source);
  } else {
    BFCN_CHECK(!o.resume.empty(), "bfcn train: --config is required (or --resume DIR|CKPT)");
    o.source = o.resume.string();
    user = bfcn::read_checkpoint_config(o.resume);
  }
  o.config = bfcn::resolve_config(user, args.get_all("set"), o.source);
  if (o.out_dir.empty()) {
    std::string name = o.config.value("name", std::string());
    if (name.empty()) name = fs::path(o.source).stem().string();
    o.out_dir = args.get("out", "runs/" + name);
  }
  if (args.has("init-from")) {
    BFCN_CHECK(o.resume.empty(), "bfcn train: --init-from and --resume exclude each other");
    o.init_from = args.get("init-from");
    BFCN_CHECK_IO(fs::exists(o.init_from), o.init_from.string(), ": --init-from file not found");
  }
  o.threads = args.get_int("threads", -1);
  o.stop_at = args.get_int("stop-at", -1);
  o.fault_nan_at = args.get_int("fault-nan-at", -1);

  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  bfcn::TrainResult r;
  try {
    r = bfcn::run_training(o);
  } catch (const std::exception& e) {
    // Data parallel: an error on one rank (a full disk on rank 0, a NaN) must end every rank, not
    // leave the others waiting in a collective.
    if (bfcn::world().size() == 1) throw;
    std::fprintf(stderr, "bfcn: error (rank %d of %d): %s\n", bfcn::world().rank(),
                 bfcn::world().size(), e.what());
    bfcn::world().abort(1);
  }
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);

  if (!bfcn::world().is_root()) return 0;  // data parallel: rank 0 reports and writes
  if (r.interrupted)
    std::cout << "interrupted at iteration " << r.iteration << "/" << r.iterations
              << "; checkpoint " << r.last_checkpoint.string()
              << " (continue with: bfcn train --resume " << o.out_dir.string() << ")\n";
  else
    std::cout << "done: " << r.iteration << " iterations, last loss " << r.last_loss
              << ", val mIoU " << r.final_miou << " (best " << r.best_miou << "), checkpoint "
              << r.last_checkpoint.string() << "\n";
  if (args.has("json")) {
    std::ofstream f(args.get("json"));
    BFCN_CHECK_IO(f.good(), args.get("json"), ": cannot write --json file");
    f << nlohmann::json{{"iteration", r.iteration},     {"iterations", r.iterations},
                        {"interrupted", r.interrupted}, {"last_loss", r.last_loss},
                        {"miou", r.final_miou},         {"best_miou", r.best_miou},
                        {"out", o.out_dir.string()},    {"checkpoint", r.last_checkpoint.string()}}
             .dump(2)
      << "\n";
  }
  return 0;
}

}  // namespace

BFCN_REGISTER_COMMAND(
    "bfcn",
    bfcn::cli::Command("train", "train a segmentation model from a JSON config")
        .describe("Trains a segmentation model from a JSON config; writes checkpoints "
                  "(ckpt_<iter>.h5, last.h5, best.h5), metrics.jsonl, curves.png and config.json "
                  "under --out.")
        .usage("bfcn train --config C.json [--set key=value]... [--out DIR] [--resume DIR|CKPT] "
               "[--init-from CKPT]")
        .with_flags(
            {bfcn::cli::text("config", "FILE", "training config (JSON); optional with --resume"),
             bfcn::cli::text("set", "K=V", "override an existing config key, e.g. train.lr=0.005")
                 .many(),
             bfcn::cli::text("out", "DIR",
                             "output folder (default runs/<config name>; with --resume DIR, DIR)"),
             bfcn::cli::text("resume", "DIR|CKPT",
                             "continue a run exactly (DIR means DIR/last.h5)"),
             bfcn::cli::text("init-from", "CKPT", "start from these weights only (non-strict)"),
             bfcn::cli::integer("threads", "N", "OpenMP threads (default: train.threads; 0 = all)")
                 .at_least(0),
             bfcn::cli::integer("stop-at", "ITER",
                                "stop after iteration ITER as Ctrl-C would (checkpoint)")
                 .at_least(0),
             bfcn::cli::integer("fault-nan-at", "ITER",
                                "(testing) make the loss of iteration ITER NaN")
                 .at_least(1),
             bfcn::cli::text("json", "FILE",
                             "write the run summary (iterations, loss, mIoU) as JSON")})
        .example("bfcn train --config configs/fashion_seg_fcn8s_r18_w1a2.json --out runs/w1a2")
        .example("bfcn train --config C.json --set train.lr=0.005 --set train.iterations=500")
        .example("bfcn train --resume runs/w1a2")
        .runs(run_train));
