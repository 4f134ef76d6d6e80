// Training loop; see trainer.h. Order inside an iteration: step → log → validate → checkpoint, so
// a checkpoint at iteration i already counts the validation at i (best.h5 and metrics agree).
#include "train/trainer.h"

#include <omp.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <regex>

#include "autograd/ops.h"
#include "core/error.h"
#include "datasets/dataset.h"
#include "datasets/loader.h"
#include "eval/confusion.h"
#include "layers/model.h"
#include "train/calibrate.h"
#include "train/checkpoint.h"
#include "train/config.h"
#include "train/distributed.h"
#include "train/hdf5_io.h"
#include "train/lr_schedule.h"
#include "train/metrics_log.h"
#include "train/optim.h"
#include "train/plot.h"
#include "train/weights.h"

namespace bfcn {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

std::atomic<bool> g_stop{false};

// Re-throws a builder's ConfigError with the config file named first.
template <class F>
auto with_source(const std::string& source, F&& f) {
  try {
    return f();
  } catch (const ConfigError& e) {
    throw ConfigError(source + ": " + e.what());
  }
}

std::string fmt_duration(double s) {
  char buf[32];
  const long t = static_cast<long>(s + 0.5);
  if (t >= 3600)
    std::snprintf(buf, sizeof buf, "%ldh%02ldm", t / 3600, (t / 60) % 60);
  else
    std::snprintf(buf, sizeof buf, "%ldm%02lds", t / 60, t % 60);
  return buf;
}

// ckpt_<iter>.h5 files beyond the newest `keep` are deleted.
void prune_checkpoints(const fs::path& dir, int keep) {
  static const std::regex re("ckpt_([0-9]+)\\.h5");
  std::vector<std::pair<int64_t, fs::path>> found;
  for (const auto& e : fs::directory_iterator(dir)) {
    std::smatch m;
    const std::string name = e.path().filename().string();
    if (std::regex_match(name, m, re)) found.emplace_back(std::stoll(m[1].str()), e.path());
  }
  std::sort(found.begin(), found.end());
  for (size_t i = 0; i + keep < found.size(); ++i) fs::remove(found[i].second);
}

// dst becomes the same content as src, atomically (hard link, else copy, then rename).
void publish_as(const fs::path& src, const fs::path& dst) {
  const fs::path tmp = dst.string() + ".tmp";
  std::error_code ec;
  fs::remove(tmp, ec);
  fs::create_hard_link(src, tmp, ec);
  if (ec) fs::copy_file(src, tmp, fs::copy_options::overwrite_existing);
  fs::rename(tmp, dst);
}

struct Validation {
  double miou = 0, pixel_acc = 0;
  json per_class;
};

// Validation split across ranks: rank r takes batches r, r+N, ... and the confusion matrices are
// summed, so every rank gets the metrics of the whole split.
Validation validate(SegmentationModel& model, DataLoader& val, Communicator& comm) {
  NoGradGuard ng;
  model.eval();
  const auto& names = val.dataset().class_names();
  const int nc = static_cast<int>(names.size());
  ConfusionMatrix cm(nc, 255);
  if (comm.size() == 1) {
    val.set_state({0, 0});
    Batch b;
    while (val.next(b)) {
      Var logits = model.forward(Var(b.images));
      cm.add(b.labels, argmax_channels(logits.value()));
    }
  } else {
    const std::vector<size_t> order = val.epoch_order(0);
    for (int64_t i = comm.rank(); i < val.batches_per_epoch(); i += comm.size()) {
      const Batch b = val.make_batch(0, i, order);
      Var logits = model.forward(Var(b.images));
      cm.add(b.labels, argmax_channels(logits.value()));
    }
    std::vector<int64_t> counts;  // [gt][pred], then [gt] missed
    for (int g = 0; g < nc; ++g)
      for (int p = 0; p < nc; ++p) counts.push_back(static_cast<int64_t>(cm.at(g, p)));
    for (int g = 0; g < nc; ++g) counts.push_back(static_cast<int64_t>(cm.missed(g)));
    comm.allreduce_sum(counts.data(), counts.size());
    cm.reset();
    for (int g = 0; g < nc; ++g) {
      for (int p = 0; p < nc; ++p) cm.add_count(g, p, static_cast<uint64_t>(counts[g * nc + p]));
      cm.add_count(g, 255, static_cast<uint64_t>(counts[nc * nc + g]));
    }
  }
  model.train();
  const Metrics m = compute_metrics(cm);
  const json j = metrics_to_json(m, names);
  return {m.miou, m.pixel_acc, j.at("per_class_iou")};
}

}  // namespace

