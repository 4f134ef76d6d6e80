// Training loop; see trainer.h. A TrainingRun builds and validates everything in its constructor
// (model, data, optimizer, resume or init, calibration, teacher, replicas, output files), then
// run() steps. Order inside an iteration: step → log → validate → checkpoint, so a checkpoint at
// iteration i already counts the validation at i (best.h5 and metrics agree).
#include "train/trainer.h"

#include <omp.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <optional>
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

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
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

// The confusion matrices of all ranks summed into cm: [gt][pred] counts, then [gt] missed.
void allreduce_confusion(ConfusionMatrix& cm, int nc, Communicator& comm) {
  std::vector<int64_t> counts;
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
    allreduce_confusion(cm, nc, comm);
  }
  model.train();
  const Metrics m = compute_metrics(cm);
  const json j = metrics_to_json(m, names);
  return {m.miou, m.pixel_acc, j.at("per_class_iou")};
}

// Synchronised BN for the training steps only (installed on every rank or none).
class BnSyncScope {
 public:
  BnSyncScope(bool on, Communicator& c) : active_(on) {
    if (on) set_batch_norm_sync([&c](double* d, size_t n) { c.allreduce_sum(d, n); });
  }
  ~BnSyncScope() {
    if (active_) set_batch_norm_sync({});
  }
  BnSyncScope(const BnSyncScope&) = delete;
  BnSyncScope& operator=(const BnSyncScope&) = delete;

 private:
  bool active_;
};

// One run of run_training. Data parallel (mpirun -np N): each rank takes batch/N samples of every
// global batch; rank 0 alone prints and writes files.
class TrainingRun {
 public:
  explicit TrainingRun(const TrainOptions& o);
  TrainResult run();

 private:
  // Set-up, in this order (the constructor).
  void build_model_and_data();
  void resume_or_init();
  void calibrate();
  void load_teacher();
  void broadcast_initial_state();
  void open_outputs();
  void announce() const;
  // The step loop.
  bool step(const Batch& batch, double lr, float& loss_v);
  Var loss_of(const Batch& batch, Var& logits) const;
  void log_progress(double lr, float loss_last);
  void print_progress(double lr, double loss_mean, double img_s) const;
  void run_validation();
  void capture_state();
  void save();
  void recalibrate_at_end();

  const TrainOptions& o_;
  json cfg_;  // the resolved config, with the init_from this run used
  const std::string& src_;
  TrainConfig tc_;
  Communicator& comm_;
  const int ranks_;
  const bool root_;
  std::ostream quiet_{nullptr};
  std::ostream& msg_;  // std::cerr on rank 0, nothing elsewhere

  std::shared_ptr<SegmentationModel> model_, teacher_;
  DataConfig dcfg_;
  std::shared_ptr<const SegDataset> train_ds_, val_ds_;
  std::unique_ptr<DataLoader> loader_, val_loader_, calib_loader_;
  BatchSource calib_next_;
  int64_t total_ = 0;
  std::unique_ptr<Optimizer> opt_;
  TrainState st_;
  Rng rng_{0};
  std::optional<BnSyncScope> bn_sync_;
  bool check_replicas_ = false;
  std::unique_ptr<GradientReducer> reducer_;
  std::unique_ptr<MetricsLog> log_file_;  // rank 0 only
  bool bar_ = false;
  TrainResult res_;

  Clock::time_point t_start_, t_log_;
  int64_t it_ = 0, it_log_ = 0, it_start_ = 0;
  double loss_sum_ = 0;  // over the iterations since the last log line: one step's loss is noisy
  int64_t loss_n_ = 0;
};

