// Checkpoint round trip in-process: weights, buffers, optimizer state and training state come back
// bit-exact; load_model_from_checkpoint rebuilds the model from the stored config; the write
// leaves no temp file; missing files and folders are named.
#include "train/checkpoint.h"

#include <cstring>

#include "core/error.h"
#include "layers/model.h"
#include "tests/support/test_support.h"
#include "train/optim.h"

using namespace bfcn;
namespace fs = std::filesystem;

namespace {

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() &&
         std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

}  // namespace

TEST_CASE("checkpoint round trip restores weights, optimizer and state exactly", "[train]") {
  test::TempDir d;
  const nlohmann::json mcfg = {{"backbone", "resnet18"},
                               {"head", "fcn8s"},
                               {"n_classes", 3},
                               {"quant", {{"w_bits", 1}, {"a_bits", 2}}}};
  const nlohmann::json cfg = {{"model", mcfg}, {"note", "stored"}};
  auto m1 = build_model(mcfg, 1);
  auto o1 = make_optimizer(m1->named_parameters(), OptimOptions{});
  Rng rng(9);
  for (auto& [name, p] : m1->named_parameters())
    p.node()->grad = test::random_tensor(p.shape(), rng);
  o1->step(0.1);
  for (auto& [name, b] : m1->named_buffers())
    if (b.dtype() == DType::f32) b.fill(0.25f);  // make buffers differ from a fresh model
  TrainState st;
  st.iteration = 7;
  st.epoch = 2;
  st.loader_position = 3;
  st.rng = Rng(42).state();
  st.best_miou = 0.5;
  st.best_iteration = 5;
  const fs::path file = d / "ck.h5";
  save_checkpoint(file, *m1, o1.get(), st, cfg);
  for (const auto& e : fs::directory_iterator(d.path()))
    CHECK(e.path().filename().string() == "ck.h5");  // no .tmp left behind

  auto m2 = build_model(mcfg, 2);
  auto o2 = make_optimizer(m2->named_parameters(), OptimOptions{});
  const TrainState s2 = load_checkpoint(file, *m2, o2.get());
  CHECK(s2.iteration == 7);
  CHECK(s2.epoch == 2);
  CHECK(s2.loader_position == 3);
  CHECK(s2.best_miou == 0.5);
  CHECK(s2.best_iteration == 5);
  CHECK(std::memcmp(s2.rng.s, st.rng.s, sizeof st.rng.s) == 0);
  CHECK(o2->steps() == 1);
  const auto p1 = m1->named_parameters(), p2 = m2->named_parameters();
  for (size_t i = 0; i < p1.size(); ++i) {
    INFO(p1[i].first);
    CHECK(same_bits(p1[i].second.value(), p2[i].second.value()));
  }
  const auto b1 = m1->named_buffers(), b2 = m2->named_buffers();
  for (size_t i = 0; i < b1.size(); ++i) CHECK(same_bits(b1[i].second, b2[i].second));
  const auto os1 = o1->state(), os2 = o2->state();
  REQUIRE(os1.size() == os2.size());
  for (size_t i = 0; i < os1.size(); ++i) CHECK(same_bits(os1[i].second, os2[i].second));

  // Eval/export entry point: config from the file, weights strict.
  fs::copy_file(file, d / "last.h5");
  LoadedModel lm = load_model_from_checkpoint(d.path());
  CHECK(lm.config["note"] == "stored");
  CHECK(!lm.model->training());
  const auto p3 = lm.model->named_parameters();
  CHECK(same_bits(p1[0].second.value(), p3[0].second.value()));
  CHECK(read_checkpoint_config(file)["note"] == "stored");

  // A different optimizer type is refused with both names.
  OptimOptions adam;
  adam.type = "adam";
  auto o3 = make_optimizer(m2->named_parameters(), adam);
  CHECK_THROWS_WITH(load_checkpoint(file, *m2, o3.get()), Catch::Contains("'sgd'"));
}

TEST_CASE("resolve_checkpoint names what is missing", "[train]") {
  test::TempDir d;
  CHECK_THROWS_WITH(resolve_checkpoint(d.path()), Catch::Contains("no last.h5 or best.h5"));
  CHECK_THROWS_WITH(resolve_checkpoint(d / "x.h5"), Catch::Contains("checkpoint not found"));
}