void request_training_stop() { g_stop.store(true); }

TrainResult run_training(const TrainOptions& o) {
  g_stop.store(false);
  const json& cfg = o.config;
  const std::string& src = o.source;
  TrainConfig tc = parse_train_config(cfg.at("train"));
  const int threads = o.threads >= 0 ? o.threads : tc.threads;
  if (threads > 0) omp_set_num_threads(threads);
  // Data parallel (mpirun -np N): each rank takes batch/N samples of every global batch; rank 0
  // alone prints and writes files.
  Communicator& comm = world();
  const int ranks = comm.size();
  const bool root = comm.is_root();
  std::ostream quiet(nullptr);
  std::ostream& msg = root ? std::cerr : quiet;
  BFCN_CHECK_CONFIG(tc.batch % ranks == 0, src, ": train.batch ", tc.batch,
                    " is not divisible by the ", ranks,
                    " MPI ranks (train.batch is the global batch; each rank takes train.batch / ",
                    ranks, "); use a multiple of ", ranks, " or another -np");

  // Build and validate everything before the first step.
  auto model = with_source(src, [&] { return build_model(cfg.at("model"), tc.seed, "model"); });
  const DataConfig dcfg =
      with_source(src, [&] { return DataConfig::from_json(cfg.at("data"), "data"); });
  std::shared_ptr<const SegDataset> train_ds = make_dataset(dcfg, dcfg.train_split);
  std::shared_ptr<const SegDataset> val_ds = make_dataset(dcfg, dcfg.val_split);
  BFCN_CHECK_CONFIG(train_ds->n_classes() == model->n_classes(), src, ": model.n_classes is ",
                    model->n_classes(), " but the dataset (", train_ds->describe(), ") has ",
                    train_ds->n_classes(), " classes");
  DataLoader loader(train_ds, dcfg, tc.batch, /*train=*/true, tc.seed);
  if (ranks > 1) loader.set_shard(comm.rank(), ranks);
  DataLoader val_loader(val_ds, dcfg, 1, /*train=*/false, tc.seed);
  BFCN_CHECK_CONFIG(loader.batches_per_epoch() > 0, src, ": train.batch ", tc.batch,
                    " is larger than the training split (", train_ds->size(), " samples)");
  const int64_t total = tc.iterations > 0 ? tc.iterations : tc.epochs * loader.batches_per_epoch();

  auto opt = make_optimizer(model->named_parameters(), tc.optim);
  TrainState st;
  st.rng = Rng(tc.seed ^ 0x7472u).state();
  if (!o.resume.empty()) {
    st = load_checkpoint(o.resume, *model, opt.get());
    loader.set_state({st.epoch, st.loader_position});
    msg << "resumed from " << o.resume.string() << " at iteration " << st.iteration << "\n";
  } else {
    const std::string init =
        !o.init_from.empty() ? o.init_from.string() : cfg.at("init_from").get<std::string>();
    if (!init.empty()) {
      BFCN_CHECK_CONFIG(fs::exists(init), o.init_from.empty() ? "init_from" : "--init-from", ": '",
                        init,
                        "' does not exist; train the checkpoint it names first (e.g. the FP32 "
                        "config of a fine-tuning recipe) or pass --init-from CKPT");
      const fs::path file = fs::is_directory(init) ? resolve_checkpoint(init) : fs::path(init);
      const LoadReport rep =
          load_model_weights(*model, load_tensor_file(file), /*strict=*/false, file.string());
      msg << "init from " << file.string() << ": " << rep.str() << "\n";
    }
  }
  Rng rng(0);
  rng.set_state(st.rng);

  // Low-bit recipe. Calibration draws its batches from a loader of its own (same data, its own
  // seed) so the training batches of a run do not depend on whether it calibrated.
  DataLoader calib_loader(train_ds, dcfg, tc.batch, /*train=*/true, tc.seed ^ 0xCA1Bu);
  const BatchSource calib_next = [&](Tensor& images) {
    Batch b;
    if (!calib_loader.next(b) && !calib_loader.next(b)) return false;
    images = b.images;
    return true;
  };
  if (o.resume.empty() && tc.calibrate_batches > 0) {
    const auto t0 = Clock::now();
    const int clips = calibrate_learned_clips(*model, calib_next, tc.calibrate_batches);
    const int used = reestimate_batch_norm(*model, calib_next, tc.calibrate_batches);
    msg << "calibrated " << clips << " learned clips and re-estimated BN over " << used
        << " batches in " << std::chrono::duration<double>(Clock::now() - t0).count() << " s\n";
  }
  std::shared_ptr<SegmentationModel> teacher;
  if (!tc.teacher.empty()) {
    BFCN_CHECK_CONFIG(fs::exists(tc.teacher), src, ": train.teacher: '", tc.teacher,
                      "' does not exist; train the FP32 teacher first");
    teacher = load_model_from_checkpoint(tc.teacher).model;
    teacher->eval();
    BFCN_CHECK_CONFIG(teacher->n_classes() == model->n_classes(), src, ": train.teacher has ",
                      teacher->n_classes(), " classes, the model ", model->n_classes());
    msg << "distilling from " << tc.teacher << " (" << (tc.distill_mse ? "mse" : "kl")
        << ", weight " << tc.distill_weight << ", T " << tc.distill_temperature << ")\n";
  }

  // Every rank starts from rank 0's weights and BN statistics (after init_from, resume or
  // calibration), so the replicas are identical before the first step.
  {
    std::vector<Tensor> state;
    for (const auto& [name, p] : model->named_parameters()) state.push_back(p.value());
    for (const auto& [name, b] : model->named_buffers()) state.push_back(b);
    broadcast_tensors(comm, state);
  }
  // Synchronised BN for the training steps only (installed on every rank or none).
  struct BnSyncScope {
    explicit BnSyncScope(bool on, Communicator& c) : active(on) {
      if (on) set_batch_norm_sync([&c](double* d, size_t n) { c.allreduce_sum(d, n); });
    }
    ~BnSyncScope() {
      if (active) set_batch_norm_sync({});
    }
    bool active;
  } bn_sync(tc.sync_bn && ranks > 1, comm);
  // Debug builds (and BFCN_CHECK_REPLICAS=1, as the MPI tests set) verify after every step that
  // all ranks hold bit-identical parameters.
#ifdef NDEBUG
  const bool check_replicas = ranks > 1 && std::getenv("BFCN_CHECK_REPLICAS") != nullptr;
#else
  const bool check_replicas = ranks > 1;
#endif
  GradientReducer reducer(comm, opt->params(),
                          static_cast<size_t>(tc.grad_bucket_mb * double(1 << 20)),
                          tc.grad_overlap);

  if (root) {
    fs::create_directories(o.out_dir);
    std::ofstream f(o.out_dir / "config.json");
    BFCN_CHECK_IO(f.good(), (o.out_dir / "config.json").string(), ": cannot write");
    f << cfg.dump(2) << "\n";
  }
  // Only rank 0 keeps the metrics log (the others write nothing).
  std::unique_ptr<MetricsLog> log_file;
  if (root)
    log_file = std::make_unique<MetricsLog>(o.out_dir / "metrics.jsonl",
                                            o.resume.empty() ? -1 : st.iteration);
  auto log_line = [&](const json& j) {
    if (log_file) log_file->log(j);
  };

  const bool bar = o.progress >= 0 ? o.progress == 1 : isatty(STDERR_FILENO) == 1;
  TrainResult res;
  res.iterations = total;
  res.best_miou = st.best_miou;
  msg << "training " << cfg.value("name", std::string("model")) << " for " << total
      << " iterations (batch " << tc.batch << ", " << loader.batches_per_epoch()
      << " batches/epoch, " << omp_get_max_threads() << " threads) → " << o.out_dir.string()
      << "\n";
  if (ranks > 1)
    msg << "data parallel: " << comm.describe() << ", " << tc.batch / ranks
        << " samples per rank per step, " << omp_get_max_threads() << " threads per rank, BN "
        << (tc.sync_bn ? "synchronised" : "per rank") << ", gradients in " << reducer.buckets()
        << " buckets of <= " << tc.grad_bucket_mb << " MB, "
        << (tc.grad_overlap ? "overlapped with backward" : "reduced after backward") << "\n";

  auto save = [&](int64_t it) {
    res.last_checkpoint = o.out_dir / "last.h5";
    if (!root) return;
    const auto ls = loader.state();
    st.iteration = it;
    st.epoch = ls.epoch;
    st.loader_position = ls.position;
    st.rng = rng.state();
    const fs::path file = o.out_dir / ("ckpt_" + std::to_string(it) + ".h5");
    save_checkpoint(file, *model, opt.get(), st, cfg);
    publish_as(file, o.out_dir / "last.h5");
    prune_checkpoints(o.out_dir, tc.keep_last);
  };

  model->train();
  const auto t_start = Clock::now();
  auto t_log = t_start;
  int64_t it = st.iteration, it_log = it, it_start = it;
  Batch batch;
  auto run_validation = [&] {
    const Validation v = validate(*model, val_loader, comm);
    res.final_miou = v.miou;
    log_line({{"iter", it},
              {"val_miou", v.miou},
              {"val_pixel_acc", v.pixel_acc},
              {"val_per_class_iou", v.per_class}});
    if (bar && it > it_start) msg << "\n";  // end the progress-bar line
    msg << "validation at " << it << ": mIoU " << v.miou << "  pixel acc " << v.pixel_acc << "\n";
    if (std::isfinite(v.miou) && v.miou > st.best_miou) {
      st.best_miou = v.miou;
      st.best_iteration = it;
      res.best_miou = v.miou;
      const auto ls = loader.state();
      st.iteration = it;
      st.epoch = ls.epoch;
      st.loader_position = ls.position;
      st.rng = rng.state();
      if (root) save_checkpoint(o.out_dir / "best.h5", *model, opt.get(), st, cfg);
    }
    if (root) write_curves_png(o.out_dir / "curves.png", log_file->losses(), log_file->val_miou());
  };
  if (tc.eval_at_start && it == 0) run_validation();
  double loss_sum = 0;  // over the iterations since the last log line: one step's loss is noisy
  int64_t loss_n = 0;
  while (it < total) {
    if (!loader.next(batch)) BFCN_CHECK(loader.next(batch), "data loader returned an empty epoch");
    const double lr = lr_at(tc.schedule, tc.lr, it, total);
    Var logits = model->forward(Var(batch.images));
    Var loss = softmax_cross_entropy(logits, batch.labels, 255);
    if (teacher && tc.distill_weight > 0) {
      Tensor t_logits;
      {
        NoGradGuard ng;
        t_logits = teacher->forward(Var(batch.images)).value();
      }
      Var d = tc.distill_mse ? mean(mul(sub(logits, Var(t_logits)), sub(logits, Var(t_logits))))
                             : distill_kl(logits, t_logits, float(tc.distill_temperature));
      loss = add(loss, scale(d, float(tc.distill_weight)));
    }
    float loss_v = it + 1 == o.fault_nan_at ? std::nanf("") : loss.value().item();
    bool stop_now = g_stop.load();
    if (ranks > 1) {
      // One small allreduce per step: the mean loss (a NaN on any rank reaches all, so all stop
      // together) and the stop requests (SIGINT/SIGTERM on any rank stops every rank).
      double step_info[2] = {loss_v, stop_now ? 1.0 : 0.0};
      comm.allreduce_sum(step_info, 2);
      loss_v = static_cast<float>(step_info[0] / ranks);
      stop_now = step_info[1] > 0;
    }
    BFCN_CHECK(std::isfinite(loss_v), "training diverged: loss is ", loss_v, " at iteration ",
               it + 1, "; last good checkpoint: ",
               res.last_checkpoint.empty() ? std::string("none") : res.last_checkpoint.string(),
               " (try a lower train.lr or train.grad_clip)");
    opt->zero_grad();
    reducer.backward(loss);  // loss.backward(), gradients averaged over the ranks
    logits = Var();
    loss = Var();
    if (tc.grad_clip > 0) clip_grad_norm(opt->params(), tc.grad_clip);
    opt->step(lr);
    if (check_replicas) check_replicas_identical(comm, opt->params(), it + 1);
    ++it;
    res.last_loss = loss_v;
    loss_sum += loss_v;
    ++loss_n;

    const bool stop = (ranks > 1 ? stop_now : g_stop.load()) || it == o.stop_at;
    const bool last = it == total;
    if (it % tc.log_interval == 0 || last || stop) {
      const double dt = std::chrono::duration<double>(Clock::now() - t_log).count();
      const double img_s = dt > 0 ? static_cast<double>((it - it_log) * tc.batch) / dt : 0.0;
      t_log = Clock::now();
      it_log = it;
      const double loss_mean = loss_sum / static_cast<double>(loss_n);
      loss_sum = 0;
      loss_n = 0;
      log_line({{"iter", it},
                {"loss", loss_mean},
                {"loss_last", loss_v},
                {"lr", lr},
                {"img_s", img_s},
                {"epoch", loader.state().epoch}});
      const double el = std::chrono::duration<double>(Clock::now() - t_start).count();
      const double eta = el / static_cast<double>(it - it_start) * static_cast<double>(total - it);
      char line[256];
      std::snprintf(line, sizeof line, "it %lld/%lld  loss %.4f  lr %.3g  %.1f img/s  ETA %s",
                    static_cast<long long>(it), static_cast<long long>(total), loss_mean, lr, img_s,
                    fmt_duration(eta).c_str());
      if (!root) {
      } else if (bar) {
        const int width = 24;
        const int filled = static_cast<int>(width * it / total);
        std::cerr << "\r[" << std::string(filled, '#') << std::string(width - filled, ' ') << "] "
                  << line << "   " << std::flush;
      } else {
        std::cerr << line << "\n";
      }
    }
    if ((tc.eval_interval > 0 && it % tc.eval_interval == 0) || last) run_validation();
    if ((tc.checkpoint_interval > 0 && it % tc.checkpoint_interval == 0) || last || stop) save(it);
    if (stop && !last) {
      res.interrupted = true;
      break;
    }
  }
  if (bar) msg << "\n";
  if (it == total && !res.interrupted && tc.bn_recalib_end_batches > 0) {
    const int used = reestimate_batch_norm(*model, calib_next, tc.bn_recalib_end_batches);
    model->train();
    msg << "re-estimated BN over " << used << " batches after training\n";
    run_validation();
    save(it);
  }
  if (root && !log_file->losses().empty() && !fs::exists(o.out_dir / "curves.png"))
    write_curves_png(o.out_dir / "curves.png", log_file->losses(), log_file->val_miou());
  res.iteration = it;
  return res;
}

}  // namespace bfcn
