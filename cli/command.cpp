#include "cli/command.h"

#include <algorithm>
#include <cstddef>
#include <cstdio>
#include <exception>
#include <map>
#include <sstream>

namespace bfcn::cli {

namespace {

std::map<std::string, std::vector<Command>>& registry() {
  static std::map<std::string, std::vector<Command>> r;
  return r;
}

std::vector<std::string> words(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream is(s);
  for (std::string w; is >> w;) out.push_back(w);
  return out;
}

}  // namespace

bool register_command(const std::string& group, Command cmd) {
  registry()[group].push_back(std::move(cmd));
  return true;
}

std::vector<Command> commands(const std::string& group) {
  auto it = registry().find(group);
  std::vector<Command> out = it == registry().end() ? std::vector<Command>{} : it->second;
  std::sort(out.begin(), out.end(),
            [](const Command& a, const Command& b) { return a.name < b.name; });
  return out;
}

std::string group_help(const Group& g) {
  const std::vector<Command> cmds = commands(g.name);
  size_t width = 8;
  for (const auto& c : cmds) width = std::max(width, c.name.size());
  std::ostringstream os;
  if (!g.title.empty()) os << g.title << "\n\n";
  os << "usage: " << g.name << " <command> [flags]   (" << g.name
     << " <command> --help for its flags and an example)\n\ncommands:\n";
  for (const auto& c : cmds) {
    os << "  " << c.name << std::string(width + 2 - c.name.size(), ' ') << c.summary << "\n";
  }
  os << "\n" << g.footer;
  if (!g.footer.empty() && g.footer.back() != '\n') os << "\n";
  return os.str();
}

int dispatch(const Group& g, const std::vector<std::string>& args) {
  if (args.empty()) {
    std::fputs(group_help(g).c_str(), stderr);
    return 1;
  }
  if (args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    std::fputs(group_help(g).c_str(), stdout);
    return 0;
  }
  const std::vector<Command> cmds = commands(g.name);
  const Command* found = nullptr;
  size_t used = 0;
  for (const auto& c : cmds) {
    const std::vector<std::string> w = words(c.name);
    if (w.size() <= args.size() && std::equal(w.begin(), w.end(), args.begin()) &&
        w.size() > used) {
      found = &c;
      used = w.size();
    }
  }
  if (found == nullptr) {
    std::vector<std::string> names;
    for (const auto& c : cmds) names.push_back(c.name);
    std::string given = args[0];
    // "make x" where "make fashion-seg" exists: show both words.
    for (const auto& n : names)
      if (n.rfind(args[0] + " ", 0) == 0 && args.size() > 1) given = args[0] + " " + args[1];
    std::string near = closest(given, names);
    for (const auto& n : names)
      if (near.empty() && n.rfind(args[0] + " ", 0) == 0) near = n;
    std::string known;
    for (const auto& n : names) known += (known.empty() ? "" : ", ") + n;
    throw UsageError(g.name + ": unknown command '" + given + "'" +
                     (near.empty() ? "" : " (did you mean '" + near + "'?)") + "; known: " + known +
                     " (see `" + g.name + " --help`)");
  }
  const std::vector<std::string> rest(args.begin() + static_cast<std::ptrdiff_t>(used), args.end());
  if (found->raw != nullptr) return found->raw(rest);
  const Args a(g.name + " " + found->name, found->flags, rest, found->help);
  if (a.help()) {
    std::fputs(a.help_text().c_str(), stdout);
    return 0;
  }
  return found->run(a);
}

int run_main(const std::string& program, const std::function<int()>& body) {
  try {
    return body();
  } catch (const UsageError& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  } catch (const Error& e) {
    std::fprintf(stderr, "%s: error: %s\n", program.c_str(), e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: internal error: %s\n", program.c_str(), e.what());
    return 2;
  }
}

}  // namespace bfcn::cli
