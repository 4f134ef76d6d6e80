// Confusion matrix and metric formulas against hand-computed values: absent classes (NaN, out of
// the mean), GT-absent-but-predicted classes (IoU 0), ignore pixels, misses predicted as ignore.
#include "eval/confusion.h"

#include <cmath>

#include "tests/support/test_support.h"

using namespace bfcn;

TEST_CASE("confusion: hand-computed 3-class matrix with ignore pixels and a miss", "[eval]") {
  // Valid pixels: (0,0)x2 (0,1) (1,1) (1,2) (2,2) and one GT-0 pixel predicted as ignore (a miss).
  std::vector<uint8_t> gt{0, 0, 0, 1, 1, 2, 255, 255, 0};
  std::vector<int32_t> pred{0, 0, 1, 1, 2, 2, 0, 1, 255};
  ConfusionMatrix cm(3);
  cm.add(gt.data(), pred.data(), static_cast<int64_t>(gt.size()));
  REQUIRE(cm.at(0, 0) == 2);
  REQUIRE(cm.at(0, 1) == 1);
  REQUIRE(cm.at(1, 2) == 1);
  REQUIRE(cm.at(2, 0) == 0);
  REQUIRE(cm.missed(0) == 1);
  REQUIRE(cm.gt_total(0) == 4);
  REQUIRE(cm.pred_total(1) == 2);
  REQUIRE(cm.total() == 7);

  Metrics m = compute_metrics(cm);
  // IoU0 = 2/(4+2-2), IoU1 = 1/(2+2-1), IoU2 = 1/(1+2-1)
  REQUIRE(m.iou[0] == Approx(0.5).epsilon(1e-15));
  REQUIRE(m.iou[1] == Approx(1.0 / 3).epsilon(1e-15));
  REQUIRE(m.iou[2] == Approx(0.5).epsilon(1e-15));
  REQUIRE(m.miou == Approx(4.0 / 9).epsilon(1e-15));
  REQUIRE(m.pixel_acc == Approx(4.0 / 7).epsilon(1e-15));
  REQUIRE(m.acc[0] == Approx(0.5));
  REQUIRE(m.acc[1] == Approx(0.5));
  REQUIRE(m.acc[2] == Approx(1.0));
  REQUIRE(m.mean_acc == Approx(2.0 / 3).epsilon(1e-15));
  REQUIRE(m.fwiou == Approx(19.0 / 42).epsilon(1e-15));
  REQUIRE(m.valid_pixels == 7);
  REQUIRE(m.n_present == 3);
}

TEST_CASE("confusion: absent class is NaN and left out, GT-absent but predicted is 0", "[eval]") {
  std::vector<uint8_t> gt{0, 0, 1, 1};
  std::vector<uint8_t> pred{0, 2, 1, 1};
  ConfusionMatrix cm(4);
  cm.add(gt.data(), pred.data(), 4);
  Metrics m = compute_metrics(cm);
  REQUIRE(m.iou[0] == Approx(0.5));
  REQUIRE(m.iou[1] == 1.0);
  REQUIRE(m.iou[2] == 0.0);  // predicted but never in GT: a real 0 in the mean
  REQUIRE(std::isnan(m.iou[3]));
  REQUIRE(std::isnan(m.acc[2]));
  REQUIRE(std::isnan(m.acc[3]));
  REQUIRE(m.n_present == 3);
  REQUIRE(m.miou == Approx(0.5));  // (0.5 + 1 + 0) / 3, class 3 not counted
  REQUIRE(m.mean_acc == Approx(0.75));
  REQUIRE(m.pixel_acc == Approx(0.75));
  REQUIRE(m.fwiou == Approx(0.75));  // 2/4*0.5 + 2/4*1

  nlohmann::json j = metrics_to_json(m, {"a", "b", "c", "d"});
  REQUIRE(j["miou"].get<double>() == Approx(0.5));
  REQUIRE(j["per_class_iou"]["c"].get<double>() == 0.0);
  REQUIRE(j["per_class_iou"]["d"].is_null());
  REQUIRE(j["n_present"] == 3);
  std::string table = metrics_table(m, {"a", "b", "c", "d"});
  REQUIRE_THAT(table, Catch::Contains("nan"));
  REQUIRE_THAT(table, Catch::Contains("50.00"));
  std::string md = metrics_markdown(m, {"a", "b", "c", "d"});
  REQUIRE_THAT(md, Catch::Contains("| d | — | — |"));
  REQUIRE_THAT(md, Catch::Contains("| **mIoU** | **50.00** |"));
}

