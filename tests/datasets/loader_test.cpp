// DataLoader: identical batches for any worker count, deterministic per-epoch shuffles, resume
// through state()/set_state(), and worker errors reaching next() with the file name (no hang).
#include "datasets/loader.h"

#include <catch2/catch.hpp>
#include <cstring>
#include <set>

#include "core/error.h"
#include "datasets/voc.h"
#include "tests/datasets/fixtures.h"
#include "tests/support/test_support.h"

using namespace bfcn;

namespace {
DataConfig train_cfg(int workers) {
  DataConfig c;
  c.root = "/unused";
  c.augment.crop = {32, 32};
  c.augment.scale_min = 0.5f;
  c.augment.scale_max = 1.5f;
  c.augment.jitter = 0.2f;
  c.workers = workers;
  c.prefetch = 2;
  return c;
}
bool same(const Batch& a, const Batch& b) {
  return a.ids == b.ids && a.images.shape() == b.images.shape() &&
         std::memcmp(a.images.raw(), b.images.raw(), a.images.nbytes()) == 0 &&
         std::memcmp(a.labels.raw(), b.labels.raw(), a.labels.nbytes()) == 0;
}
std::vector<Batch> epoch(DataLoader& dl) {
  std::vector<Batch> out;
  Batch b;
  while (dl.next(b)) out.push_back(b);
  return out;
}
}  // namespace

TEST_CASE("same batches with 0, 1 and 3 workers", "[datasets][loader]") {
  auto ds = std::make_shared<test::PatternDataset>(11, 40, 44);
  DataLoader l0(ds, train_cfg(0), 3, true, 7), l1(ds, train_cfg(1), 3, true, 7),
      l3(ds, train_cfg(3), 3, true, 7);
  CHECK(l0.batches_per_epoch() == 3);  // drop_last
  for (int e = 0; e < 2; ++e) {
    auto a = epoch(l0), b = epoch(l1), c = epoch(l3);
    REQUIRE(a.size() == 3);
    REQUIRE(b.size() == 3);
    REQUIRE(c.size() == 3);
    for (size_t i = 0; i < a.size(); ++i) {
      CHECK(same(a[i], b[i]));
      CHECK(same(a[i], c[i]));
    }
    CHECK(a[0].images.shape() == Shape({3, 3, 32, 32}));
    CHECK(a[0].labels.shape() == Shape({3, 32, 32}));
    CHECK(a[0].labels.dtype() == DType::u8);
  }
}

TEST_CASE("shuffles are deterministic per (seed, epoch) and differ across epochs",
          "[datasets][loader]") {
  auto ds = std::make_shared<test::PatternDataset>(20, 8, 8);
  DataLoader a(ds, train_cfg(0), 4, true, 1), b(ds, train_cfg(2), 4, true, 1),
      c(ds, train_cfg(0), 4, true, 2);
  auto o0 = a.epoch_order(0), o1 = a.epoch_order(1);
  CHECK(o0 == b.epoch_order(0));
  CHECK(o0 != o1);
  CHECK(o0 != c.epoch_order(0));
  CHECK(std::set<size_t>(o0.begin(), o0.end()).size() == 20);
  // next() follows epoch_order.
  Batch batch;
  REQUIRE(b.next(batch));
  CHECK(batch.ids[0] == "s" + std::to_string(o0[0]));
  CHECK(batch.ids[3] == "s" + std::to_string(o0[3]));
}

