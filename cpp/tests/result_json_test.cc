// Unit tests (GoogleTest) of the Result's JSON and trace text: numbers, string escapes (invalid
// UTF-8 included), the layout, and a whole Result.
#include "stars/result_json.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>

#include "stars/json_writer.h"
#include "stars/result.h"

namespace {

TEST(JsonWriter, Numbers) {
  EXPECT_EQ(stars::JsonNumber(1.0), "1.0");  // reads back as a float, not an int
  EXPECT_EQ(stars::JsonNumber(-0.0), "-0.0");
  EXPECT_EQ(stars::JsonNumber(1000.0), "1000.0");
  EXPECT_EQ(stars::JsonNumber(0.1), "0.1");
  EXPECT_EQ(stars::JsonNumber(0.1 + 0.2), "0.30000000000000004");
  EXPECT_EQ(stars::JsonNumber(-0.734375), "-0.734375");
  EXPECT_EQ(stars::JsonNumber(1e-5), "1e-05");
  EXPECT_EQ(stars::JsonNumber(1e16), "1e+16");
  EXPECT_EQ(stars::JsonNumber(std::nan("")), "null");
  EXPECT_EQ(stars::JsonNumber(std::numeric_limits<double>::infinity()), "null");
}

TEST(JsonWriter, StringsAndInvalidUtf8) {
  EXPECT_EQ(stars::JsonString("say \"hi\"\\"), R"("say \"hi\"\\")");
  EXPECT_EQ(stars::JsonString("a\nb\tc\r\b\f\x01\x7f"), R"("a\nb\tc\r\b\f\u0001\u007f")");
  EXPECT_EQ(stars::JsonString("caf\xc3\xa9 \xe2\x82\xac"), R"("caf\u00e9 \u20ac")");
  EXPECT_EQ(stars::JsonString("\xf0\x9f\x98\x80"), R"("\ud83d\ude00")");  // a surrogate pair
  // Invalid UTF-8 as Python's errors="replace" reads it: one U+FFFD per maximal invalid prefix.
  EXPECT_EQ(stars::JsonString("\xe2\x82"), R"("\ufffd")");  // a character cut short
  EXPECT_EQ(stars::JsonString("\xe2\x82"
                              "a"),
            R"("\ufffda")");
  EXPECT_EQ(stars::JsonString("\xf0\x9f\x98"), R"("\ufffd")");
  EXPECT_EQ(stars::JsonString("a\x80"
                              "b\xff"),
            R"("a\ufffdb\ufffd")");
  EXPECT_EQ(stars::JsonString("\xc0\xaf"), R"("\ufffd\ufffd")");                      // overlong
  EXPECT_EQ(stars::JsonString("\xed\xa0\x80"), R"("\ufffd\ufffd\ufffd")");            // a surrogate
  EXPECT_EQ(stars::JsonString("\xf4\x90\x80\x80"), R"("\ufffd\ufffd\ufffd\ufffd")");  // > 10FFFF
}

TEST(JsonWriter, Layout) {
  stars::JsonWriter pretty(2);
  pretty.BeginObject().Key("a").BeginArray().EndArray().Key("b").BeginObject().EndObject();
  pretty.Key("c").BeginArray().Int(1).Null().Bool(true).EndArray().EndObject();
  EXPECT_EQ(pretty.text(),
            "{\n  \"a\": [],\n  \"b\": {},\n  \"c\": [\n    1,\n    null,\n    true\n"
            "  ]\n}");
  stars::JsonWriter line(0);
  line.BeginObject().Key("a").BeginArray().Int(1).Int(2).EndArray().Key("b").String("x");
  line.EndObject();
  EXPECT_EQ(line.text(), R"({"a":[1,2],"b":"x"})");
}

stars::Result SampleResult() {
  stars::Result result;
  result.text = "Hi \xe2\x82";
  result.tokens = {5, 7};
  result.finish_reason = stars::FinishReason::kStop;
  result.reward = 0.5;
  stars::Segment warmup;
  warmup.text = "Hi";
  warmup.tokens = {5};
  warmup.attempts = 2;
  warmup.rewards = {0.25, 0.5};
  warmup.reward = 0.5;
  warmup.fallback = true;
  stars::Segment cut;
  cut.text = " \xe2\x82";
  cut.tokens = {7};
  // A token that holds part of a character: its text shows U+FFFD, its bytes are exact.
  cut.logprobs = {{7, " \xe2\x82", -0.5, {{7, " \xe2\x82", -0.5, {}}, {3, "a", -1.25, {}}}}};
  cut.attempts = 1;
  cut.rewards = {1.0};
  cut.reward = 1.0;
  cut.threshold = 0.75;
  result.segments = {warmup, cut};
  result.stats.tokens_accepted = 2;
  result.stats.mean_round_width = 1.5;
  result.stats.sampling_fallback = "typical_p";
  result.stats.seconds_total = 0.012345678;
  return result;
}

TEST(ResultJson, WholeResultAndTrace) {
  const stars::Result result = SampleResult();
  const std::string json = stars::ResultJson(result, 0);
  EXPECT_EQ(json, R"({"text":"Hi \ufffd","tokens":[5,7],"logprobs":[],"finish_reason":"stop",)"
                  R"("reward":0.5,"segments":[{"text":"Hi","tokens":[5],"logprobs":[],)"
                  R"("attempts":2,"rewards":[0.25,0.5],"reward":0.5,"threshold":null,)"
                  R"("fallback":true},{"text":" \ufffd","tokens":[7],"logprobs":[{"token":7,)"
                  R"("text":" \ufffd","bytes":[32,226,130],"logprob":-0.5,"top_logprobs":[)"
                  R"({"token":7,"text":" \ufffd","bytes":[32,226,130],"logprob":-0.5},)"
                  R"({"token":3,"text":"a","bytes":[97],"logprob":-1.25}]}],)"
                  R"("attempts":1,"rewards":[1.0],"reward":1.0,)"
                  R"("threshold":0.75,"fallback":false}],)"
                  R"("stats":{"policy_tokens_sampled":0,"tokens_accepted":2,"tokens_wasted":0,)"
                  R"("prompt_tokens":0,"policy_tokens_decoded":0,"reward_calls":0,"reward_rows":0,)"
                  R"("reward_tokens_decoded":0,"reward_rows_truncated":0,"rounds":0,)"
                  R"("mean_round_width":1.5,"backend_tokens_sampled":0,)"
                  R"("sampling_fallback":"typical_p","seconds_policy":0.0,"seconds_reward":0.0,)"
                  R"("seconds_total":0.012345678}})");
  EXPECT_EQ(std::to_string(stars::StatsFieldNames().size()), "16");
  EXPECT_EQ(stars::ResultTrace(result),
            "segment 0: attempts=2 tau=- rewards=[0.250, 0.500] fallback \"Hi\"\n"
            "segment 1: attempts=1 tau=0.750 rewards=[1.000] \" \\ufffd\"\n"
            "stats: policy_tokens_sampled=0 tokens_accepted=2 tokens_wasted=0 prompt_tokens=0 "
            "policy_tokens_decoded=0 reward_calls=0 reward_rows=0 reward_tokens_decoded=0 "
            "reward_rows_truncated=0 rounds=0 mean_round_width=1.5 backend_tokens_sampled=0 "
            "sampling_fallback=typical_p seconds_policy=0 seconds_reward=0 seconds_total=0.01235\n"
            "finish_reason=stop reward=0.5\n");
  stars::Result plain;  // no reward, no segments
  const std::string trace = stars::ResultTrace(plain);
  EXPECT_EQ(trace.substr(trace.rfind("finish_reason")), "finish_reason=length reward=-\n");
}

}  // namespace