TEST_CASE("confusion: all-ignore input gives NaN metrics, not a division by zero", "[eval]") {
  std::vector<uint8_t> gt{255, 255};
  std::vector<uint8_t> pred{0, 1};
  ConfusionMatrix cm(2);
  cm.add(gt.data(), pred.data(), 2);
  Metrics m = compute_metrics(cm);
  REQUIRE(m.valid_pixels == 0);
  REQUIRE(std::isnan(m.miou));
  REQUIRE(std::isnan(m.pixel_acc));
  REQUIRE(m.n_present == 0);
}

TEST_CASE("confusion: tensor add, u8 and i32 agree, merge sums", "[eval]") {
  Rng rng(7);
  const int C = 5;
  std::vector<uint8_t> g(2 * 6 * 7);
  std::vector<int32_t> p(g.size());
  std::vector<uint8_t> pu(g.size());
  for (size_t i = 0; i < g.size(); ++i) {
    g[i] = rng.uniform() < 0.1f ? 255 : static_cast<uint8_t>(rng.randint(0, C));
    p[i] = static_cast<int32_t>(rng.randint(0, C));
    pu[i] = static_cast<uint8_t>(p[i]);
  }
  Tensor gt = Tensor::from_vector_u8({2, 6, 7}, g);
  Tensor pi = Tensor::from_vector_i32({2, 6, 7}, p);
  Tensor pb = Tensor::from_vector_u8({2, 6, 7}, pu);
  ConfusionMatrix a(C), b(C), halves(C), second(C);
  a.add(gt, pi);
  b.add(gt, pb);
  halves.add(g.data(), p.data(), 42);
  second.add(g.data() + 42, p.data() + 42, 42);
  halves.merge(second);
  uint64_t brute_00 = 0;
  for (size_t i = 0; i < g.size(); ++i) brute_00 += (g[i] == 0 && p[i] == 0);
  REQUIRE(a.at(0, 0) == brute_00);
  for (int r = 0; r < C; ++r)
    for (int c = 0; c < C; ++c) {
      REQUIRE(a.at(r, c) == b.at(r, c));
      REQUIRE(a.at(r, c) == halves.at(r, c));
    }
  REQUIRE(compute_metrics(a).miou == compute_metrics(halves).miou);
}

TEST_CASE("confusion: bad values and shapes are errors naming the value", "[eval]") {
  ConfusionMatrix cm(3);
  std::vector<uint8_t> gt{0, 1};
  std::vector<int32_t> bad_pred{0, 3};
  REQUIRE_THROWS_WITH(cm.add(gt.data(), bad_pred.data(), 2),
                      Catch::Contains("predicted value 3 at pixel 1"));
  std::vector<int32_t> neg{-1, 0};
  REQUIRE_THROWS_WITH(cm.add(gt.data(), neg.data(), 2), Catch::Contains("predicted value -1"));
  std::vector<uint8_t> bad_gt{7, 0};
  std::vector<int32_t> ok{0, 0};
  REQUIRE_THROWS_WITH(cm.add(bad_gt.data(), ok.data(), 2),
                      Catch::Contains("ground-truth value 7 at pixel 0"));
  REQUIRE_THROWS_WITH(cm.add(Tensor::zeros({2, 3}, DType::u8), Tensor::zeros({3, 2}, DType::u8)),
                      Catch::Contains("got [3,2] and [2,3]"));
  REQUIRE_THROWS_WITH(ConfusionMatrix(0), Catch::Contains("n_classes must be 1..255, got 0"));
  ConfusionMatrix other(4);
  REQUIRE_THROWS_WITH(cm.merge(other), Catch::Contains("expected 3 classes"));
}