TrainingRun::TrainingRun(const TrainOptions& o)
    : o_(o),
      cfg_(o.config),
      src_(o.source),
      tc_(parse_train_config(cfg_.at("train"))),
      comm_(world()),
      ranks_(comm_.size()),
      root_(comm_.is_root()),
      msg_(root_ ? std::cerr : quiet_) {
  // config.json (and each checkpoint's config) names the weights this run started from.
  if (!o.init_from.empty() && o.resume.empty()) cfg_["init_from"] = o.init_from.string();
  const int threads = o.threads >= 0 ? o.threads : tc_.threads;
  if (threads > 0) omp_set_num_threads(threads);
  BFCN_CHECK_CONFIG(tc_.batch % ranks_ == 0, src_, ": train.batch ", tc_.batch,
                    " is not divisible by the ", ranks_,
                    " MPI ranks (train.batch is the global batch; each rank takes train.batch / ",
                    ranks_, "); use a multiple of ", ranks_, " or another -np");
  build_model_and_data();
  resume_or_init();
  calibrate();
  load_teacher();
  broadcast_initial_state();
  bn_sync_.emplace(tc_.sync_bn && ranks_ > 1, comm_);
  // Debug builds (and BFCN_CHECK_REPLICAS=1, as the MPI tests set) verify after every step that
  // all ranks hold bit-identical parameters.
#ifdef NDEBUG
  check_replicas_ = ranks_ > 1 && std::getenv("BFCN_CHECK_REPLICAS") != nullptr;
#else
  check_replicas_ = ranks_ > 1;
#endif
  reducer_ = std::make_unique<GradientReducer>(
      comm_, opt_->params(), static_cast<size_t>(tc_.grad_bucket_mb * double(1 << 20)),
      tc_.grad_overlap);
  open_outputs();
  announce();
}

// Model, datasets, loaders and optimizer, each checked against the others.
void TrainingRun::build_model_and_data() {
  model_ = with_source(src_, [&] { return build_model(cfg_.at("model"), tc_.seed, "model"); });
  dcfg_ = with_source(src_, [&] { return DataConfig::from_json(cfg_.at("data"), "data"); });
  train_ds_ = make_dataset(dcfg_, dcfg_.train_split);
  val_ds_ = make_dataset(dcfg_, dcfg_.val_split);
  BFCN_CHECK_CONFIG(train_ds_->n_classes() == model_->n_classes(), src_, ": model.n_classes is ",
                    model_->n_classes(), " but the dataset (", train_ds_->describe(), ") has ",
                    train_ds_->n_classes(), " classes");
  loader_ = std::make_unique<DataLoader>(train_ds_, dcfg_, tc_.batch, /*train=*/true, tc_.seed);
  if (ranks_ > 1) loader_->set_shard(comm_.rank(), ranks_);
  val_loader_ = std::make_unique<DataLoader>(val_ds_, dcfg_, 1, /*train=*/false, tc_.seed);
  BFCN_CHECK_CONFIG(loader_->batches_per_epoch() > 0, src_, ": train.batch ", tc_.batch,
                    " is larger than the training split (", train_ds_->size(), " samples)");
  total_ = tc_.iterations > 0 ? tc_.iterations : tc_.epochs * loader_->batches_per_epoch();
  opt_ = make_optimizer(model_->named_parameters(), tc_.optim);
}

// --resume: weights, optimizer, loader position and RNG from the checkpoint. Otherwise the
// weights of --init-from or the config's init_from (non-strict), if any.
void TrainingRun::resume_or_init() {
  st_.rng = Rng(tc_.seed ^ 0x7472u).state();
  if (!o_.resume.empty()) {
    st_ = load_checkpoint(o_.resume, *model_, opt_.get());
    loader_->set_state({st_.epoch, st_.loader_position});
    msg_ << "resumed from " << o_.resume.string() << " at iteration " << st_.iteration << "\n";
  } else {
    const std::string init =
        !o_.init_from.empty() ? o_.init_from.string() : cfg_.at("init_from").get<std::string>();
    if (!init.empty()) {
      BFCN_CHECK_CONFIG(fs::exists(init), o_.init_from.empty() ? "init_from" : "--init-from", ": '",
                        init,
                        "' does not exist; train the checkpoint it names first (e.g. the FP32 "
                        "config of a fine-tuning recipe) or pass --init-from CKPT");
      const fs::path file = fs::is_directory(init) ? resolve_checkpoint(init) : fs::path(init);
      const LoadReport rep =
          load_model_weights(*model_, load_tensor_file(file), /*strict=*/false, file.string());
      msg_ << "init from " << file.string() << ": " << rep.str() << "\n";
    }
  }
  rng_.set_state(st_.rng);
}

