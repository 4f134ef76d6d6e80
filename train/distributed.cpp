// See distributed.h. The MPI calls are compiled only with BFCN_HAVE_MPI; otherwise (and in a
// process not started by an MPI launcher) the communicator is one rank.
#include "train/distributed.h"

#include <chrono>
#include <cstdlib>
#include <cstring>

#include "core/error.h"

#if BFCN_HAVE_MPI
// The C API only: OpenMPI's and MPICH's deprecated C++ bindings need libraries we do not link.
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>
#endif

namespace bfcn {

namespace {

// An MPI launcher (OpenMPI's mpirun, Hydra/Slurm PMI, PMIx) started this process.
bool launched_by_mpi() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"})
    if (std::getenv(v) != nullptr) return true;
  return false;
}

#if BFCN_HAVE_MPI
void check_mpi(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  BFCN_CHECK(false, what, " failed: ", std::string(msg, static_cast<size_t>(len)));
}

void finalize_mpi() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}
#endif

}  // namespace

bool built_with_mpi() { return BFCN_HAVE_MPI != 0; }

Communicator::Communicator() {
#if BFCN_HAVE_MPI
  if (launched_by_mpi()) {
    int provided = 0;
    // Only the main thread calls MPI (OpenMP regions never do).
    check_mpi(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
    std::atexit(finalize_mpi);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    mpi_ = true;
    char version[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    MPI_Get_library_version(version, &len);
    std::string v(version, static_cast<size_t>(len));
    if (const size_t cut = v.find_first_of(",\n"); cut != std::string::npos) v.resize(cut);
    describe_ = "MPI, " + std::to_string(size_) + " ranks (" + v + ")";
    return;
  }
  describe_ = "single process (MPI built in, not launched by mpirun/srun)";
#else
  describe_ = launched_by_mpi()
                  ? "single process (built without MPI: reconfigure with -DBFCN_MPI=ON)"
                  : "single process (built without MPI)";
#endif
}

Communicator& world() {
  static Communicator c;
  return c;
}

void Communicator::allreduce_average(const std::vector<std::pair<float*, size_t>>& bufs,
                                     size_t bucket_bytes) {
  if (size_ == 1) return;
#if BFCN_HAVE_MPI
  const auto t0 = std::chrono::steady_clock::now();
  const size_t cap = std::max<size_t>(1, bucket_bytes / sizeof(float));
  const float inv = 1.0f / static_cast<float>(size_);
  size_t i = 0;  // next buffer to pack
  while (i < bufs.size()) {
    // A buffer larger than a bucket is reduced on its own, in place.
    if (bufs[i].second >= cap) {
      check_mpi(MPI_Allreduce(MPI_IN_PLACE, bufs[i].first, static_cast<int>(bufs[i].second),
                              MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD),
                "MPI_Allreduce (gradients)");
      for (size_t k = 0; k < bufs[i].second; ++k) bufs[i].first[k] *= inv;
      ++i;
      continue;
    }
    size_t j = i, total = 0;
    while (j < bufs.size() && bufs[j].second < cap && total + bufs[j].second <= cap)
      total += bufs[j++].second;
    bucket_.resize(total);
    size_t off = 0;
    for (size_t k = i; k < j; ++k) {
      std::memcpy(bucket_.data() + off, bufs[k].first, bufs[k].second * sizeof(float));
      off += bufs[k].second;
    }
    check_mpi(MPI_Allreduce(MPI_IN_PLACE, bucket_.data(), static_cast<int>(total), MPI_FLOAT,
                            MPI_SUM, MPI_COMM_WORLD),
              "MPI_Allreduce (gradients)");
    off = 0;
    for (size_t k = i; k < j; ++k) {
      for (size_t e = 0; e < bufs[k].second; ++e) bufs[k].first[e] = bucket_[off + e] * inv;
      off += bufs[k].second;
    }
    i = j;
  }
  allreduce_seconds_ +=
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
#else
  (void)bufs;
  (void)bucket_bytes;
#endif
}

void Communicator::allreduce_sum(double* data, size_t n) {
  if (size_ == 1) return;
#if BFCN_HAVE_MPI
  check_mpi(
      MPI_Allreduce(MPI_IN_PLACE, data, static_cast<int>(n), MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD),
      "MPI_Allreduce");
#else
  (void)data;
  (void)n;
#endif
}

void Communicator::allreduce_sum(int64_t* data, size_t n) {
  if (size_ == 1) return;
#if BFCN_HAVE_MPI
  check_mpi(
      MPI_Allreduce(MPI_IN_PLACE, data, static_cast<int>(n), MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD),
      "MPI_Allreduce");
#else
  (void)data;
  (void)n;
#endif
}

void Communicator::broadcast(void* data, size_t bytes, int root) {
  if (size_ == 1) return;
#if BFCN_HAVE_MPI
  check_mpi(MPI_Bcast(data, static_cast<int>(bytes), MPI_BYTE, root, MPI_COMM_WORLD), "MPI_Bcast");
#else
  (void)data;
  (void)bytes;
  (void)root;
#endif
}

void Communicator::barrier() {
#if BFCN_HAVE_MPI
  if (mpi_) MPI_Barrier(MPI_COMM_WORLD);
#endif
}

void Communicator::abort(int code) {
#if BFCN_HAVE_MPI
  if (mpi_ && size_ > 1) MPI_Abort(MPI_COMM_WORLD, code);
#endif
  std::exit(code);
}

void average_gradients(Communicator& comm, const std::vector<std::pair<std::string, Var>>& params) {
  if (comm.size() == 1) return;
  std::vector<std::pair<float*, size_t>> bufs;
  bufs.reserve(params.size());
  for (const auto& [name, p] : params) {
    Node& node = *p.node();
    Tensor fresh = node.grad.defined() ? node.grad.clone() : Tensor::zeros(p.shape());
    BFCN_CHECK(fresh.dtype() == DType::f32 && fresh.numel() == p.value().numel(),
               "average_gradients: gradient of '", name, "' has shape ", fresh.shape(),
               ", the parameter ", p.shape());
    node.grad = fresh;
    bufs.emplace_back(node.grad.f32(), static_cast<size_t>(node.grad.numel()));
  }
  comm.allreduce_average(bufs);
}

void broadcast_tensors(Communicator& comm, const std::vector<Tensor>& tensors) {
  if (comm.size() == 1) return;
  for (Tensor t : tensors)
    comm.broadcast(t.raw(), static_cast<size_t>(t.numel()) * dtype_size(t.dtype()));
}

void check_replicas_identical(Communicator& comm,
                              const std::vector<std::pair<std::string, Var>>& params,
                              int64_t iteration) {
  if (comm.size() == 1) return;
  uint64_t h = 1469598103934665603ull;  // FNV-1a over the parameter bytes
  for (const auto& [name, p] : params) {
    const auto* b = static_cast<const unsigned char*>(p.value().raw());
    const size_t nb = static_cast<size_t>(p.value().numel()) * dtype_size(p.value().dtype());
    for (size_t i = 0; i < nb; ++i) h = (h ^ b[i]) * 1099511628211ull;
  }
  uint64_t root_h = h;
  comm.broadcast(&root_h, sizeof root_h);
  int64_t mismatches = root_h == h ? 0 : 1;
  comm.allreduce_sum(&mismatches, 1);
  BFCN_CHECK(mismatches == 0, "data parallel: the parameters of ", mismatches, " of ", comm.size(),
             " ranks differ from rank 0's after iteration ", iteration, " (this rank's ",
             root_h == h ? "match" : "differ", ")");
}

}  // namespace bfcn
