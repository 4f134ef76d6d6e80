// batch_norm2d over NCHW. Training normalises with the batch statistics (biased variance) and
// updates the running statistics in place with the unbiased variance, as PyTorch; eval uses the
// running statistics, so there x's gradient is a plain per-channel scale. With a replica sum set
// (set_batch_norm_sync) the training statistics and the input gradient's sums span all replicas.
#include <algorithm>
#include <cmath>

#include "autograd/ops.h"
#include "autograd/ops/op_util.h"
#include "kernels/norm.h"

namespace bfcn {

using ops_detail::check_nchw;
using ops_detail::f32_value;

namespace {
void check_channel_vec(const Tensor& t, int64_t c, const char* name) {
  BFCN_CHECK(t.defined() && t.dtype() == DType::f32 && t.ndim() == 1 && t.dim(0) == c,
             "batch_norm2d: expected '", name, "' f32 of shape [", c, "], but got ",
             t.defined() ? t.shape().str() + " " + dtype_name(t.dtype()) : std::string("none"));
}
ReplicaSum& replica_sum() {
  static ReplicaSum sum;
  return sum;
}
}  // namespace

void set_batch_norm_sync(ReplicaSum sum) { replica_sum() = std::move(sum); }

Var batch_norm2d(const Var& x, const Var& gamma, const Var& beta, Tensor& running_mean,
                 Tensor& running_var, bool training, float momentum, float eps) {
  const Tensor& xv = f32_value(x, "batch_norm2d", "x");
  check_nchw(xv, "batch_norm2d", "x");
  const int64_t n = xv.dim(0), c = xv.dim(1), hw = xv.dim(2) * xv.dim(3);
  if (gamma.defined()) check_channel_vec(gamma.value(), c, "gamma");
  if (beta.defined()) check_channel_vec(beta.value(), c, "beta");
  check_channel_vec(running_mean, c, "running_mean");
  check_channel_vec(running_var, c, "running_var");
  BFCN_CHECK(eps > 0.0f, "batch_norm2d: expected eps > 0, but got ", eps);

  // mean [C], invstd [C]: batch statistics in training, running statistics in eval.
  Tensor mean = Tensor::empty(Shape{c}), invstd = Tensor::empty(Shape{c});
  const ReplicaSum sync = training ? replica_sum() : ReplicaSum();
  double m_all = static_cast<double>(n * hw);  // values per channel over all replicas
  if (training) {
    BFCN_CHECK(n * hw > (sync ? 0 : 1),
               "batch_norm2d: training needs more than one value per channel, but got ",
               xv.shape());
    std::vector<double> mu(static_cast<size_t>(c)), var(static_cast<size_t>(c));
    bn_channel_stats(xv.f32(), n, c, hw, mu.data(), var.data());
    if (sync) {
      // Per-replica (sum, sum of squares, count) added across replicas, then the global moments.
      const double m_local = static_cast<double>(n * hw);
      std::vector<double> s(static_cast<size_t>(2 * c + 1));
      for (int64_t ch = 0; ch < c; ++ch) {
        s[ch] = mu[ch] * m_local;
        s[c + ch] = (var[ch] + mu[ch] * mu[ch]) * m_local;
      }
      s[2 * c] = m_local;
      sync(s.data(), s.size());
      m_all = s[2 * c];
      for (int64_t ch = 0; ch < c; ++ch) {
        mu[ch] = s[ch] / m_all;
        var[ch] = std::max(0.0, s[c + ch] / m_all - mu[ch] * mu[ch]);
      }
    }
    const double m = m_all;
    BFCN_CHECK(m > 1,
               "batch_norm2d: synchronised training needs more than one value per channel "
               "over all replicas, but got ",
               m, " (local ", xv.shape(), ")");
    float* rm = running_mean.f32();
    float* rv = running_var.f32();
    const double unbias = m / (m - 1);
    for (int64_t ch = 0; ch < c; ++ch) {
      mean.f32()[ch] = static_cast<float>(mu[ch]);
      invstd.f32()[ch] = static_cast<float>(1.0 / std::sqrt(var[ch] + eps));
      rm[ch] = static_cast<float>((1.0 - momentum) * rm[ch] + momentum * mu[ch]);
      rv[ch] = static_cast<float>((1.0 - momentum) * rv[ch] + momentum * var[ch] * unbias);
    }
  } else {
    for (int64_t ch = 0; ch < c; ++ch) {
      mean.f32()[ch] = running_mean.f32()[ch];
      invstd.f32()[ch] =
          static_cast<float>(1.0 / std::sqrt(static_cast<double>(running_var.f32()[ch]) + eps));
    }
  }
  // y = x*scale + shift with scale = gamma*invstd, shift = beta - mean*scale.
  Tensor gv = gamma.defined() ? gamma.value() : Tensor();
  Tensor scale_t = Tensor::empty(Shape{c}), shift_t = Tensor::empty(Shape{c});
  for (int64_t ch = 0; ch < c; ++ch) {
    const float g = gv.defined() ? gv.f32()[ch] : 1.0f;
    const float b = beta.defined() ? beta.value().f32()[ch] : 0.0f;
    scale_t.f32()[ch] = g * invstd.f32()[ch];
    shift_t.f32()[ch] = b - mean.f32()[ch] * scale_t.f32()[ch];
  }
  Tensor y = Tensor::empty(xv.shape());
  bn_apply(xv.f32(), scale_t.f32(), shift_t.f32(), y.f32(), n, c, hw);

  std::vector<Var> inputs{x};
  if (gamma.defined()) inputs.push_back(gamma);
  if (beta.defined()) inputs.push_back(beta);
  const bool has_gamma = gamma.defined(), has_beta = beta.defined();
  return make_op("batch_norm2d", y, inputs,
                 [xv, gv, mean, invstd, scale_t, training, has_gamma, has_beta, n, c, hw, sync,
                  m_all](const Tensor& dy, const GradMask& need) {
                   const bool need_gamma = has_gamma && need[1];
                   const bool need_beta = has_beta && need[has_gamma ? 2 : 1];
                   std::vector<double> sdy(static_cast<size_t>(c)), sdyx(static_cast<size_t>(c));
                   if (training || need_gamma || need_beta)
                     bn_grad_sums(dy.f32(), xv.f32(), mean.f32(), invstd.f32(), n, c, hw,
                                  sdy.data(), sdyx.data());
                   // Synchronised: x's gradient needs the sums over all replicas, scaled so the
                   // kernel's division by the local count gives the global means. Always called
                   // (even when x needs no gradient) so every replica runs the same collectives.
                   std::vector<double> gsdy = sdy, gsdyx = sdyx;
                   if (sync) {
                     std::vector<double> s(static_cast<size_t>(2 * c));
                     std::copy(sdy.begin(), sdy.end(), s.begin());
                     std::copy(sdyx.begin(), sdyx.end(), s.begin() + c);
                     sync(s.data(), s.size());
                     const double k = static_cast<double>(n * hw) / m_all;
                     for (int64_t ch = 0; ch < c; ++ch) {
                       gsdy[ch] = s[ch] * k;
                       gsdyx[ch] = s[c + ch] * k;
                     }
                   }
                   std::vector<Tensor> grads;
                   if (need[0]) {
                     // In place over dy (Note [Gradient ownership]): every kernel below reads
                     // dy[i] only to write dx[i], after bn_grad_sums has read all of dy.
                     Tensor dx = dy;
                     if (training)
                       bn_backward_input_train(dy.f32(), xv.f32(), mean.f32(), invstd.f32(),
                                               gv.defined() ? gv.f32() : nullptr, gsdy.data(),
                                               gsdyx.data(), n, c, hw, dx.f32());
                     else
                       bn_apply(dy.f32(), scale_t.f32(), nullptr, dx.f32(), n, c, hw);
                     grads.push_back(dx);
                   } else {
                     grads.emplace_back();
                   }
                   if (has_gamma) {
                     Tensor dg;
                     if (need_gamma) {
                       dg = Tensor::empty(Shape{c});
                       for (int64_t ch = 0; ch < c; ++ch)
                         dg.f32()[ch] = static_cast<float>(sdyx[ch]);
                     }
                     grads.push_back(dg);
                   }
                   if (has_beta) {
                     Tensor db;
                     if (need_beta) {
                       db = Tensor::empty(Shape{c});
                       for (int64_t ch = 0; ch < c; ++ch)
                         db.f32()[ch] = static_cast<float>(sdy[ch]);
                     }
                     grads.push_back(db);
                   }
                   return grads;
                 });
}

}  // namespace bfcn