// Low-bit recipe. Calibration draws its batches from a loader of its own (same data, its own
// seed) so the training batches of a run do not depend on whether it calibrated. The same source
// serves the BN re-estimation after training.
void TrainingRun::calibrate() {
  calib_loader_ =
      std::make_unique<DataLoader>(train_ds_, dcfg_, tc_.batch, /*train=*/true, tc_.seed ^ 0xCA1Bu);
  calib_next_ = [this](Tensor& images) {
    Batch b;
    if (!calib_loader_->next(b) && !calib_loader_->next(b)) return false;
    images = b.images;
    return true;
  };
  if (!o_.resume.empty() || tc_.calibrate_batches <= 0) return;
  const auto t0 = Clock::now();
  const int clips = calibrate_learned_clips(*model_, calib_next_, tc_.calibrate_batches);
  const int used = reestimate_batch_norm(*model_, calib_next_, tc_.calibrate_batches);
  msg_ << "calibrated " << clips << " learned clips and re-estimated BN over " << used
       << " batches in " << seconds_since(t0) << " s\n";
}

void TrainingRun::load_teacher() {
  if (tc_.teacher.empty()) return;
  BFCN_CHECK_CONFIG(fs::exists(tc_.teacher), src_, ": train.teacher: '", tc_.teacher,
                    "' does not exist; train the FP32 teacher first");
  teacher_ = load_model_from_checkpoint(tc_.teacher).model;
  teacher_->eval();
  BFCN_CHECK_CONFIG(teacher_->n_classes() == model_->n_classes(), src_, ": train.teacher has ",
                    teacher_->n_classes(), " classes, the model ", model_->n_classes());
  msg_ << "distilling from " << tc_.teacher << " (" << (tc_.distill_mse ? "mse" : "kl")
       << ", weight " << tc_.distill_weight << ", T " << tc_.distill_temperature << ")\n";
}

// Every rank starts from rank 0's weights and BN statistics (after init_from, resume or
// calibration), so the replicas are identical before the first step.
void TrainingRun::broadcast_initial_state() {
  std::vector<Tensor> state;
  for (const auto& [name, p] : model_->named_parameters()) state.push_back(p.value());
  for (const auto& [name, b] : model_->named_buffers()) state.push_back(b);
  broadcast_tensors(comm_, state);
}

// config.json and the metrics log (continued from the checkpoint's iteration on resume).
void TrainingRun::open_outputs() {
  if (!root_) return;
  fs::create_directories(o_.out_dir);
  std::ofstream f(o_.out_dir / "config.json");
  BFCN_CHECK_IO(f.good(), (o_.out_dir / "config.json").string(), ": cannot write");
  f << cfg_.dump(2) << "\n";
  log_file_ = std::make_unique<MetricsLog>(o_.out_dir / "metrics.jsonl",
                                           o_.resume.empty() ? -1 : st_.iteration);
}

void TrainingRun::announce() const {
  msg_ << "training " << cfg_.value("name", std::string("model")) << " for " << total_
       << " iterations (batch " << tc_.batch << ", " << loader_->batches_per_epoch()
       << " batches/epoch, " << omp_get_max_threads() << " threads) → " << o_.out_dir.string()
       << "\n";
  if (ranks_ > 1)
    msg_ << "data parallel: " << comm_.describe() << ", " << tc_.batch / ranks_
         << " samples per rank per step, " << omp_get_max_threads() << " threads per rank, BN "
         << (tc_.sync_bn ? "synchronised" : "per rank") << ", gradients in " << reducer_->buckets()
         << " buckets of <= " << tc_.grad_bucket_mb << " MB, "
         << (tc_.grad_overlap ? "overlapped with backward" : "reduced after backward") << "\n";
}

