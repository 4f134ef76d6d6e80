// Reading JSON objects (configs, the .bfcn header) with one set of checks and one message form:
//   "<file>: <json.path>: expected an integer in [1, 4], but got 0<hint>"
// Every read names the file (when known), the full JSON path of the value, what was expected and
// what was found; an unknown key lists the known ones and suggests the closest (edit distance).
// Configs throw ConfigError, a malformed file format IoError (JsonObject::Origin::kind).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace bfcn {

// Levenshtein distance; and the candidate closest to `word`, or "" when none is within a small
// distance (max(2, |word|/3)): the "did you mean" of unknown keys, flags and commands.
size_t edit_distance(const std::string& a, const std::string& b);
std::string closest_match(const std::string& word, const std::vector<std::string>& candidates);

// "a string", "an integer", "a number", "an array", "an object", "a boolean", "null".
const char* json_type_word(const nlohmann::json& v);

// Where a JSON document came from, for the messages of JsonObject.
struct JsonOrigin {
  std::string file;  // prefixed to every message when not empty
  bool io = false;   // throw IoError (a file format) instead of ConfigError
  std::string hint;  // appended to every message, e.g. "; re-export it with `bfcn export`"
};

// A JSON object being read and where it sits. Required reads throw on a missing key, optional
// reads return the fallback; every read checks the type (integers do not fit floats' slots the
// other way round: 16.0 is not an integer) and the range.
class JsonObject {
 public:
  using Origin = JsonOrigin;
  // `path` is the JSON path of j ("model.quant", "layers[3]"; "" for the top level); j must
  // outlive this reader. Throws unless j is an object ("expected <expected>, but got ...").
  JsonObject(const nlohmann::json& j, std::string path, Origin origin = {},
             const char* expected = "an object");

  const nlohmann::json& value() const { return j_; }
  const std::string& path() const { return path_; }
  const Origin& origin() const { return origin_; }
  // The path of a key: "model.quant" + "w_bits" -> "model.quant.w_bits".
  std::string path_of(const std::string& key) const;
  bool has(const std::string& key) const { return j_.contains(key); }

  // Every key must be one of `known`:
  //   "model.quant.w_bit: unknown key; did you mean 'w_bits'? (known: w_bits, a_bits, ...)".
  void check_keys(const std::vector<std::string>& known) const;
  // The value of a required key: "model: missing key 'n_classes' (required: backbone, ...)"; the
  // list is `required` when given.
  const nlohmann::json& require(const std::string& key,
                                const std::vector<std::string>& required = {}) const;

  int get_int(const std::string& key, int64_t lo, int64_t hi) const;
  int get_int(const std::string& key, int64_t lo, int64_t hi, int fallback) const;
  int64_t get_int64(const std::string& key, int64_t lo, int64_t hi) const;
  double get_number(const std::string& key, double lo, double hi) const;
  double get_number(const std::string& key, double lo, double hi, double fallback) const;
  bool get_bool(const std::string& key) const;
  bool get_bool(const std::string& key, bool fallback) const;
  std::string get_string(const std::string& key) const;
  std::string get_string(const std::string& key, const std::string& fallback) const;
  // A string from `choices`: "model.head: expected one of fcn32s, fcn8s, but got 'fcn4s'".
  std::string get_choice(const std::string& key, const std::vector<std::string>& choices) const;
  std::string get_choice(const std::string& key, const std::vector<std::string>& choices,
                         const std::string& fallback) const;
  // A required object member, read with the same origin.
  JsonObject get_object(const std::string& key) const;

  // Throws the error of this object's kind: "<file>: <path_of(key)>: <what><hint>" ("" key: the
  // object itself).
  [[noreturn]] void fail(const std::string& key, const std::string& what) const;

 private:
  const nlohmann::json& typed(const std::string& key, bool ok_type, const char* expected) const;
  const nlohmann::json& j_;
  std::string path_;
  Origin origin_;
};

// The message of a value of the wrong type: "expected an integer, but got a string (\"21\")".
std::string json_type_mismatch(const char* expected, const nlohmann::json& got);
// The message of an unknown key: "unknown key; did you mean 'w_bits'? (known: w_bits, a_bits)".
std::string json_unknown_key(const std::string& key, const std::vector<std::string>& known);

}  // namespace bfcn
