// Errors. BFCN_CHECK guards API boundaries (bad shapes, bad config, bad files) and throws a
// bfcn::Error whose message is built only on failure; write it as "<where>: expected X, but got Y".
// BFCN_ASSERT guards internal invariants: it aborts with file:line and is never caught.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <stdexcept>
#include <string>

namespace bfcn {

// A user-facing error (bad input, config, file): the CLI prints it and exits 1.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
// Bad configuration value or key; the message names the JSON path.
class ConfigError : public Error {
 public:
  using Error::Error;
};
// A file that is missing, unreadable or malformed; the message names the file.
class IoError : public Error {
 public:
  using Error::Error;
};

namespace detail {
template <class... Parts>
std::string concat(const Parts&... parts) {
  std::ostringstream os;
  (os << ... << parts);
  return os.str();
}
}  // namespace detail

}  // namespace bfcn

#define BFCN_CHECK(cond, ...)                                              \
  do {                                                                     \
    if (!(cond)) throw ::bfcn::Error(::bfcn::detail::concat(__VA_ARGS__)); \
  } while (0)

#define BFCN_CHECK_IO(cond, ...)                                             \
  do {                                                                       \
    if (!(cond)) throw ::bfcn::IoError(::bfcn::detail::concat(__VA_ARGS__)); \
  } while (0)

#define BFCN_CHECK_CONFIG(cond, ...)                                             \
  do {                                                                           \
    if (!(cond)) throw ::bfcn::ConfigError(::bfcn::detail::concat(__VA_ARGS__)); \
  } while (0)

#define BFCN_ASSERT(cond)                                                                        \
  do {                                                                                           \
    if (!(cond)) {                                                                               \
      std::fprintf(stderr, "%s:%d: internal error: assertion '%s' failed\n", __FILE__, __LINE__, \
                   #cond);                                                                       \
      std::abort();                                                                              \
    }                                                                                            \
  } while (0)
