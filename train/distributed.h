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
#include <string>
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

  // Averages the gradients (float buffers) across ranks: they are packed into buckets of at most
  // bucket_bytes and each bucket is one MPI_Allreduce (sum), then scaled by 1/size. Every rank must
  // pass the same sizes in the same order.
  void allreduce_average(const std::vector<std::pair<float*, size_t>>& bufs,
                         size_t bucket_bytes = 4u << 20);
  // Element-wise sums across ranks, in place.
  void allreduce_sum(double* data, size_t n);
  void allreduce_sum(int64_t* data, size_t n);
  // Root's bytes overwrite every other rank's.
  void broadcast(void* data, size_t bytes, int root = 0);
  void barrier();
  // Ends every rank with this exit code (MPI_Abort): one rank's error must not leave the others
  // waiting in a collective. Single process: std::exit.
  [[noreturn]] void abort(int code);

  // Seconds spent inside gradient allreduce calls since the start (benchmarks).
  double allreduce_seconds() const { return allreduce_seconds_; }

 private:
  friend Communicator& world();
  Communicator();
  int rank_ = 0, size_ = 1;
  bool mpi_ = false;
  std::string describe_;
  std::vector<float> bucket_;
  double allreduce_seconds_ = 0;
};

// The process's communicator (MPI_COMM_WORLD when launched by mpirun/srun).
Communicator& world();

// Whether this binary was built with MPI (BFCN_MPI).
bool built_with_mpi();

// Averages every parameter gradient across ranks (a parameter without a gradient on this rank gets
// a zero one first, so all ranks reduce the same list). Each gradient becomes a fresh tensor: a
// leaf's gradient may share storage with another's (autograd hands the same dy to both inputs of
// an add), so averaging in place could scale one buffer twice.
void average_gradients(Communicator& comm, const std::vector<std::pair<std::string, Var>>& params);

// Rank 0's parameter values and buffers (BN running statistics) replace every rank's.
void broadcast_tensors(Communicator& comm, const std::vector<Tensor>& tensors);

// Throws Error naming the iteration unless every rank's parameter values are bit-identical to
// rank 0's (a hash broadcast from rank 0, mismatches counted with one allreduce).
void check_replicas_identical(Communicator& comm,
                              const std::vector<std::pair<std::string, Var>>& params,
                              int64_t iteration);

}  // namespace bfcn
