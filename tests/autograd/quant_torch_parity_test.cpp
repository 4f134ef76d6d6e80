// PyTorch parity: an independent DoReFa implementation in torch (tensorpack semantics, STE written
// with the detach trick) must give the same forward values and input gradients as ours for the
// weight quantizer (k = 1, per-layer and per-channel; k = 2, 3 incl. the max path) and the
// activation quantizer (k = 2). Skips when /usr/bin/python3 cannot import torch.
#include <fstream>

#include "autograd/quant.h"
#include "tests/support/test_support.h"

using namespace bfcn;
using namespace bfcn::test;

namespace {

const char* kScript = R"PY(
import sys, numpy as np, torch
d, kind, k, shape = sys.argv[1], sys.argv[2], int(sys.argv[3]), [int(s) for s in sys.argv[4:]]
x = torch.from_numpy(np.fromfile(d + "/x.bin", dtype="<f4").reshape(shape)).requires_grad_(True)
r = torch.from_numpy(np.fromfile(d + "/r.bin", dtype="<f4").reshape(shape))
n = float(2 ** k - 1)
def qk(u):  # round(u*n)/n with an identity gradient (round is half-to-even in torch)
    return u + (torch.round(u * n) / n - u).detach()
if kind in ("w", "wc"):
    if k == 1:
        dims = tuple(range(1, x.dim())) if kind == "wc" else tuple(range(x.dim()))
        e = x.abs().mean(dim=dims, keepdim=True).detach()
        s = torch.where(x >= 0, torch.ones_like(x), -torch.ones_like(x))
        y = x + (e * s - x).detach()   # tensorpack: forward E*sign(x), gradient identity
    else:
        t = torch.tanh(x)
        u = t / t.abs().max() * 0.5 + 0.5
        y = 2 * qk(u) - 1
else:
    y = qk(torch.clamp(x, 0, 1))
(y.double() * r.double()).sum().backward()
y.detach().numpy().astype("<f4").tofile(d + "/y.bin")
x.grad.numpy().astype("<f4").tofile(d + "/g.bin")
)PY";

void check_against_torch(const char* kind, int k, const Tensor& x, uint64_t seed) {
  TempDir dir("bfcn_quant_torch");
  Rng rng(seed);
  const Tensor r = random_tensor(x.shape(), rng, -1, 1);
  write_f32(dir / "x.bin", x);
  write_f32(dir / "r.bin", r);
  {
    std::ofstream f(dir / "dorefa.py");
    f << kScript;
  }
  std::string cmd = "/usr/bin/python3 " + (dir / "dorefa.py").string() + " " + dir.path().string() +
                    " " + kind + " " + std::to_string(k);
  for (int i = 0; i < x.ndim(); ++i) cmd += " " + std::to_string(x.dim(i));
  const RunResult res = run_command(cmd);
  INFO(cmd << "\n" << res.output);
  REQUIRE(res.status == 0);
  const Tensor y_torch = read_f32(dir / "y.bin", x.shape());
  const Tensor g_torch = read_f32(dir / "g.bin", x.shape());

  const std::string skind = kind;
  const Var xv(x, true);
  const Var y = skind == "a" ? quantize_activation(xv, k) : quantize_weight(xv, k, skind == "wc");
  y.backward(r);
  INFO("kind " << kind << " k " << k);
  CHECK(all_close(y.value(), y_torch, 1e-6f, 1e-6f));
  CHECK(all_close(xv.grad(), g_torch, 1e-5f, 1e-6f));
}

}  // namespace

TEST_CASE("DoReFa quantizers match an independent PyTorch implementation", "[quant][torch]") {
  if (!torch_available()) BFCN_SKIP("PyTorch (/usr/bin/python3 -c 'import torch') not available");
  Rng rng(21);
  const Tensor w = random_tensor({6, 4, 3, 3}, rng, -1.5f, 1.5f);
  check_against_torch("w", 1, w, 1);
  check_against_torch("wc", 1, w, 2);
  check_against_torch("w", 2, w, 3);
  check_against_torch("w", 3, w, 4);
  check_against_torch("a", 2, random_tensor({2, 3, 5, 5}, rng, -0.5f, 1.5f), 5);
}
