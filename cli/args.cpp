#include "cli/args.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <optional>
#include <sstream>

namespace bfcn::cli {

namespace {

std::string format_number(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

std::string join(const std::vector<std::string>& items, const std::string& sep) {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : sep) + s;
  return out;
}

bool bounded_below(const Flag& f) { return std::isfinite(f.lo); }
bool bounded_above(const Flag& f) { return std::isfinite(f.hi); }

// "integer >= 1", "integer in 1..8", "number in [0, 1)".
std::string kind_text(const Flag& f) {
  const char* kind = f.type == FlagType::integer ? "integer" : "number";
  std::string s = kind;
  if (bounded_below(f) && bounded_above(f)) {
    if (f.type == FlagType::integer && !f.hi_open)
      s += " in " + format_number(f.lo) + ".." + format_number(f.hi);
    else
      s += " in [" + format_number(f.lo) + ", " + format_number(f.hi) + (f.hi_open ? ")" : "]");
  } else if (bounded_below(f)) {
    s += " >= " + format_number(f.lo);
  } else if (bounded_above(f)) {
    s += (f.hi_open ? " < " : " <= ") + format_number(f.hi);
  }
  return s;
}

std::optional<long long> parse_integer(const std::string& v) {
  long long x = 0;
  const char* end = v.data() + v.size();
  const char* begin = v.data() + (!v.empty() && v[0] == '+' ? 1 : 0);
  auto [ptr, ec] = std::from_chars(begin, end, x);
  if (ec != std::errc() || ptr != end || begin == end) return std::nullopt;
  return x;
}

std::optional<double> parse_number(const std::string& v) {
  double x = 0;
  const char* end = v.data() + v.size();
  const char* begin = v.data() + (!v.empty() && v[0] == '+' ? 1 : 0);
  auto [ptr, ec] = std::from_chars(begin, end, x);
  if (ec != std::errc() || ptr != end || begin == end || !std::isfinite(x)) return std::nullopt;
  return x;
}

bool in_range(const Flag& f, double x) { return x >= f.lo && (f.hi_open ? x < f.hi : x <= f.hi); }

// Checks one value against its flag; throws UsageError "<command>: --<flag>: expected ..., got
// 'v'".
void check_value(const std::string& command, const Flag& f, const std::string& v) {
  auto bad = [&](const std::string& expected) {
    return UsageError(command + ": --" + f.name + ": expected " + expected + ", got '" + v + "'");
  };
  switch (f.type) {
    case FlagType::integer: {
      const auto x = parse_integer(v);
      if (!x) throw bad("an integer");
      if (*x < std::numeric_limits<int>::min() || *x > std::numeric_limits<int>::max() ||
          !in_range(f, static_cast<double>(*x)))
        throw bad("an " + kind_text(f));
      break;
    }
    case FlagType::number: {
      const auto x = parse_number(v);
      if (!x) throw bad("a number");
      if (!in_range(f, *x)) throw bad("a " + kind_text(f));
      break;
    }
    case FlagType::choice:
      if (std::find(f.choices.begin(), f.choices.end(), v) == f.choices.end())
        throw bad("one of " + join(f.choices, ", "));
      break;
    case FlagType::size:
      try {
        parse_hw(f.name, v, bounded_below(f) ? static_cast<int>(f.lo) : 1);
      } catch (const UsageError& e) {
        throw UsageError(command + ": " + e.what());
      }
      break;
    case FlagType::text:
    case FlagType::boolean:
      break;
  }
}

}  // namespace

Flag& Flag::at_least(double v) {
  lo = v;
  return *this;
}
Flag& Flag::range(double min, double max) {
  lo = min;
  hi = max;
  hi_open = false;
  return *this;
}
Flag& Flag::range_open(double min, double below) {
  lo = min;
  hi = below;
  hi_open = true;
  return *this;
}
Flag& Flag::defaults(std::string text) {
  def = std::move(text);
  return *this;
}
Flag& Flag::many() {
  repeatable = true;
  return *this;
}
Flag& Flag::needed() {
  required = true;
  return *this;
}

std::string Flag::annotation() const {
  std::vector<std::string> parts;
  switch (type) {
    case FlagType::integer:
    case FlagType::number:
      parts.push_back(kind_text(*this));
      break;
    case FlagType::choice:
      parts.push_back("one of " + join(choices, ", "));
      break;
    case FlagType::size:
      parts.push_back("HxW or one side" +
                      (bounded_below(*this) ? ", sides >= " + format_number(lo) : std::string()));
      break;
    case FlagType::text:
    case FlagType::boolean:
      break;
  }
  if (required) parts.push_back("required");
  if (repeatable) parts.push_back("repeatable");
  if (!def.empty()) parts.push_back("default " + def);
  return join(parts, "; ");
}

Flag text(std::string name, std::string meta, std::string help) {
  Flag f;
  f.name = std::move(name);
  f.meta = std::move(meta);
  f.help = std::move(help);
  return f;
}
Flag integer(std::string name, std::string meta, std::string help) {
  Flag f = text(std::move(name), std::move(meta), std::move(help));
  f.type = FlagType::integer;
  return f;
}
Flag number(std::string name, std::string meta, std::string help) {
  Flag f = text(std::move(name), std::move(meta), std::move(help));
  f.type = FlagType::number;
  return f;
}
Flag boolean(std::string name, std::string help) {
  Flag f = text(std::move(name), "", std::move(help));
  f.type = FlagType::boolean;
  return f;
}
Flag choice(std::string name, std::vector<std::string> choices, std::string help) {
  Flag f = text(std::move(name), "", std::move(help));
  f.meta = join(choices, "|");
  f.type = FlagType::choice;
  f.choices = std::move(choices);
  return f;
}
Flag size(std::string name, std::string help) {
  Flag f = text(std::move(name), "HxW", std::move(help));
  f.type = FlagType::size;
  return f;
}

Args::Args(std::string command, std::vector<Flag> flags, const std::vector<std::string>& args,
           HelpText help_text)
    : command_(std::move(command)), flags_(std::move(flags)), text_(std::move(help_text)) {
  for (const Flag& f : flags_) {
    // A declared default must itself be valid: a wrong one is a programming error.
    if (!f.def.empty()) check_value(command_ + " (default)", f, f.def);
  }
  // The first problem is kept, not thrown at once: --help anywhere still prints the help.
  std::optional<UsageError> problem;
  auto fail = [&](const std::string& message) {
    if (!problem) problem.emplace(command_ + ": " + message);
  };
  std::vector<std::string> names;
  for (const Flag& f : flags_) names.push_back("--" + f.name);
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--help" || a == "-h") {
      help_ = true;
      continue;
    }
    if (a.rfind("--", 0) != 0 || a.size() == 2) {
      fail("unexpected argument '" + a + "' (flags start with --; see `" + command_ + " --help`)");
      continue;
    }
    std::string name = a.substr(2), value;
    bool inline_value = false;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      inline_value = true;
    }
    const auto it =
        std::find_if(flags_.begin(), flags_.end(), [&](const Flag& f) { return f.name == name; });
    if (it == flags_.end()) {
      const std::string near = closest("--" + name, names);
      fail("unknown flag '--" + name + "'" + (near.empty() ? "" : " (did you mean " + near + "?)") +
           "; known: " + (names.empty() ? std::string("none") : join(names, ", ")));
      continue;
    }
    const Flag& f = *it;
    if (f.type != FlagType::boolean) {
      if (!inline_value) {
        if (i + 1 >= args.size()) {
          fail("--" + name + " needs a value" + (f.meta.empty() ? "" : " (" + f.meta + ")"));
          continue;
        }
        value = args[++i];
      }
      try {
        check_value(command_, f, value);
      } catch (const UsageError& e) {
        if (!problem) problem.emplace(e.what());
        continue;
      }
    } else if (inline_value) {
      fail("--" + name + " takes no value, got '" + value + "'");
      continue;
    } else {
      value = "1";
    }
    auto& slot = values_[name];
    if (!f.repeatable && !slot.empty()) {
      fail("--" + name + " given more than once");
      continue;
    }
    slot.push_back(value);
  }
  if (help_) return;
  if (problem) throw *problem;
  for (const Flag& f : flags_)
    if (f.required && !has(f.name))
      throw UsageError(command_ + ": --" + f.name + " is required (see `" + command_ + " --help`)");
}

