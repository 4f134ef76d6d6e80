// See distributed.h. The MPI calls are compiled only with BFCN_HAVE_MPI; otherwise (and in a
// process not started by an MPI launcher) the communicator is one rank.
#include "train/distributed.h"

#include <omp.h>

#include <chrono>
#include <climits>
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

struct Communicator::Requests {
#if BFCN_HAVE_MPI
  std::vector<MPI_Request> started;
#endif
};

Communicator::~Communicator() = default;

Communicator::Communicator() : requests_(std::make_unique<Requests>()) {
#if BFCN_HAVE_MPI
  if (launched_by_mpi()) {
    int provided = 0;
    // Only the main thread calls MPI: the trainer's thread, between OpenMP regions (the gradient
    // hook of GradientReducer runs between ops; data-loader threads never call MPI).
    check_mpi(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
    BFCN_CHECK(provided >= MPI_THREAD_FUNNELED,
               "MPI_Init_thread: the MPI library provides thread "
               "level ",
               provided, ", below MPI_THREAD_FUNNELED (", MPI_THREAD_FUNNELED,
               ") which OpenMP threads beside MPI calls need");
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

void Communicator::start_sum(float* data, size_t n) {
  if (size_ == 1) return;
#if BFCN_HAVE_MPI
  BFCN_CHECK(n <= static_cast<size_t>(INT_MAX), "start_sum: ", n, " floats exceed MPI's int count");
  MPI_Request r = MPI_REQUEST_NULL;
  check_mpi(MPI_Iallreduce(MPI_IN_PLACE, data, static_cast<int>(n), MPI_FLOAT, MPI_SUM,
                           MPI_COMM_WORLD, &r),
            "MPI_Iallreduce (gradients)");
  requests_->started.push_back(r);
#else
  (void)data;
  (void)n;
#endif
}

void Communicator::poll() {
#if BFCN_HAVE_MPI
  auto& r = requests_->started;
  if (r.empty()) return;
  int done = 0;
  check_mpi(MPI_Testall(static_cast<int>(r.size()), r.data(), &done, MPI_STATUSES_IGNORE),
            "MPI_Testall (gradients)");
  if (done) r.clear();
#endif
}

void Communicator::wait_all() {
#if BFCN_HAVE_MPI
  auto& r = requests_->started;
  if (r.empty()) return;
  check_mpi(MPI_Waitall(static_cast<int>(r.size()), r.data(), MPI_STATUSES_IGNORE),
            "MPI_Waitall (gradients)");
  r.clear();
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

GradientReducer::GradientReducer(Communicator& comm,
                                 std::vector<std::pair<std::string, Var>> params,
                                 size_t bucket_bytes, bool overlap)
    : comm_(comm), params_(std::move(params)), overlap_(overlap) {
  const size_t n = params_.size(), cap = std::max<size_t>(1, bucket_bytes / sizeof(float));
  bucket_of_.resize(n);
  offset_of_.resize(n);
  packed_.assign(n, 0);
  for (size_t k = n; k-- > 0;) {  // reverse order: the backward pass finishes the last first
    const auto& [name, p] = params_[k];
    BFCN_CHECK(p.value().dtype() == DType::f32, "GradientReducer: parameter '", name,
               "' is not float32");
    BFCN_CHECK(index_of_.emplace(p.node().get(), k).second, "GradientReducer: parameter '", name,
               "' is listed twice");
    const size_t numel = static_cast<size_t>(p.value().numel());
    // A new bucket when this one would overflow; a parameter of a bucket's size or more is alone.
    if (buckets_.empty() || buckets_.back().data.size() + numel > cap || numel >= cap)
      buckets_.emplace_back();
    Bucket& b = buckets_.back();
    bucket_of_[k] = buckets_.size() - 1;
    offset_of_[k] = b.data.size();
    b.params.push_back(k);
    b.data.resize(b.data.size() + numel);
  }
}

GradientReducer::~GradientReducer() {
  // An exception left sums running (the process is ending through Communicator::abort, as waiting
  // could hang on the other ranks): MPI may still write into the buckets, so they must outlive us.
  if (next_start_ > 0) {
    static std::vector<std::vector<float>> in_flight;
    for (Bucket& b : buckets_) in_flight.push_back(std::move(b.data));
  }
}

void GradientReducer::backward(const Var& loss) {
  if (comm_.size() == 1) {
    loss.backward();
    return;
  }
  std::fill(packed_.begin(), packed_.end(), 0);
  for (Bucket& b : buckets_) b.waiting = b.params.size();
  next_start_ = 0;
  if (overlap_) {
    loss.backward([this](Node& leaf) {
      const auto found = index_of_.find(&leaf);
      if (found == index_of_.end()) return;  // a leaf that is not a parameter (an input)
      // MPI_THREAD_FUNNELED: MPI only from the thread that runs the pass, outside OpenMP regions.
      BFCN_CHECK(!omp_in_parallel(), "GradientReducer: gradient hook inside a parallel region");
      const auto t0 = std::chrono::steady_clock::now();
      pack(found->second);
      start_ready_buckets();
      comm_.poll();
      comm_.add_allreduce_seconds(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    });
  } else {
    loss.backward();
  }
  const auto t0 = std::chrono::steady_clock::now();
  finish();
  comm_.add_allreduce_seconds(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
}

void GradientReducer::pack(size_t k) {
  const auto& [name, p] = params_[k];
  BFCN_CHECK(!packed_[k], "GradientReducer: the gradient of '", name, "' was reported twice");
  Bucket& b = buckets_[bucket_of_[k]];
  float* dst = b.data.data() + offset_of_[k];
  const Tensor& g = p.node()->grad;
  const size_t numel = static_cast<size_t>(p.value().numel());
  if (g.defined()) {
    BFCN_CHECK(g.dtype() == DType::f32 && static_cast<size_t>(g.numel()) == numel,
               "GradientReducer: gradient of '", name, "' has shape ", g.shape(),
               ", the parameter ", p.shape());
    std::memcpy(dst, g.f32(), numel * sizeof(float));
  } else {
    std::memset(dst, 0, numel * sizeof(float));  // no gradient on this rank: contributes zeros
  }
  packed_[k] = 1;
  --b.waiting;
}

void GradientReducer::start_ready_buckets() {
  while (next_start_ < buckets_.size() && buckets_[next_start_].waiting == 0) {
    Bucket& b = buckets_[next_start_];
    comm_.start_sum(b.data.data(), b.data.size());
    ++next_start_;
  }
}

void GradientReducer::finish() {
  // Parameters the pass did not reach (or every one, without overlap), then the remaining buckets.
  for (size_t k = 0; k < params_.size(); ++k)
    if (!packed_[k]) pack(k);
  start_ready_buckets();
  BFCN_ASSERT(next_start_ == buckets_.size());
  comm_.wait_all();
  next_start_ = 0;
  const float inv = 1.0f / static_cast<float>(comm_.size());
  for (const Bucket& b : buckets_)
    for (size_t k : b.params) {
      const Var& p = params_[k].second;
      Tensor g = Tensor::empty(p.shape());
      const float* src = b.data.data() + offset_of_[k];
      float* dst = g.f32();
      for (int64_t e = 0; e < g.numel(); ++e) dst[e] = src[e] * inv;
      p.node()->grad = std::move(g);
    }
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
