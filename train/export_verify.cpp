#include "train/export_verify.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <sstream>

#include "autograd/var.h"
#include "core/error.h"
#include "layers/activation.h"
#include "layers/model.h"
#include "runtime/engine.h"

namespace bfcn {

namespace {

// Max pool geometry between a training quantizer and the runtime's codes: the runtime quantizes
// the stem after its max pool, the training engine before it (they commute: max and the
// quantizer are both monotone). kernel 1 = the same positions.
struct Pool {
  int kernel = 1, stride = 1, pad = 0;
};

struct RuntimeCodes {
  std::string layer;
  int h = 0, w = 0, c = 0;
  std::vector<uint8_t> codes;  // NHWC
  Pool pool;
};

// Per pixel, the first class with the largest logit (the runtime's rule).
std::vector<uint8_t> argmax_labels(const Tensor& logits) {
  const int nc = int(logits.dim(1));
  const int64_t pix = logits.dim(2) * logits.dim(3);
  const float* r = logits.f32();
  std::vector<uint8_t> labels(size_t(pix), 0);
  for (int64_t p = 0; p < pix; ++p) {
    int best = 0;
    for (int c = 1; c < nc; ++c)
      if (r[c * pix + p] > r[best * pix + p]) best = c;
    labels[size_t(p)] = uint8_t(best);
  }
  return labels;
}

// The quantizer's code scale: u = x/clip·n is what the training engine rounds.
struct Scale {
  float clip = 1.0f, levels = 1.0f;
};

// Clears every observer it set when it goes out of scope (also on a throw).
class Observers {
 public:
  explicit Observers(SegmentationModel& model) {
    for (const auto& [name, m] : model.named_modules())
      if (auto* q = dynamic_cast<QuantAct*>(m); q && q->a_bits() < 32) acts_.emplace_back(name, q);
  }
  ~Observers() {
    for (auto& [name, q] : acts_) q->set_observer({});
  }
  Observers(const Observers&) = delete;
  Observers& operator=(const Observers&) = delete;

  // f(name, scale, input, output) for every quantized activation of the model.
  template <class F>
  void set(F f) {
    for (auto& [name, q] : acts_) {
      const Scale s{q->clip_value(), float((1 << q->a_bits()) - 1)};
      q->set_observer([f, name = name, s](const Tensor& in, Tensor& out) { f(name, s, in, out); });
    }
  }

