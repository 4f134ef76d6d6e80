// metrics.jsonl writer: appends and flushes one line per record (a crash loses at most the line
// being written); resume rewrites the kept prefix through a temp file + rename.
#include "train/metrics_log.h"

#include <fstream>

#include "core/atomic_file.h"
#include "core/error.h"

namespace bfcn {

namespace fs = std::filesystem;
using nlohmann::json;

std::vector<json> read_metrics_file(const fs::path& file) {
  std::ifstream in(file);
  BFCN_CHECK_IO(in.good(), file.string(), ": cannot open metrics log");
  std::vector<json> out;
  std::string line;
  int64_t n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.empty()) continue;
    try {
      out.push_back(json::parse(line));
    } catch (const json::parse_error&) {
      // A torn last line (killed mid-write) is dropped; anything else is corruption.
      BFCN_CHECK_IO(in.peek() == EOF, file.string(), ":", n, ": not a JSON line");
    }
  }
  return out;
}

MetricsLog::MetricsLog(const fs::path& file, int64_t resume_from) : file_(file) {
  std::vector<json> kept;
  if (resume_from >= 0 && fs::exists(file)) {
    for (auto& r : read_metrics_file(file))
      if (r.value("iter", int64_t{0}) <= resume_from) kept.push_back(std::move(r));
  }
  write_file_atomically(file, [&](const fs::path& tmp) {
    std::ofstream out(tmp, std::ios::trunc);
    for (const auto& r : kept) out << r.dump() << '\n';
    out.flush();
    BFCN_CHECK_IO(out.good(), tmp.string(), ": cannot write the metrics log (disk full?)");
  });
  for (const auto& r : kept) remember(r);
}

void MetricsLog::remember(const json& r) {
  const int64_t it = r.at("iter").get<int64_t>();
  if (r.contains("loss") && r["loss"].is_number()) losses_.push_back({it, r["loss"].get<double>()});
  if (r.contains("val_miou") && r["val_miou"].is_number())
    val_miou_.push_back({it, r["val_miou"].get<double>()});
}

void MetricsLog::log(const json& record) {
  BFCN_ASSERT(record.contains("iter"));
  std::ofstream out(file_, std::ios::app);
  BFCN_CHECK_IO(out.good(), file_.string(), ": cannot append to the metrics log");
  out << record.dump() << '\n';
  out.flush();
  BFCN_CHECK_IO(out.good(), file_.string(),
                ": cannot append to the metrics log (disk full or file-size limit?)");
  remember(record);
}

}  // namespace bfcn
