// core/json_read.h: typed reads with ranges, required/optional, unknown keys with a suggestion,
// and the file + JSON path in every message.
#include "core/json_read.h"

#include "core/error.h"
#include "tests/support/test_support.h"

using namespace bfcn;
using nlohmann::json;

namespace {
// The message of the error f() throws, checking its type.
template <class E = ConfigError, class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  FAIL("expected an error");
  return "";
}
}  // namespace

TEST_CASE("json_read: edit distance and closest match", "[core]") {
  CHECK(edit_distance("threads", "threads") == 0);
  CHECK(edit_distance("thread", "threads") == 1);
  CHECK(edit_distance("kitten", "sitting") == 3);
  CHECK(edit_distance("", "abc") == 3);
  CHECK(closest_match("w_bit", {"a_bits", "w_bits", "g_bits"}) == "w_bits");
  CHECK(closest_match("outputstride", {"output_stride", "head"}) == "output_stride");
  CHECK(closest_match("banana", {"w_bits", "head"}).empty());
  CHECK(closest_match("x", {}).empty());
}

TEST_CASE("json_read: typed reads return values and defaults", "[core]") {
  const json j = {{"n", 5},           {"x", 0.25}, {"i_as_x", 2},
                  {"s", "fcn8s"},     {"b", true}, {"big", int64_t{1} << 40},
                  {"sub", {{"k", 1}}}};
  const JsonObject o(j, "model");
  CHECK(o.get_int("n", 1, 10) == 5);
  CHECK(o.get_int("missing", 1, 10, 7) == 7);
  CHECK(o.get_int64("big", 0, int64_t{1} << 50) == (int64_t{1} << 40));
  CHECK(o.get_number("x", 0, 1) == 0.25);
  CHECK(o.get_number("i_as_x", 0, 4) == 2.0);  // an integer fits a number
  CHECK(o.get_number("missing", 0, 1, 0.5) == 0.5);
  CHECK(o.get_string("s") == "fcn8s");
  CHECK(o.get_string("missing", "d") == "d");
  CHECK(o.get_choice("s", {"fcn32s", "fcn8s"}) == "fcn8s");
  CHECK(o.get_choice("missing", {"a", "b"}, "b") == "b");
  CHECK(o.get_bool("b"));
  CHECK(!o.get_bool("missing", false));
  const JsonObject sub = o.get_object("sub");
  CHECK(sub.path() == "model.sub");
  CHECK(sub.get_int("k", 0, 1) == 1);
  CHECK(o.path_of("n") == "model.n");
  CHECK(JsonObject(j, "").path_of("n") == "n");
  CHECK_NOTHROW(o.check_keys({"n", "x", "i_as_x", "s", "b", "big", "sub"}));
}

TEST_CASE("json_read: messages name the path, the expectation and the value", "[core]") {
  const json j = {{"n", 0},          {"f", 16.0}, {"s", "21"}, {"i", 21},
                  {"head", "fcn4s"}, {"x", 2.5},  {"neg", -1}, {"huge", uint64_t{1} << 63}};
  const JsonObject o(j, "model.quant");
  auto msg = [&](auto&& f) { return error_of([&] { f(); }); };
  CHECK(msg([&] { o.get_int("n", 1, 8); }) ==
        "model.quant.n: expected an integer in [1, 8], but got 0");
  CHECK(msg([&] { o.get_int("neg", 0, 8, 3); }) ==
        "model.quant.neg: expected an integer in [0, 8], but got -1");
  CHECK(msg([&] { o.get_int64("huge", 0, 100); }) ==
        "model.quant.huge: expected an integer in [0, 100], but got 9223372036854775808");
  CHECK(msg([&] { o.get_int("f", 1, 64); }) ==
        "model.quant.f: expected an integer, but got a number (16.0)");
  CHECK(msg([&] { o.get_int("s", 1, 64); }) ==
        "model.quant.s: expected an integer, but got a string (\"21\")");
  CHECK(msg([&] { o.get_string("i"); }) ==
        "model.quant.i: expected a string, but got an integer (21)");
  CHECK(msg([&] { o.get_number("x", 0, 1); }) ==
        "model.quant.x: expected a number in [0, 1], but got 2.5");
  CHECK(msg([&] { o.get_bool("x"); }) ==
        "model.quant.x: expected a boolean, but got a number (2.5)");
  CHECK(msg([&] {
          o.get_choice("head", {"fcn32s", "fcn16s", "fcn8s"});
        }) ==
        "model.quant.head: expected one of fcn32s, fcn16s, fcn8s, but got 'fcn4s' (did you mean "
        "'fcn8s'?)");
  CHECK(msg([&] {
          o.get_choice("s", {"voc", "cityscapes"});
        }) == "model.quant.s: expected one of voc, cityscapes, but got '21'");
  CHECK(msg([&] {
          o.get_choice("i", {"voc", "cityscapes"});
        }) == "model.quant.i: expected one of voc, cityscapes, but got an integer (21)");
  CHECK(msg([&] { o.get_object("n"); }) ==
        "model.quant.n: expected an object, but got an integer (0)");
  CHECK(msg([&] { o.get_int("absent", 1, 8); }) == "model.quant: missing key 'absent'");
  CHECK(msg([&] {
          o.require("absent", {"n", "absent"});
        }) == "model.quant: missing key 'absent' (required: n, absent)");
  CHECK(msg([&] { JsonObject(json::array(), "data"); }) ==
        "data: expected an object, but got an array ([])");
}

TEST_CASE("json_read: unknown keys list the known ones and suggest the closest", "[core]") {
  const json j = {{"w_bits", 1}, {"w_bit", 2}};
  const JsonObject o(j, "model.quant");
  CHECK(error_of([&] {
          o.check_keys({"w_bits", "a_bits"});
        }) == "model.quant.w_bit: unknown key; did you mean 'w_bits'? (known: w_bits, a_bits)");
  const json far = {{"zzzzzz", 1}};
  CHECK(error_of([&] {
          JsonObject(far, "").check_keys({"w_bits", "a_bits"});
        }) == "zzzzzz: unknown key (known: w_bits, a_bits)");
}

TEST_CASE("json_read: the origin adds the file and hint, and picks the error type", "[core]") {
  const json j = {{"layers", {{"w_bits", 0}}}};
  const JsonObject::Origin io{"m.bfcn", true, "; re-export it"};
  const JsonObject top(j, "", io);
  const JsonObject layer = top.get_object("layers");
  CHECK(error_of<IoError>([&] { layer.get_int("w_bits", 1, 4); }) ==
        "m.bfcn: layers.w_bits: expected an integer in [1, 4], but got 0; re-export it");
  const JsonObject cfg(j, "train", {"c.json", false, ""});
  CHECK(error_of<ConfigError>([&] { cfg.check_keys({"layer"}); }) ==
        "c.json: train.layers: unknown key; did you mean 'layer'? (known: layer)");
  // A config error is not an IoError.
  CHECK_THROWS_AS(cfg.get_int("layers", 0, 1), ConfigError);
  bool io_thrown = false;
  try {
    cfg.get_int("layers", 0, 1);
  } catch (const IoError&) {
    io_thrown = true;
  } catch (const ConfigError&) {
  }
  CHECK(!io_thrown);
}