 private:
  std::vector<std::pair<std::string, QuantAct*>> acts_;
};

bool near_tie(float x, const Scale& s, double tol) {
  const double u = double(std::min(1.0f, std::max(0.0f, x * (1.0f / s.clip))) * s.levels);
  return std::abs(u - std::floor(u) - 0.5) < tol;
}

}  // namespace

int64_t EngineComparison::codes() const {
  int64_t n = 0;
  for (const auto& q : quantizers) n += q.codes;
  return n;
}
int64_t EngineComparison::differ() const {
  int64_t n = 0;
  for (const auto& q : quantizers) n += q.differ;
  return n;
}
int64_t EngineComparison::ties() const {
  int64_t n = 0;
  for (const auto& q : quantizers) n += q.ties;
  return n;
}

void compare_engines_on_image(SegmentationModel& model, const rt::Model& runtime, const Tensor& x,
                              EngineComparison& acc, double tie_tolerance) {
  BFCN_CHECK(x.ndim() == 4 && x.dim(0) == 1 && x.dim(1) == 3,
             "compare_engines_on_image: expected an image [1,3,h,w], got ", x.shape());
  const int h = int(x.dim(2)), w = int(x.dim(3));

  // Runtime: labels, logits and the codes of every layer that names its training quantizer.
  std::map<std::string, std::pair<std::string, Pool>> quantizer_of;  // runtime layer -> module
  std::map<std::string, Pool> pool_making;  // tensor -> the max pool that wrote it
  for (const auto& L : runtime.header().at("layers")) {
    const std::string type = L.value("type", ""), out = L.value("output", "");
    if (type == "maxpool")
      pool_making[out] = {L.value("kernel", 1), L.value("stride", 1), L.value("pad", 0)};
    if (!L.contains("quantizer") || !L["quantizer"].is_string()) continue;
    const std::string in =
        L.contains("inputs") && !L["inputs"].empty() && L["inputs"][0].is_string()
            ? L["inputs"][0].get<std::string>()
            : "";
    const Pool pool = type == "quant_act" && pool_making.count(in) ? pool_making[in] : Pool{};
    quantizer_of[L.value("name", "")] = {L["quantizer"].get<std::string>(), pool};
  }
  std::map<std::string, RuntimeCodes> rt_codes;  // by training module
  runtime.set_trace([&](const rt::TracedTensor& t) {
    const auto it = quantizer_of.find(t.layer);
    if (it != quantizer_of.end() && t.bits > 0)
      rt_codes[it->second.first] = RuntimeCodes{t.layer, t.h, t.w, t.c, t.codes, it->second.second};
  });
  std::vector<float> rt_logits;
  std::vector<uint8_t> rt_labels;
  try {
    runtime.run(x.f32(), h, w, &rt_logits, &rt_labels, /*normalize=*/false);
  } catch (...) {
    runtime.set_trace({});
    throw;
  }
  runtime.set_trace({});

  // The codes of module `name` as the runtime computed them and the pool between the two (none
  // when the shapes are equal), or null (not traced, or shapes that do not correspond).
  auto runtime_codes = [&](const std::string& name, const Tensor& t,
                           Pool& pool) -> const RuntimeCodes* {
    const auto it = rt_codes.find(name);
    if (it == rt_codes.end()) return nullptr;
    const RuntimeCodes& r = it->second;
    if (t.ndim() != 4 || t.dim(0) != 1 || t.dim(1) != r.c) return nullptr;
    pool = Pool{};
    if (t.dim(2) == r.h && t.dim(3) == r.w) return &r;
    pool = r.pool;
    const auto pooled = [&](int64_t n) {
      return (n + 2 * pool.pad - pool.kernel) / pool.stride + 1;
    };
    return pool.kernel > 1 && pooled(t.dim(2)) == r.h && pooled(t.dim(3)) == r.w ? &r : nullptr;
  };

  // Training engine, pass 1: as it is (the labels and logits compared).
  Tensor ref;
  {
    NoGradGuard no_grad;
    ref = model.forward(Var(x)).value();
  }
  BFCN_CHECK(ref.dim(2) == h && ref.dim(3) == w && rt_logits.size() == size_t(ref.numel()) &&
                 rt_labels.size() == size_t(h) * size_t(w),
             "compare_engines_on_image: the runtime's output (", rt_logits.size(),
             " logits) does not match the training engine's ", ref.shape());

  // Pass 2: every quantizer's codes against the runtime's, given the same inputs: where they
  // differ at a rounding tie the runtime's code replaces the training engine's, so a flip is
  // counted where it happens and not again in every layer it would cascade to.
  std::map<std::string, size_t> row;  // module -> index in acc.quantizers
  for (size_t i = 0; i < acc.quantizers.size(); ++i) row[acc.quantizers[i].quantizer] = i;
  Observers observers(model);
  observers.set([&](const std::string& name, const Scale& s, const Tensor& in, Tensor& out) {
    Pool pool;
    const RuntimeCodes* r = runtime_codes(name, out, pool);
    if (!r) return;
    if (!row.count(name)) {
      row[name] = acc.quantizers.size();
      acc.quantizers.push_back({name, r->layer, 0, 0, 0});
    }
    QuantizerCodes& q = acc.quantizers[row[name]];
    const int64_t in_h = out.dim(2), in_w = out.dim(3), hw = int64_t(r->h) * r->w;
    const float* xi = in.f32();
    float* yo = out.f32();
    auto code = [&](int64_t i) { return int(std::lround(yo[i] / s.clip * s.levels)); };
    std::vector<int64_t> window;  // training positions behind one runtime code
    for (int ch = 0; ch < r->c; ++ch)
      for (int64_t p = 0; p < hw; ++p) {
        window.clear();
        const int64_t oy = p / r->w, ox = p % r->w;
        for (int ky = 0; ky < pool.kernel; ++ky)
          for (int kx = 0; kx < pool.kernel; ++kx) {
            const int64_t iy = oy * pool.stride - pool.pad + ky;
            const int64_t ix = ox * pool.stride - pool.pad + kx;
            if (iy >= 0 && iy < in_h && ix >= 0 && ix < in_w)
              window.push_back((ch * in_h + iy) * in_w + ix);
          }
        int64_t top = window[0];
        for (int64_t i : window)
          if (xi[i] > xi[top]) top = i;
        int mine = 0;
        for (int64_t i : window) mine = std::max(mine, code(i));
        const int theirs = r->codes[size_t(p * r->c + ch)];
        if (mine == theirs) continue;
        ++q.differ;
        if (near_tie(xi[top], s, tie_tolerance)) {
          ++q.ties;
          // The runtime's code for the window's maximum; nothing in the window above it.
          const float v = s.clip * float(theirs) / s.levels;
          for (int64_t i : window)
            if (code(i) > theirs) yo[i] = v;
          yo[top] = v;
        } else if (acc.first_non_tie.empty()) {
          std::ostringstream os;
          os << "layer '" << r->layer << "' (quantizer " << name << ") channel " << ch << " at y "
             << oy << " x " << ox << " of image " << acc.images << ": runtime code " << theirs
             << ", training code " << mine << " (x·n/clip = " << double(xi[top] / s.clip * s.levels)
             << ")";
          acc.first_non_tie = os.str();
        }
      }
    q.codes += int64_t(r->c) * hw;
  });
  Tensor replayed;
  {
    NoGradGuard no_grad;
    replayed = model.forward(Var(x)).value();
  }

  const std::vector<uint8_t> mine = argmax_labels(ref), resolved = argmax_labels(replayed);
  int64_t same = 0, same_resolved = 0;
  for (size_t p = 0; p < mine.size(); ++p) {
    same += mine[p] == rt_labels[p];
    same_resolved += resolved[p] == rt_labels[p];
  }
  const float* r = ref.f32();
  const float* rr = replayed.f32();
  for (size_t k = 0; k < rt_logits.size(); ++k) {
    acc.max_logit_diff = std::max(acc.max_logit_diff, double(std::abs(r[k] - rt_logits[k])));
    acc.max_logit_diff_ties_resolved =
        std::max(acc.max_logit_diff_ties_resolved, double(std::abs(rr[k] - rt_logits[k])));
  }
  ++acc.images;
  acc.pixels += int64_t(mine.size());
  acc.same += same;
  acc.same_ties_resolved += same_resolved;
  acc.worst_image = std::min(acc.worst_image, double(same) / double(mine.size()));
}

std::string describe(const EngineComparison& c, double tie_tolerance) {
  std::ostringstream os;
  os.setf(std::ios::fixed);
  os.precision(4);
  os << "label agreement " << 100.0 * c.agreement() << " % (worst image " << 100.0 * c.worst_image
     << " %), max |logit diff| ";
  os.unsetf(std::ios::fixed);
  os.precision(3);
  os << c.max_logit_diff << "\n";
  if (c.quantizers.empty()) {
    os << "codes: not compared (the file's layers name no training quantizer; re-export it)\n";
    return os.str();
  }
  os << "codes: " << c.differ() << " of " << c.codes() << " differ over " << c.quantizers.size()
     << " quantizers; " << c.ties() << " of them at rounding ties (training x·n/clip within "
     << tie_tolerance << " of k+1/2)";
  std::string where;
  for (const QuantizerCodes& q : c.quantizers)
    if (q.differ > 0)
      where += (where.empty() ? "" : ", ") + q.quantizer + " " + std::to_string(q.differ);
  if (!where.empty()) os << " [" << where << "]";
  if (c.differ() == c.ties()) {
    os.setf(std::ios::fixed);
    os.precision(4);
    os << ", none elsewhere; with the runtime's codes replayed at those ties the labels agree on "
       << 100.0 * c.agreement_ties_resolved() << " %";
    os.unsetf(std::ios::fixed);
    os.precision(3);
    os << " and the logits to " << c.max_logit_diff_ties_resolved << "\n";
  } else {
    os << "; " << c.differ() - c.ties()
       << " are not ties (an export or kernel bug), first: " << c.first_non_tie << "\n";
  }
  return os.str();
}

}  // namespace bfcn
