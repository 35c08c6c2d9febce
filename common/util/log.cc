#include "common/util/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>

namespace cohort {

void InitLogging(const std::string& component, bool json, spdlog::level::level_enum level) {
  auto logger = spdlog::stderr_color_mt(component);
  if (json) {
    // The message is escaped by the caller's format; keep the envelope minimal and parseable.
    logger->set_pattern(
        R"({"time":"%Y-%m-%dT%H:%M:%S.%e%z","level":"%l","component":"%n","msg":"%v"})");
  } else {
    logger->set_pattern("%Y-%m-%d %H:%M:%S.%e %^%l%$ [%n] %v");
  }
  logger->set_level(level);
  spdlog::set_default_logger(logger);
}

}  // namespace cohort
