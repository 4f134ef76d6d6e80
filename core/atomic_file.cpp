#include "core/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "core/error.h"

namespace bfcn {

namespace fs = std::filesystem;

namespace {

// fsync of a file or folder by path; false with errno set on failure.
bool fsync_path(const fs::path& p, int flags) {
  const int fd = ::open(p.c_str(), flags | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = ::fsync(fd) == 0;
  const int saved = errno;
  ::close(fd);
  errno = saved;
  return ok;
}

}  // namespace

void commit_file(const fs::path& tmp, const fs::path& dst, Durability durability) {
  const bool sync = durability == Durability::full;
  auto fail = [&](const std::string& what) {
    const std::string why = std::strerror(errno);
    std::error_code ec;
    fs::remove(tmp, ec);
    throw IoError(dst.string() + ": " + what + ": " + why + " (the previous " +
                  dst.filename().string() + ", if any, is unchanged)");
  };
  if (sync && !fsync_path(tmp, O_RDONLY)) fail("cannot flush " + tmp.string() + " to disk");
  if (const char* delay = std::getenv("BFCN_FAULT_COMMIT_DELAY_MS"))
    std::this_thread::sleep_for(std::chrono::milliseconds(std::atoi(delay)));
  if (::rename(tmp.c_str(), dst.c_str()) != 0)
    fail("cannot rename " + tmp.string() + " into place");
  const fs::path dir = dst.has_parent_path() ? dst.parent_path() : fs::path(".");
  if (sync && !fsync_path(dir, O_RDONLY | O_DIRECTORY))
    throw IoError(dst.string() + ": written, but its folder could not be flushed to disk: " +
                  std::strerror(errno));
}

void write_file_atomically(const fs::path& dst, const std::function<void(const fs::path&)>& write,
                           Durability durability) {
  const fs::path tmp = dst.string() + ".tmp";
  try {
    write(tmp);
  } catch (...) {
    std::error_code ec;
    fs::remove(tmp, ec);
    throw;
  }
  commit_file(tmp, dst, durability);
}

}  // namespace bfcn
