// Crash-safe file replacement: a file is written under a temporary name in the same folder,
// flushed to disk (fsync), renamed over the destination, and the folder is fsync'ed so the rename
// itself survives a power cut. A reader therefore sees the old file or the new one, never a part,
// and a failed write (disk full, file-size limit) leaves the old file untouched.
#pragma once

#include <filesystem>
#include <functional>

namespace bfcn {

// full: fsync the file before the rename and the folder after (checkpoints, models, logs: what a
// crash must not lose). rename_only: still never a partial file, but no fsync (bulk outputs such
// as generated images and prediction PNGs, where an fsync per file would cost ~10 ms each).
enum class Durability { full, rename_only };

// Writes `dst` by calling write(tmp) on a temporary path beside it, then commit_file. If write
// throws, the temporary file is removed and the exception propagates.
void write_file_atomically(const std::filesystem::path& dst,
                           const std::function<void(const std::filesystem::path& tmp)>& write,
                           Durability durability = Durability::full);

// fsync(tmp), rename(tmp, dst), fsync(dst's folder) (the fsyncs only for Durability::full). Throws
// IoError naming dst (tmp removed). Test hook: BFCN_FAULT_COMMIT_DELAY_MS=N sleeps N ms between the
// fsync and the rename, widening the window in which a crash test's SIGKILL lands mid-write
// (tests/train/kill_test.cpp).
void commit_file(const std::filesystem::path& tmp, const std::filesystem::path& dst,
                 Durability durability = Durability::full);

}  // namespace bfcn
