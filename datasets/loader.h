// DataLoader: batches from a SegDataset on worker threads with a bounded prefetch queue.
// Determinism: the epoch's order is a shuffle drawn from (seed, epoch) and each sample's
// augmentation from its own stream forked from (seed, epoch, sample index), so the batches are
// identical for any worker count and after state()/set_state(). A worker's exception is handed
// to next() at that batch's position (it names the file); nothing is skipped and nothing hangs.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/tensor.h"
#include "datasets/dataset.h"

namespace bfcn {

struct Batch {
  Tensor images;  // f32 [N,3,H,W], normalised with the config's mean/std
  Tensor labels;  // u8 [N,H,W], 255 = ignore
  std::vector<std::string> ids;
};

class DataLoader {
 public:
  // train=true: shuffle each epoch, augment, drop the last partial batch.
  // train=false: dataset order, no random transforms, last partial batch kept; images of
  // different sizes cannot share a batch (use batch 1 for full-size evaluation).
  DataLoader(std::shared_ptr<const SegDataset> ds, const DataConfig& cfg, int batch, bool train,
             uint64_t seed);
  ~DataLoader();
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  // The next batch; false at the end of an epoch (the next call starts the next epoch).
  bool next(Batch& out);

  struct State {
    int64_t epoch = 0;
    int64_t position = 0;  // batches already returned in this epoch
  };
  State state() const { return {epoch_, position_}; }
  void set_state(const State& st);
  int64_t batches_per_epoch() const;
  const SegDataset& dataset() const { return *ds_; }

  // Data-parallel training: this loader returns only part `rank` of `count` of every batch (batch
  // b's samples [rank*batch/count, (rank+1)*batch/count) of the same epoch order), so the ranks'
  // parts together are exactly the batch one loader would return; positions still count whole
  // batches, so state() means the same for any count. Training loaders only; batch % count == 0.
  // Call before the first next().
  void set_shard(int rank, int count);

  // Sample indices in the order epoch `epoch` visits them.
  std::vector<size_t> epoch_order(int64_t epoch) const;
  // Builds batch `b` of epoch `epoch` on the calling thread (what workers run).
  Batch make_batch(int64_t epoch, int64_t b, const std::vector<size_t>& order) const;

 private:
  struct Result {
    Batch batch;
    std::exception_ptr error;
  };
  void start_workers();
  void stop_workers();
  void worker_loop();

  std::shared_ptr<const SegDataset> ds_;
  DataConfig cfg_;
  int batch_;
  int shard_rank_ = 0, shard_count_ = 1;
  bool train_;
  uint64_t seed_;
  int64_t epoch_ = 0, position_ = 0;

  std::vector<size_t> order_;  // of epoch order_epoch_; read by workers, written when stopped
  int64_t order_epoch_ = -1;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<int64_t, Result> ready_;
  int64_t next_task_ = 0;  // next batch a worker takes
  bool stop_ = false, running_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace bfcn
