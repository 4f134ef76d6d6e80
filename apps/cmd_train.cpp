// `bfcn train --config C.json [--set k=v]... [--out DIR] [--resume DIR|CKPT] [--init-from CKPT]`:
// resolves and validates the config (exit 1 naming the key on any problem), then runs the training
// loop. Ctrl-C / SIGTERM finish the current step, write a checkpoint and exit 0; a second Ctrl-C
// kills at once.
#include <csignal>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "apps/args.h"
#include "apps/command.h"
#include "core/error.h"
#include "train/checkpoint.h"
#include "train/config.h"
#include "train/trainer.h"

namespace {

void on_signal(int sig) {
  bfcn::request_training_stop();
  std::signal(sig, SIG_DFL);  // a second signal terminates immediately
}

int run_train(const std::vector<std::string>& argv) {
  namespace fs = std::filesystem;
  bfcn::app::Args args(
      "train",
      {{"config", true, false, "FILE  training config (JSON); optional with --resume"},
       {"set", true, true, "K=V   override an existing config key (repeatable): train.lr=0.005"},
       {"out", true, false,
        "DIR   output folder (default runs/<config name>; with --resume DIR, DIR)"},
       {"resume", true, false, "DIR|CKPT  continue a run exactly (DIR means DIR/last.h5)"},
       {"init-from", true, false, "CKPT  start from these weights only (non-strict)"},
       {"threads", true, false, "N     OpenMP threads (default: train.threads, 0 = all)"},
       {"stop-at", true, false, "ITER  stop after iteration ITER as Ctrl-C would (checkpoint)"},
       {"fault-nan-at", true, false, "ITER  (testing) make the loss of iteration ITER NaN"},
       {"json", true, false, "FILE  write the run summary (iterations, loss, mIoU) as JSON"}},
      argv);
  if (args.help()) {
    std::cout << "bfcn train: train a segmentation model from a JSON config; writes checkpoints "
                 "(ckpt_<iter>.h5, last.h5, best.h5), metrics.jsonl, curves.png and config.json "
                 "under --out.\n\n"
              << args.usage()
              << "\nExamples:\n"
                 "  bfcn train --config configs/fashion_seg_fcn8s_r18_w1a2.json --out runs/w1a2\n"
                 "  bfcn train --config C.json --set train.lr=0.005 --set train.iterations=500\n"
                 "  bfcn train --resume runs/w1a2\n";
    return 0;
  }
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
  const bfcn::TrainResult r = bfcn::run_training(o);
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);

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

BFCN_REGISTER_COMMAND("train", "train a segmentation model from a JSON config", run_train);