TEST_CASE("state()/set_state() resumes with the same next batches", "[datasets][loader]") {
  auto ds = std::make_shared<test::PatternDataset>(9, 36, 36);
  DataLoader ref(ds, train_cfg(2), 2, true, 3);
  std::vector<Batch> all;
  for (int e = 0; e < 2; ++e)
    for (auto& b : epoch(ref)) all.push_back(b);
  REQUIRE(all.size() == 8);
  DataLoader run(ds, train_cfg(2), 2, true, 3);
  Batch b;
  REQUIRE(run.next(b));
  REQUIRE(run.next(b));
  REQUIRE(run.next(b));
  const DataLoader::State st = run.state();
  CHECK(st.epoch == 0);
  CHECK(st.position == 3);
  DataLoader resumed(ds, train_cfg(3), 2, true, 3);
  resumed.set_state(st);
  std::vector<Batch> rest;
  while (rest.size() < 5) {
    if (resumed.next(b)) rest.push_back(b);
  }
  for (size_t i = 0; i < rest.size(); ++i) CHECK(same(rest[i], all[3 + i]));
  CHECK(resumed.state().epoch == 1);
}

TEST_CASE("validation: dataset order, full images, whole last batch", "[datasets][loader]") {
  auto ds = std::make_shared<test::PatternDataset>(5, 24, 20);
  DataConfig cfg = train_cfg(2);
  DataLoader val(ds, cfg, 2, false, 0);
  CHECK(val.batches_per_epoch() == 3);
  auto batches = epoch(val);
  REQUIRE(batches.size() == 3);
  CHECK(batches[0].ids == std::vector<std::string>{"s0", "s1"});
  CHECK(batches[2].ids == std::vector<std::string>{"s4"});
  CHECK(batches[0].images.shape() == Shape({2, 3, 24, 20}));
  // No random transforms: labels are the raw pattern.
  RawSample raw = ds->load(1);
  CHECK(std::memcmp(batches[0].labels.data<uint8_t>() + 24 * 20, raw.label.data.data(), 480) == 0);
  // Images of different sizes: batch 1 works, batch 2 names both ids.
  auto varied = std::make_shared<test::PatternDataset>(3, 24, 20, true);
  DataLoader one(varied, cfg, 1, false, 0);
  auto full = epoch(one);
  REQUIRE(full.size() == 3);
  CHECK(full[1].images.dim(2) == 32);
  DataLoader two(varied, cfg, 2, false, 0);
  Batch b;
  CHECK_THROWS_WITH(two.next(b), Catch::Contains("s1") && Catch::Contains("batch 1"));
}

TEST_CASE("a worker error reaches next() with the file name, no hang", "[datasets][loader]") {
  auto ds = std::make_shared<test::PatternDataset>(12, 8, 8, false, 7);
  for (int workers : {0, 1, 3}) {
    DataConfig cfg = train_cfg(workers);
    cfg.augment.crop = {0, 0};
    DataLoader dl(ds, cfg, 2, false, 0);
    Batch b;
    int ok = 0;
    bool thrown = false;
    try {
      while (dl.next(b)) ++ok;
    } catch (const IoError& e) {
      thrown = true;
      CHECK(std::string(e.what()).find("s7.jpg") != std::string::npos);
    }
    CHECK(thrown);
    CHECK(ok == 3);  // batches 0..2 came out in order before the failing batch 3
  }
}

TEST_CASE("a truncated JPEG on disk fails the loader with its path", "[datasets][loader]") {
  test::TempDir dir;
  test::write_voc(dir.path(), 6, 16, 16);
  std::filesystem::resize_file(dir.path() / "JPEGImages/id4.jpg", 200);
  auto ds = std::make_shared<VocDataset>(dir.path(), "train");
  DataConfig cfg = train_cfg(2);
  DataLoader dl(ds, cfg, 2, true, 11);
  Batch b;
  CHECK_THROWS_WITH(
      [&] {
        while (dl.next(b)) {
        }
      }(),
      Catch::Contains("id4.jpg"));
}

TEST_CASE("training needs at least one full batch", "[datasets][loader]") {
  auto ds = std::make_shared<test::PatternDataset>(3, 8, 8);
  CHECK_THROWS_WITH(DataLoader(ds, train_cfg(0), 4, true, 0),
                    Catch::Contains("3 samples") && Catch::Contains("batch of 4"));
}
