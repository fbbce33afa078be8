// The Result as text, for every front end alike: its JSON (--json, the dataset's records, the
// server's trace) and the verbose trace (--verbose), so both CLIs print the same bytes.
#pragma once

#include <string>
#include <vector>

#include "stars/result.h"

namespace stars {

// The Stats fields' names, in the order ResultJson and ResultTrace write them.
const std::vector<std::string>& StatsFieldNames();

// {"text", "tokens", "logprobs", "finish_reason", "reward", "segments": [{"text", "tokens",
// "logprobs", "attempts", "rewards", "reward", "threshold", "fallback"}...], "stats":
// {StatsFieldNames()...}}, a logprob being {"token", "text", "bytes", "logprob",
// "top_logprobs": [{"token", "text", "bytes", "logprob"}...]} (empty lists without logprobs), with
// json_writer.h's numbers and strings; an absent reward or threshold is null. indent: as
// JsonWriter's (0: one line).
std::string ResultJson(const Result& result, int indent = 2);

// One line per segment ("segment 0: attempts=2 tau=0.500 rewards=[0.300, 0.700] fallback"
// and its text as a JSON string), a "stats:" line of name=value pairs and a "finish_reason="
// line with the reward; "-" stands for an absent tau or reward.
std::string ResultTrace(const Result& result);

}  // namespace stars