const Flag& Args::spec(const std::string& name) const {
  for (const Flag& f : flags_)
    if (f.name == name) return f;
  throw std::logic_error(command_ + ": flag --" + name + " read but never declared");
}

bool Args::has(const std::string& name) const {
  spec(name);
  return values_.count(name) > 0;
}

std::string Args::get(const std::string& name, const std::string& fallback) const {
  const Flag& f = spec(name);
  auto it = values_.find(name);
  if (it != values_.end()) return it->second.back();
  return f.def.empty() ? fallback : f.def;
}

std::string Args::require(const std::string& name) const {
  if (!has(name))
    throw UsageError(command_ + ": --" + name + " is required (see `" + command_ + " --help`)");
  return get(name);
}

int Args::get_int(const std::string& name) const {
  const Flag& f = spec(name);
  const std::string v = get(name);
  if (f.type != FlagType::integer || v.empty())
    throw std::logic_error(command_ + ": --" + name + " is not an integer flag with a default");
  return static_cast<int>(*parse_integer(v));
}

int Args::get_int(const std::string& name, int fallback) const {
  return has(name) ? get_int(name) : fallback;
}

double Args::get_double(const std::string& name) const {
  const Flag& f = spec(name);
  const std::string v = get(name);
  if ((f.type != FlagType::number && f.type != FlagType::integer) || v.empty())
    throw std::logic_error(command_ + ": --" + name + " is not a number flag with a default");
  return *parse_number(v);
}

