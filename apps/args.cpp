#include "apps/args.h"

#include <sstream>

#include "core/error.h"

namespace bfcn::app {

Args::Args(const std::string& command, const std::vector<FlagSpec>& specs,
           const std::vector<std::string>& args)
    : command_(command), specs_(specs) {
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--help" || a == "-h") {
      help_ = true;
      continue;
    }
    if (a.rfind("--", 0) != 0) {
      positional_.push_back(a);
      continue;
    }
    std::string name = a.substr(2), value;
    bool inline_value = false;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      inline_value = true;
    }
    const FlagSpec* spec = nullptr;
    for (const auto& s : specs_)
      if (s.name == name) spec = &s;
    if (spec == nullptr) {
      std::string known;
      for (const auto& s : specs_) known += (known.empty() ? "--" : ", --") + s.name;
      throw Error(command_ + ": unknown flag '--" + name + "' (known: " + known + ")");
    }
    if (spec->takes_value) {
      if (!inline_value) {
        if (i + 1 >= args.size()) throw Error(command_ + ": flag --" + name + " needs a value");
        value = args[++i];
      }
    } else if (inline_value) {
      throw Error(command_ + ": flag --" + name + " takes no value");
    } else {
      value = "1";
    }
    auto& slot = values_[name];
    if (!spec->repeatable && !slot.empty())
      throw Error(command_ + ": flag --" + name + " given more than once");
    slot.push_back(value);
  }
}

bool Args::has(const std::string& name) const { return values_.count(name) > 0; }

std::string Args::get(const std::string& name, const std::string& fallback) const {
  auto it = values_.find(name);
  return it == values_.end() ? fallback : it->second.back();
}

std::string Args::require(const std::string& name) const {
  BFCN_CHECK(has(name), command_, ": --", name, " is required (see `", command_, " --help`)");
  return get(name);
}

int Args::get_int(const std::string& name, int fallback) const {
  if (!has(name)) return fallback;
  const std::string v = get(name);
  try {
    size_t pos = 0;
    int x = std::stoi(v, &pos);
    if (pos == v.size()) return x;
  } catch (const std::exception&) {
  }
  throw Error(command_ + ": --" + name + " expects an integer, but got '" + v + "'");
}

double Args::get_double(const std::string& name, double fallback) const {
  if (!has(name)) return fallback;
  const std::string v = get(name);
  try {
    size_t pos = 0;
    double x = std::stod(v, &pos);
    if (pos == v.size()) return x;
  } catch (const std::exception&) {
  }
  throw Error(command_ + ": --" + name + " expects a number, but got '" + v + "'");
}

std::vector<std::string> Args::get_all(const std::string& name) const {
  auto it = values_.find(name);
  return it == values_.end() ? std::vector<std::string>{} : it->second;
}

std::string Args::usage() const {
  std::ostringstream os;
  for (const auto& s : specs_) {
    std::string left = "  --" + s.name;
    os << left;
    for (size_t i = left.size(); i < 22; ++i) os << ' ';
    os << ' ' << s.help << (s.repeatable ? " (repeatable)" : "") << '\n';
  }
  os << "  --help                 this text\n";
  return os.str();
}

std::pair<int, int> parse_hw(const std::string& flag, const std::string& text) {
  auto bad = [&] {
    return Error("--" + flag + ": expected HxW such as 512x512 (or one number), but got '" + text +
                 "'");
  };
  try {
    size_t x = text.find('x');
    size_t pos = 0;
    if (x == std::string::npos) {
      int v = std::stoi(text, &pos);
      if (pos != text.size() || v <= 0) throw bad();
      return {v, v};
    }
    int h = std::stoi(text.substr(0, x), &pos);
    if (pos != x) throw bad();
    std::string ws = text.substr(x + 1);
    int w = std::stoi(ws, &pos);
    if (pos != ws.size() || h <= 0 || w <= 0) throw bad();
    return {h, w};
  } catch (const Error&) {
    throw;
  } catch (const std::exception&) {
    throw bad();
  }
}

}  // namespace bfcn::app