TrainResult TrainingRun::run() {
  bar_ = o_.progress >= 0 ? o_.progress == 1 : isatty(STDERR_FILENO) == 1;
  res_.iterations = total_;
  res_.best_miou = st_.best_miou;
  model_->train();
  t_start_ = t_log_ = Clock::now();
  it_ = it_log_ = it_start_ = st_.iteration;
  if (tc_.eval_at_start && it_ == 0) run_validation();
  Batch batch;
  while (it_ < total_) {
    if (!loader_->next(batch))
      BFCN_CHECK(loader_->next(batch), "data loader returned an empty epoch");
    const double lr = lr_at(tc_.schedule, tc_.lr, it_, total_);
    float loss_v = 0;
    const bool stop_requested = step(batch, lr, loss_v);
    const bool stop = stop_requested || it_ == o_.stop_at;
    const bool last = it_ == total_;
    if (it_ % tc_.log_interval == 0 || last || stop) log_progress(lr, loss_v);
    if ((tc_.eval_interval > 0 && it_ % tc_.eval_interval == 0) || last) run_validation();
    if ((tc_.checkpoint_interval > 0 && it_ % tc_.checkpoint_interval == 0) || last || stop) save();
    if (stop && !last) {
      res_.interrupted = true;
      break;
    }
  }
  if (bar_) msg_ << "\n";
  if (it_ == total_ && !res_.interrupted && tc_.bn_recalib_end_batches > 0) recalibrate_at_end();
  if (root_ && !log_file_->losses().empty() && !fs::exists(o_.out_dir / "curves.png"))
    write_curves_png(o_.out_dir / "curves.png", log_file_->losses(), log_file_->val_miou());
  res_.iteration = it_;
  return res_;
}

// The training loss of a batch: cross-entropy, plus the distillation term with a teacher.
Var TrainingRun::loss_of(const Batch& batch, Var& logits) const {
  logits = model_->forward(Var(batch.images));
  Var loss = softmax_cross_entropy(logits, batch.labels, 255);
  if (!teacher_ || tc_.distill_weight <= 0) return loss;
  Tensor t_logits;
  {
    NoGradGuard ng;
    t_logits = teacher_->forward(Var(batch.images)).value();
  }
  Var d = tc_.distill_mse ? mean(mul(sub(logits, Var(t_logits)), sub(logits, Var(t_logits))))
                          : distill_kl(logits, t_logits, float(tc_.distill_temperature));
  return add(loss, scale(d, float(tc_.distill_weight)));
}

// One optimizer step (forward, loss, backward with the gradients averaged over the ranks, clip,
// update); loss_v gets the step's loss (the mean over the ranks). Returns whether a stop was
// requested (SIGINT/SIGTERM on any rank). A NaN/Inf loss throws before the weights change.
bool TrainingRun::step(const Batch& batch, double lr, float& loss_v) {
  Var logits;
  Var loss = loss_of(batch, logits);
  loss_v = it_ + 1 == o_.fault_nan_at ? std::nanf("") : loss.value().item();
  bool stop_now = g_stop.load();
  if (ranks_ > 1) {
    // One small allreduce per step: the mean loss (a NaN on any rank reaches all, so all stop
    // together) and the stop requests (SIGINT/SIGTERM on any rank stops every rank).
    double step_info[2] = {loss_v, stop_now ? 1.0 : 0.0};
    comm_.allreduce_sum(step_info, 2);
    loss_v = static_cast<float>(step_info[0] / ranks_);
    stop_now = step_info[1] > 0;
  }
  BFCN_CHECK(std::isfinite(loss_v), "training diverged: loss is ", loss_v, " at iteration ",
             it_ + 1, "; last good checkpoint: ",
             res_.last_checkpoint.empty() ? std::string("none") : res_.last_checkpoint.string(),
             " (try a lower train.lr or train.grad_clip)");
  opt_->zero_grad();
  reducer_->backward(loss);  // loss.backward(), gradients averaged over the ranks
  logits = Var();
  loss = Var();
  if (tc_.grad_clip > 0) clip_grad_norm(opt_->params(), tc_.grad_clip);
  opt_->step(lr);
  if (check_replicas_) check_replicas_identical(comm_, opt_->params(), it_ + 1);
  ++it_;
  res_.last_loss = loss_v;
  loss_sum_ += loss_v;
  ++loss_n_;
  return ranks_ > 1 ? stop_now : g_stop.load();
}

