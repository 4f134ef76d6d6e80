// One set of JSON getters (see core/json_read.h).
#include "core/json_read.h"

#include <algorithm>

#include "core/error.h"

namespace bfcn {

using nlohmann::json;

namespace {

std::string join(const std::vector<std::string>& v, const char* sep = ", ") {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? sep : "") + v[i];
  return s;
}

}  // namespace

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1])});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string closest_match(const std::string& word, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_d = std::max<size_t>(2, word.size() / 3) + 1;  // farther than this is no hint
  for (const auto& c : candidates) {
    const size_t d = edit_distance(word, c);
    if (d < best_d) {
      best_d = d;
      best = c;
    }
  }
  return best;
}

const char* json_type_word(const json& v) {
  if (v.is_boolean()) return "a boolean";
  if (v.is_number_integer()) return "an integer";
  if (v.is_number()) return "a number";
  if (v.is_string()) return "a string";
  if (v.is_array()) return "an array";
  if (v.is_object()) return "an object";
  return "null";
}

std::string json_type_mismatch(const char* expected, const json& got) {
  return detail::concat("expected ", expected, ", but got ", json_type_word(got), " (", got.dump(),
                        ")");
}

std::string json_unknown_key(const std::string& key, const std::vector<std::string>& known) {
  const std::string near = closest_match(key, known);
  return "unknown key" + (near.empty() ? std::string() : "; did you mean '" + near + "'?") +
         " (known: " + join(known) + ")";
}

JsonObject::JsonObject(const json& j, std::string path, Origin origin, const char* expected)
    : j_(j), path_(std::move(path)), origin_(std::move(origin)) {
  if (!j_.is_object()) fail("", json_type_mismatch(expected, j_));
}

std::string JsonObject::path_of(const std::string& key) const {
  if (key.empty()) return path_;
  return path_.empty() ? key : path_ + "." + key;
}

void JsonObject::fail(const std::string& key, const std::string& what) const {
  const std::string p = path_of(key);
  std::string msg = origin_.file.empty() ? "" : origin_.file + ": ";
  msg += (p.empty() ? "" : p + ": ") + what + origin_.hint;
  if (origin_.io) throw IoError(msg);
  throw ConfigError(msg);
}

void JsonObject::check_keys(const std::vector<std::string>& known) const {
  for (const auto& [key, v] : j_.items())
    if (std::find(known.begin(), known.end(), key) == known.end())
      fail(key, json_unknown_key(key, known));
}

const json& JsonObject::require(const std::string& key,
                                const std::vector<std::string>& required) const {
  const auto it = j_.find(key);
  if (it == j_.end())
    fail("", "missing key '" + key + "'" +
                 (required.empty() ? "" : " (required: " + join(required) + ")"));
  return *it;
}

const json& JsonObject::typed(const std::string& key, bool ok_type, const char* expected) const {
  const json& v = j_.at(key);
  if (!ok_type) fail(key, json_type_mismatch(expected, v));
  return v;
}

int64_t JsonObject::get_int64(const std::string& key, int64_t lo, int64_t hi) const {
  const json& v = typed(key, require(key).is_number_integer(), "an integer");
  // Unsigned values above INT64_MAX are out of every range we accept.
  if (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(INT64_MAX))
    fail(key, detail::concat("expected an integer in [", lo, ", ", hi, "], but got ", v.dump()));
  const int64_t x = v.get<int64_t>();
  if (x < lo || x > hi)
    fail(key, detail::concat("expected an integer in [", lo, ", ", hi, "], but got ", x));
  return x;
}

int JsonObject::get_int(const std::string& key, int64_t lo, int64_t hi) const {
  BFCN_ASSERT(lo >= INT32_MIN && hi <= INT32_MAX);
  return static_cast<int>(get_int64(key, lo, hi));
}

int JsonObject::get_int(const std::string& key, int64_t lo, int64_t hi, int fallback) const {
  return has(key) ? get_int(key, lo, hi) : fallback;
}

double JsonObject::get_number(const std::string& key, double lo, double hi) const {
  const double x = typed(key, require(key).is_number(), "a number").get<double>();
  if (!(x >= lo && x <= hi))
    fail(key, detail::concat("expected a number in [", lo, ", ", hi, "], but got ", x));
  return x;
}

double JsonObject::get_number(const std::string& key, double lo, double hi, double fallback) const {
  return has(key) ? get_number(key, lo, hi) : fallback;
}

bool JsonObject::get_bool(const std::string& key) const {
  return typed(key, require(key).is_boolean(), "a boolean").get<bool>();
}

bool JsonObject::get_bool(const std::string& key, bool fallback) const {
  return has(key) ? get_bool(key) : fallback;
}

std::string JsonObject::get_string(const std::string& key) const {
  return typed(key, require(key).is_string(), "a string").get<std::string>();
}

std::string JsonObject::get_string(const std::string& key, const std::string& fallback) const {
  return has(key) ? get_string(key) : fallback;
}

std::string JsonObject::get_choice(const std::string& key,
                                   const std::vector<std::string>& choices) const {
  const json& v = require(key);
  if (!v.is_string())
    fail(key, "expected one of " + join(choices) + ", but got " + json_type_word(v) + " (" +
                  v.dump() + ")");
  std::string s = v.get<std::string>();
  if (std::find(choices.begin(), choices.end(), s) == choices.end()) {
    const std::string near = closest_match(s, choices);
    fail(key, "expected one of " + join(choices) + ", but got '" + s + "'" +
                  (near.empty() ? "" : " (did you mean '" + near + "'?)"));
  }
  return s;
}

std::string JsonObject::get_choice(const std::string& key, const std::vector<std::string>& choices,
                                   const std::string& fallback) const {
  return has(key) ? get_choice(key, choices) : fallback;
}

JsonObject JsonObject::get_object(const std::string& key) const {
  return JsonObject(typed(key, require(key).is_object(), "an object"), path_of(key), origin_);
}

}  // namespace bfcn