double Args::get_double(const std::string& name, double fallback) const {
  return has(name) ? get_double(name) : fallback;
}

std::pair<int, int> Args::get_hw(const std::string& name) const {
  const Flag& f = spec(name);
  const std::string v = get(name);
  if (f.type != FlagType::size || v.empty())
    throw std::logic_error(command_ + ": --" + name + " is not a size flag with a default");
  return parse_hw(name, v);
}

std::pair<int, int> Args::get_hw(const std::string& name, std::pair<int, int> fallback) const {
  return has(name) ? get_hw(name) : fallback;
}

std::vector<std::string> Args::get_all(const std::string& name) const {
  spec(name);
  auto it = values_.find(name);
  return it == values_.end() ? std::vector<std::string>{} : it->second;
}

std::string Args::usage() const {
  std::ostringstream os;
  auto line = [&](const std::string& left, const std::string& right) {
    os << left << std::string(left.size() < 24 ? 26 - left.size() : 2, ' ') << right << '\n';
  };
  for (const Flag& f : flags_) {
    const std::string note = f.annotation();
    std::string right = f.help;
    if (!note.empty()) right += (right.empty() ? "(" : " (") + note + ")";
    line("  --" + f.name + (f.meta.empty() ? "" : " " + f.meta), right);
  }
  line("  -h, --help", "this text");
  return os.str();
}

std::string Args::help_text() const {
  std::ostringstream os;
  os << "usage: " << (text_.usage.empty() ? command_ + " [flags]" : text_.usage) << "\n";
  if (!text_.description.empty()) os << text_.description << "\n";
  os << "\nflags:\n" << usage();
  if (!text_.examples.empty()) {
    os << (text_.examples.size() == 1 ? "\nExample:\n" : "\nExamples:\n");
    for (const auto& e : text_.examples) os << "  " << e << "\n";
  }
  return os.str();
}

std::pair<int, int> parse_hw(const std::string& flag, const std::string& text, int min_side) {
  auto bad = [&] {
    return UsageError("--" + flag + ": expected HxW such as 512x512 (or one number)" +
                      (min_side > 1 ? " with sides >= " + std::to_string(min_side) : "") +
                      ", got '" + text + "'");
  };
  const size_t x = text.find('x');
  const auto h = parse_integer(text.substr(0, x));
  const auto w = x == std::string::npos ? h : parse_integer(text.substr(x + 1));
  if (!h || !w || *h < min_side || *w < min_side || *h < 1 || *w < 1 ||
      *h > std::numeric_limits<int>::max() || *w > std::numeric_limits<int>::max())
    throw bad();
  return {static_cast<int>(*h), static_cast<int>(*w)};
}

}  // namespace bfcn::cli