// A metrics line (the mean loss since the last one) and the console line or progress bar.
void TrainingRun::log_progress(double lr, float loss_last) {
  const double dt = seconds_since(t_log_);
  const double img_s = dt > 0 ? static_cast<double>((it_ - it_log_) * tc_.batch) / dt : 0.0;
  t_log_ = Clock::now();
  it_log_ = it_;
  const double loss_mean = loss_sum_ / static_cast<double>(loss_n_);
  loss_sum_ = 0;
  loss_n_ = 0;
  if (log_file_)
    log_file_->log({{"iter", it_},
                    {"loss", loss_mean},
                    {"loss_last", loss_last},
                    {"lr", lr},
                    {"img_s", img_s},
                    {"epoch", loader_->state().epoch}});
  if (root_) print_progress(lr, loss_mean, img_s);
}

void TrainingRun::print_progress(double lr, double loss_mean, double img_s) const {
  const double el = seconds_since(t_start_);
  const double eta = el / static_cast<double>(it_ - it_start_) * static_cast<double>(total_ - it_);
  char line[256];
  std::snprintf(line, sizeof line, "it %lld/%lld  loss %.4f  lr %.3g  %.1f img/s  ETA %s",
                static_cast<long long>(it_), static_cast<long long>(total_), loss_mean, lr, img_s,
                fmt_duration(eta).c_str());
  if (bar_) {
    const int width = 24;
    const int filled = static_cast<int>(width * it_ / total_);
    std::cerr << "\r[" << std::string(filled, '#') << std::string(width - filled, ' ') << "] "
              << line << "   " << std::flush;
  } else {
    std::cerr << line << "\n";
  }
}

// Validation metrics to the log and the console; a new best mIoU writes best.h5; curves.png is
// redrawn.
void TrainingRun::run_validation() {
  const Validation v = validate(*model_, *val_loader_, comm_);
  res_.final_miou = v.miou;
  if (log_file_)
    log_file_->log({{"iter", it_},
                    {"val_miou", v.miou},
                    {"val_pixel_acc", v.pixel_acc},
                    {"val_per_class_iou", v.per_class}});
  if (bar_ && it_ > it_start_) msg_ << "\n";  // end the progress-bar line
  msg_ << "validation at " << it_ << ": mIoU " << v.miou << "  pixel acc " << v.pixel_acc << "\n";
  if (std::isfinite(v.miou) && v.miou > st_.best_miou) {
    st_.best_miou = v.miou;
    st_.best_iteration = it_;
    res_.best_miou = v.miou;
    capture_state();
    if (root_) save_checkpoint(o_.out_dir / "best.h5", *model_, opt_.get(), st_, cfg_);
  }
  if (root_)
    write_curves_png(o_.out_dir / "curves.png", log_file_->losses(), log_file_->val_miou());
}

// The resume point of the current iteration: loader position and RNG.
void TrainingRun::capture_state() {
  const auto ls = loader_->state();
  st_.iteration = it_;
  st_.epoch = ls.epoch;
  st_.loader_position = ls.position;
  st_.rng = rng_.state();
}

// ckpt_<iter>.h5, published as last.h5; ckpt_*.h5 files beyond train.keep_last are deleted.
void TrainingRun::save() {
  res_.last_checkpoint = o_.out_dir / "last.h5";
  if (!root_) return;
  capture_state();
  const fs::path file = o_.out_dir / ("ckpt_" + std::to_string(it_) + ".h5");
  save_checkpoint(file, *model_, opt_.get(), st_, cfg_);
  publish_as(file, o_.out_dir / "last.h5");
  prune_checkpoints(o_.out_dir, tc_.keep_last);
}

// BN statistics re-estimated with the final weights, then validated and saved again.
void TrainingRun::recalibrate_at_end() {
  const int used = reestimate_batch_norm(*model_, calib_next_, tc_.bn_recalib_end_batches);
  model_->train();
  msg_ << "re-estimated BN over " << used << " batches after training\n";
  run_validation();
  save();
}

}  // namespace

void request_training_stop() { g_stop.store(true); }

TrainResult run_training(const TrainOptions& o) {
  g_stop.store(false);
  return TrainingRun(o).run();
}

}  // namespace bfcn
