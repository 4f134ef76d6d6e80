// Data-parallel communication for `mpirun -np N bfcn train`: rank, size, bucketed gradient
// averaging, broadcast and small reductions over MPI_COMM_WORLD. One code path for the trainer:
// without MPI in the build, or when the process was not started by an MPI launcher, world() is a
// single rank and every collective is a no-op (broadcast, barrier) or the identity (reductions).
// MPI is initialised lazily on the first world() call, only when the environment shows an MPI
// launcher (OMPI_COMM_WORLD_SIZE, PMI_SIZE, PMIX_RANK), and finalised at exit, so plain runs and
// the test binaries never touch MPI.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "autograd/var.h"

namespace bfcn {

class Communicator {
 public:
  int rank() const { return rank_; }
  int size() const { return size_; }
  bool is_root() const { return rank_ == 0; }
  // "MPI (OpenMPI 4.1.4)" or "single process (built without MPI)".
  const std::string& describe() const { return describe_; }

  // Non-blocking in-place sums of float buffers across ranks (MPI_Iallreduce), for gradient
  // buckets: every rank must start the same sizes in the same order; a buffer may not be touched
  // until wait_all() has returned. poll() lets MPI move started sums along (OpenMPI progresses
  // non-blocking collectives only inside MPI calls). One rank: no-ops.
  void start_sum(float* data, size_t n);
  void poll();
  void wait_all();
  // Element-wise sums across ranks, in place.
  void allreduce_sum(double* data, size_t n);
  void allreduce_sum(int64_t* data, size_t n);
  // Root's bytes overwrite every other rank's.
  void broadcast(void* data, size_t bytes, int root = 0);
  void barrier();
  // Ends every rank with this exit code (MPI_Abort): one rank's error must not leave the others
  // waiting in a collective. Single process: std::exit.
  [[noreturn]] void abort(int code);

  // Seconds spent inside gradient reduction (GradientReducer: packing, MPI calls, waiting,
  // unpacking) since the start (benchmarks).
  double allreduce_seconds() const { return allreduce_seconds_; }
  void add_allreduce_seconds(double s) { allreduce_seconds_ += s; }

  ~Communicator();
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

 private:
  friend Communicator& world();
  Communicator();
  struct Requests;  // the MPI_Requests of the started sums (MPI types stay out of this header)
  int rank_ = 0, size_ = 1;
  bool mpi_ = false;
  std::string describe_;
  std::unique_ptr<Requests> requests_;
  double allreduce_seconds_ = 0;
};

// The process's communicator (MPI_COMM_WORLD when launched by mpirun/srun).
Communicator& world();

// Whether this binary was built with MPI (BFCN_MPI).
bool built_with_mpi();

// Averages the parameter gradients across ranks. The parameters are laid out once in buckets of
// at most bucket_bytes, in reverse order (the order the backward pass finishes them; a parameter
// larger than a bucket is a bucket of its own), and each bucket is one in-place MPI_Iallreduce
// (sum) of a packed copy, then scaled by 1/size into a fresh gradient tensor (a leaf's gradient
// may share storage with another's: autograd hands the same dy to both inputs of an add). A
// parameter without a gradient on this rank contributes zeros, so all ranks reduce the same list.
// With overlap, backward() hands Var::backward a hook that packs each gradient as soon as it is
// final and starts a bucket's sum once all of its gradients are in, while the rest of the backward
// pass runs; without, the same sums start after the pass. Buckets start in index order on every
// rank either way, so both give bit-identical gradients. One rank: backward() is loss.backward().
class GradientReducer {
 public:
  GradientReducer(Communicator& comm, std::vector<std::pair<std::string, Var>> params,
                  size_t bucket_bytes = 4u << 20, bool overlap = true);
  ~GradientReducer();
  GradientReducer(const GradientReducer&) = delete;
  GradientReducer& operator=(const GradientReducer&) = delete;

  // loss.backward(), with every parameter's gradient averaged across ranks on return.
  void backward(const Var& loss);
  size_t buckets() const { return buckets_.size(); }

 private:
  struct Bucket {
    std::vector<size_t> params;  // indices into params_, in packing order
    std::vector<float> data;
    size_t waiting = 0;  // parameters not packed yet in this step
  };
  void pack(size_t param);
  void start_ready_buckets();
  void finish();

  Communicator& comm_;
  std::vector<std::pair<std::string, Var>> params_;
  bool overlap_;
  std::vector<Bucket> buckets_;
  std::vector<size_t> bucket_of_, offset_of_;  // per parameter: its bucket, its place in it
  std::vector<char> packed_;                   // per parameter, this step
  std::unordered_map<const Node*, size_t> index_of_;
  size_t next_start_ = 0;  // the next bucket to start (all earlier ones have)
};

// Rank 0's parameter values and buffers (BN running statistics) replace every rank's.
void broadcast_tensors(Communicator& comm, const std::vector<Tensor>& tensors);

// Throws Error naming the iteration unless every rank's parameter values are bit-identical to
// rank 0's (a hash broadcast from rank 0, mismatches counted with one allreduce).
void check_replicas_identical(Communicator& comm,
                              const std::vector<std::pair<std::string, Var>>& params,
                              int64_t iteration);

}  // namespace bfcn
