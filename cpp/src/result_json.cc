#include "stars/result_json.h"

#include <charconv>
#include <cstdint>
#include <variant>

#include "stars/json_writer.h"

namespace stars {
namespace {

// The one list of the Stats fields: their names and where each lives.
using StatMember = std::variant<int64_t Stats::*, double Stats::*, std::string Stats::*>;
struct StatField {
  const char* name;
  StatMember member;
};
const StatField kStatsFields[] = {
    {"policy_tokens_sampled", &Stats::policy_tokens_sampled},
    {"tokens_accepted", &Stats::tokens_accepted},
    {"tokens_wasted", &Stats::tokens_wasted},
    {"prompt_tokens", &Stats::prompt_tokens},
    {"policy_tokens_decoded", &Stats::policy_tokens_decoded},
    {"reward_calls", &Stats::reward_calls},
    {"reward_rows", &Stats::reward_rows},
    {"reward_tokens_decoded", &Stats::reward_tokens_decoded},
    {"reward_rows_truncated", &Stats::reward_rows_truncated},
    {"rounds", &Stats::rounds},
    {"mean_round_width", &Stats::mean_round_width},
    {"backend_tokens_sampled", &Stats::backend_tokens_sampled},
    {"sampling_fallback", &Stats::sampling_fallback},
    {"seconds_policy", &Stats::seconds_policy},
    {"seconds_reward", &Stats::seconds_reward},
    {"seconds_total", &Stats::seconds_total},
};

// printf's "%.3f" and "%.4g" without its locale: to_chars always writes a '.'.
std::string Format(double value, std::chars_format format, int precision) {
  char buffer[64];
  const auto done = std::to_chars(buffer, buffer + sizeof(buffer), value, format, precision);
  return std::string(buffer, done.ptr);
}
std::string Fixed3(double value) { return Format(value, std::chars_format::fixed, 3); }
std::string General4(double value) { return Format(value, std::chars_format::general, 4); }

void Tokens(JsonWriter& json, const std::vector<int32_t>& tokens) {
  json.BeginArray();
  for (int32_t token : tokens) json.Int(token);
  json.EndArray();
}

// {"token", "text", "bytes", "logprob"[, "top_logprobs": [...]]}: the bytes as OpenAI gives
// them, since a token may hold part of a UTF-8 character (its text then shows U+FFFD).
void Logprob(JsonWriter& json, const TokenLogprob& entry, bool with_top) {
  json.BeginObject();
  json.Key("token").Int(entry.token);
  json.Key("text").String(entry.text);
  json.Key("bytes").BeginArray();
  for (unsigned char byte : entry.text) json.Int(byte);
  json.EndArray();
  json.Key("logprob").Number(entry.logprob);
  if (with_top) {
    json.Key("top_logprobs").BeginArray();
    for (const TokenLogprob& alternative : entry.top) Logprob(json, alternative, false);
    json.EndArray();
  }
  json.EndObject();
}

void Logprobs(JsonWriter& json, const std::vector<TokenLogprob>& logprobs) {
  json.BeginArray();
  for (const TokenLogprob& entry : logprobs) Logprob(json, entry, true);
  json.EndArray();
}

}  // namespace

const std::vector<std::string>& StatsFieldNames() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (const StatField& field : kStatsFields) out.emplace_back(field.name);
    return out;
  }();
  return names;
}

std::string ResultJson(const Result& result, int indent) {
  JsonWriter json(indent);
  json.BeginObject();
  json.Key("text").String(result.text);
  json.Key("tokens");
  Tokens(json, result.tokens);
  json.Key("logprobs");
  Logprobs(json, result.logprobs);
  json.Key("finish_reason").String(FinishReasonName(result.finish_reason));
  json.Key("reward").Number(result.reward);
  json.Key("segments").BeginArray();
  for (const Segment& segment : result.segments) {
    json.BeginObject();
    json.Key("text").String(segment.text);
    json.Key("tokens");
    Tokens(json, segment.tokens);
    json.Key("logprobs");
    Logprobs(json, segment.logprobs);
    json.Key("attempts").Int(segment.attempts);
    json.Key("rewards").BeginArray();
    for (double reward : segment.rewards) json.Number(reward);
    json.EndArray();
    json.Key("reward").Number(segment.reward);
    json.Key("threshold").Number(segment.threshold);
    json.Key("fallback").Bool(segment.fallback);
    json.EndObject();
  }
  json.EndArray();
  json.Key("stats").BeginObject();
  for (const StatField& field : kStatsFields) {
    json.Key(field.name);
    if (const auto* i = std::get_if<int64_t Stats::*>(&field.member)) {
      json.Int(result.stats.*(*i));
    } else if (const auto* f = std::get_if<double Stats::*>(&field.member)) {
      json.Number(result.stats.*(*f));
    } else {
      json.String(result.stats.*std::get<std::string Stats::*>(field.member));
    }
  }
  json.EndObject();
  json.EndObject();
  return json.text();
}

std::string ResultTrace(const Result& result) {
  std::string out;
  for (size_t i = 0; i < result.segments.size(); ++i) {
    const Segment& s = result.segments[i];
    out += "segment " + std::to_string(i) + ": attempts=" + std::to_string(s.attempts) +
           " tau=" + (s.threshold ? Fixed3(*s.threshold) : "-") + " rewards=[";
    for (size_t k = 0; k < s.rewards.size(); ++k) out += (k ? ", " : "") + Fixed3(s.rewards[k]);
    out += std::string("]") + (s.fallback ? " fallback" : "") + " " + JsonString(s.text) + "\n";
  }
  out += "stats:";
  for (const StatField& field : kStatsFields) {
    out += std::string(" ") + field.name + "=";
    if (const auto* i = std::get_if<int64_t Stats::*>(&field.member)) {
      out += std::to_string(result.stats.*(*i));
    } else if (const auto* f = std::get_if<double Stats::*>(&field.member)) {
      out += General4(result.stats.*(*f));
    } else {  // a reason the engine words, printed as it is
      out += result.stats.*std::get<std::string Stats::*>(field.member);
    }
  }
  out += std::string("\nfinish_reason=") + FinishReasonName(result.finish_reason) +
         " reward=" + (result.reward ? JsonNumber(*result.reward) : "-") + "\n";
  return out;
}

}  // namespace stars
