#include "datasets/loader.h"

#include <cstring>

#include "core/error.h"
#include "core/rng.h"
#include "datasets/transforms.h"

namespace bfcn {

DataLoader::DataLoader(std::shared_ptr<const SegDataset> ds, const DataConfig& cfg, int batch,
                       bool train, uint64_t seed)
    : ds_(std::move(ds)), cfg_(cfg), batch_(batch), train_(train), seed_(seed) {
  BFCN_CHECK(ds_ != nullptr, "DataLoader: expected a dataset, but got null");
  BFCN_CHECK(batch >= 1, "DataLoader: batch must be >= 1, but got ", batch);
  BFCN_CHECK(!train || ds_->size() >= static_cast<size_t>(batch), "DataLoader: ", ds_->describe(),
             " has ", ds_->size(), " samples, fewer than one batch of ", batch,
             " (training drops the last partial batch)");
}

DataLoader::~DataLoader() { stop_workers(); }

void DataLoader::set_shard(int rank, int count) {
  BFCN_CHECK(train_, "DataLoader::set_shard: only training loaders are sharded");
  BFCN_CHECK(count >= 1 && rank >= 0 && rank < count && batch_ % count == 0,
             "DataLoader::set_shard: expected 0 <= rank < count dividing the batch ", batch_,
             ", but got rank ", rank, " of ", count);
  stop_workers();
  shard_rank_ = rank;
  shard_count_ = count;
}

int64_t DataLoader::batches_per_epoch() const {
  const auto n = static_cast<int64_t>(ds_->size());
  return train_ ? n / batch_ : (n + batch_ - 1) / batch_;
}

std::vector<size_t> DataLoader::epoch_order(int64_t epoch) const {
  std::vector<size_t> order(ds_->size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  if (train_) {
    Rng rng = Rng(seed_).fork(2 * static_cast<uint64_t>(epoch));
    for (size_t i = order.size(); i > 1; --i)  // Fisher-Yates
      std::swap(order[i - 1], order[static_cast<size_t>(rng.randint(0, static_cast<int64_t>(i)))]);
  }
  return order;
}

Batch DataLoader::make_batch(int64_t epoch, int64_t b, const std::vector<size_t>& order) const {
  const size_t part = static_cast<size_t>(batch_ / shard_count_);
  const size_t begin = static_cast<size_t>(b) * batch_ + static_cast<size_t>(shard_rank_) * part;
  const size_t end = std::min(order.size(), begin + part);
  BFCN_ASSERT(begin < end);
  const Rng epoch_rng = Rng(seed_).fork(2 * static_cast<uint64_t>(epoch) + 1);
  Batch out;
  int h = 0, w = 0;
  for (size_t k = begin; k < end; ++k) {
    const size_t index = order[k];
    RawSample s = ds_->load(index);
    if (train_) {
      Rng rng = epoch_rng.fork(index);
      augment_sample(s, cfg_.augment, cfg_.mean, rng);
    }
    const int64_t n = static_cast<int64_t>(end - begin), i = static_cast<int64_t>(k - begin);
    if (k == begin) {
      h = s.image.height;
      w = s.image.width;
      out.images = Tensor::empty({n, 3, h, w});
      out.labels = Tensor::empty({n, h, w}, DType::u8);
    }
    BFCN_CHECK(s.image.height == h && s.image.width == w, "DataLoader: cannot batch '", s.id, "' (",
               s.image.width, "x", s.image.height, ") with '", out.ids.front(), "' (", w, "x", h,
               "); images of different sizes need batch 1 (or a crop in training)");
    normalize_image(s.image, cfg_.mean, cfg_.std, out.images.f32() + i * 3 * h * w);
    std::memcpy(out.labels.data<uint8_t>() + i * h * w, s.label.data.data(),
                static_cast<size_t>(h) * w);
    out.ids.push_back(std::move(s.id));
  }
  return out;
}

void DataLoader::worker_loop() {
  const int64_t nb = batches_per_epoch();
  for (;;) {
    int64_t b;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock,
               [&] { return stop_ || next_task_ >= nb || next_task_ < position_ + cfg_.prefetch; });
      if (stop_ || next_task_ >= nb) return;
      b = next_task_++;
    }
    Result r;
    try {
      r.batch = make_batch(epoch_, b, order_);
    } catch (...) {
      r.error = std::current_exception();
    }
    std::lock_guard<std::mutex> lock(mu_);
    ready_[b] = std::move(r);
    cv_.notify_all();
  }
}

void DataLoader::start_workers() {
  stop_workers();
  next_task_ = position_;
  stop_ = false;
  running_ = true;
  for (int i = 0; i < cfg_.workers; ++i) threads_.emplace_back([this] { worker_loop(); });
}

void DataLoader::stop_workers() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
  threads_.clear();
  ready_.clear();
  running_ = false;
}

void DataLoader::set_state(const State& st) {
  BFCN_CHECK(st.epoch >= 0 && st.position >= 0 && st.position <= batches_per_epoch(),
             "DataLoader::set_state: expected epoch >= 0 and position in [0, ", batches_per_epoch(),
             "], but got epoch ", st.epoch, ", position ", st.position);
  stop_workers();
  epoch_ = st.epoch;
  position_ = st.position;
}

bool DataLoader::next(Batch& out) {
  const int64_t nb = batches_per_epoch();
  if (position_ >= nb) {
    stop_workers();
    ++epoch_;
    position_ = 0;
    return false;
  }
  if (order_epoch_ != epoch_) {
    stop_workers();
    order_ = epoch_order(epoch_);
    order_epoch_ = epoch_;
  }
  if (cfg_.workers == 0) {
    out = make_batch(epoch_, position_, order_);
    ++position_;
    return true;
  }
  if (!running_) start_workers();
  Result r;
  {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return ready_.count(position_) > 0; });
    auto it = ready_.find(position_);
    r = std::move(it->second);
    ready_.erase(it);
    ++position_;
  }
  cv_.notify_all();
  if (r.error) std::rethrow_exception(r.error);
  out = std::move(r.batch);
  return true;
}

}  // namespace bfcn
