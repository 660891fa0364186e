// alexnet-train's option checks (trainer/train_options.h): every bad value is an io::OptionError
// naming the option (or the config file), and --help prints the defaults as written.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "io/cli.h"
#include "trainer/model_spec.h"
#include "trainer/train_options.h"

namespace alexnet::trainer {
namespace {

// Parses `args` (after the program name) into fresh options.
bool parse(std::vector<std::string> args, TrainOptions& o) {
  args.insert(args.begin(), "alexnet-train");
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  return parse_train_options(static_cast<int>(argv.size()), argv.data(), o);
}

// The OptionError message of parsing `args`; fails the test when they are accepted.
std::string refusal(const std::vector<std::string>& args) {
  TrainOptions o;
  try {
    parse(args, o);
  } catch (const io::OptionError& e) {
    return e.what();
  }
  ADD_FAILURE() << "accepted: " << ::testing::PrintToString(args);
  return {};
}

TEST(NumberText, ShortestFormAsWrittenInTheTable) {
  EXPECT_EQ(number_text(0.9), "0.9");
  EXPECT_EQ(number_text(5e-4), "5e-4");
  EXPECT_EQ(number_text(0.01), "0.01");
  EXPECT_EQ(number_text(0.999), "0.999");
  EXPECT_EQ(number_text(0.1), "0.1");
  EXPECT_EQ(number_text(0), "0");
  EXPECT_EQ(number_text(25), "25");
  EXPECT_EQ(number_text(600), "600");
  EXPECT_EQ(number_text(1e-8), "1e-8");
  EXPECT_EQ(number_text(-2.5), "-2.5");
  EXPECT_EQ(number_text(std::numeric_limits<double>::infinity()), "inf");
}

TEST(NumberText, ReadsBackAsTheSameDouble) {
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> exponent(-30, 30);
  for (int i = 0; i < 2000; ++i) {
    const double v = std::pow(10.0, exponent(rng)) * (i % 2 ? 1 : -1);
    EXPECT_EQ(std::strtod(number_text(v).c_str(), nullptr), v) << number_text(v);
  }
}

TEST(TrainOptions, HelpPrintsDefaultsAsWritten) {
  std::ostringstream captured;
  std::streambuf* old = std::cout.rdbuf(captured.rdbuf());
  TrainOptions o;
  const bool go_on = parse({"--help"}, o);
  std::cout.rdbuf(old);
  EXPECT_FALSE(go_on);
  const std::string help = captured.str();
  EXPECT_NE(help.find("--optim.momentum arg (=0.9)"), std::string::npos) << help;
  EXPECT_NE(help.find("--optim.weight_decay arg (=5e-4)"), std::string::npos) << help;
  EXPECT_NE(help.find("--optim.beta2 arg (=0.999)"), std::string::npos) << help;
  EXPECT_NE(help.find("--optim.trust_coefficient arg (=1e-3)"), std::string::npos) << help;
  EXPECT_NE(help.find("--optim.poly_power arg (=2)"), std::string::npos) << help;
  EXPECT_NE(help.find("lars: eta in local_lr = eta * |w| /"), std::string::npos) << help;
  EXPECT_NE(help.find("--comm.timeout_s arg (=600)"), std::string::npos) << help;
  EXPECT_NE(help.find("--comm.heartbeat_s arg (=0.5)"), std::string::npos) << help;
  EXPECT_NE(help.find("--comm.heartbeat_misses arg (=16)"), std::string::npos) << help;
  EXPECT_EQ(help.find("0000000"), std::string::npos) << help;
}

TEST(TrainOptions, DefaultsAndAConfigFileAreAccepted) {
  TrainOptions o;
  EXPECT_TRUE(parse({}, o));
  const auto file = std::filesystem::temp_directory_path() / "alexnet-options-ok.cfg";
  std::ofstream(file) << "[optim]\nlr = 0.05\n[train]\nbatch_size = 32\n";
  EXPECT_TRUE(parse({"--config", file.string(), "--optim.momentum", "0.5"}, o));
  EXPECT_EQ(o.lr, 0.05);
  EXPECT_EQ(o.batch_size, 32);
  EXPECT_EQ(o.momentum, 0.5);
  EXPECT_TRUE(parse({"--seed", "18446744073709551615"}, o));
  EXPECT_EQ(o.seed, 18446744073709551615ull);
  std::filesystem::remove(file);
}

TEST(TrainOptions, NonFiniteAndOutOfRangeValuesNameTheOption) {
  EXPECT_NE(refusal({"--optim.lr", "nan"}).find("optim.lr nan"), std::string::npos);
  EXPECT_NE(refusal({"--optim.lr", "0"}).find("optim.lr 0"), std::string::npos);
  EXPECT_NE(refusal({"--optim.momentum", "inf"}).find("optim.momentum inf"), std::string::npos);
  EXPECT_NE(refusal({"--optim.weight_decay", "-1"}).find("optim.weight_decay"), std::string::npos);
  EXPECT_NE(refusal({"--optim.beta2", "1"}).find("optim.beta2 1"), std::string::npos);
  EXPECT_NE(refusal({"--augment.lighting", "nan"}).find("augment.lighting"), std::string::npos);
  EXPECT_NE(refusal({"--train.label_smoothing", "1"}).find("train.label_smoothing"),
            std::string::npos);
  EXPECT_NE(refusal({"--comm.timeout_s", "inf"}).find("comm.timeout_s"), std::string::npos);
  EXPECT_NE(refusal({"--comm.heartbeat_s", "-1"}).find("comm.heartbeat_s -1"), std::string::npos);
  EXPECT_NE(refusal({"--comm.heartbeat_s", "nan"}).find("comm.heartbeat_s"), std::string::npos);
  EXPECT_NE(refusal({"--comm.heartbeat_misses", "0"}).find("comm.heartbeat_misses 0"),
            std::string::npos);
  EXPECT_NE(refusal({"--train.batch_size", "0"}).find("train.batch_size 0"), std::string::npos);
  EXPECT_NE(refusal({"--train.batch_size", "99999999999"}).find("train.batch_size"),
            std::string::npos);
  EXPECT_NE(refusal({"--train.epochs", "-1"}).find("train.epochs -1"), std::string::npos);
  EXPECT_NE(refusal({"--train.max_steps", "-5"}).find("train.max_steps -5"), std::string::npos);
  EXPECT_NE(refusal({"--checkpoint.keep", "-1"}).find("checkpoint.keep"), std::string::npos);
  EXPECT_NE(refusal({"--data.workers", "0"}).find("data.workers 0"), std::string::npos);
  EXPECT_NE(refusal({"--run.threads", "-2"}).find("run.threads -2"), std::string::npos);
  EXPECT_NE(refusal({"--profile.steps", "100000000"}).find("profile.steps"), std::string::npos);
  EXPECT_NE(refusal({"--augment.pad", "-1"}).find("augment.pad -1"), std::string::npos);
  EXPECT_NE(refusal({"--optim.lr", "abc"}).find("optim.lr"), std::string::npos);
  EXPECT_NE(refusal({"--seed", "-1"}).find("seed '-1'"), std::string::npos);
  EXPECT_NE(refusal({"--seed", "1e3"}).find("seed '1e3'"), std::string::npos);
}

TEST(TrainOptions, LarsLambAndThePolySchedule) {
  TrainOptions o;
  EXPECT_TRUE(parse({"--optim.name", "lars", "--optim.trust_coefficient", "0.02",
                     "--optim.schedule", "poly", "--optim.poly_power", "2.5"},
                    o));
  EXPECT_EQ(o.trust_coefficient, 0.02);
  EXPECT_EQ(o.poly_power, 2.5);
  const std::string text = config_text(o);
  EXPECT_NE(text.find("\ntrust_coefficient = 0.02\n"), std::string::npos) << text;
  EXPECT_NE(text.find("\npoly_power = 2.5\n"), std::string::npos) << text;
  TrainOptions lamb;
  EXPECT_TRUE(parse({"--optim.name", "lamb"}, lamb));
  for (const auto& [args, part] : std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{"--optim.trust_coefficient", "0"}, "optim.trust_coefficient 0"},
           {{"--optim.trust_coefficient", "-0.001"}, "optim.trust_coefficient -1e-3"},
           {{"--optim.trust_coefficient", "nan"}, "optim.trust_coefficient"},
           {{"--optim.trust_coefficient", "inf"}, "optim.trust_coefficient"},
           {{"--optim.poly_power", "0"}, "optim.poly_power 0"},
           {{"--optim.name", "lars", "--optim.nesterov", "true"}, "nesterov"},
           {{"--optim.name", "larc"}, "optim.name"}}) {
    const std::string why = refusal(args);
    EXPECT_NE(why.find(part), std::string::npos) << why;
    EXPECT_EQ(why.find('\n'), std::string::npos) << "not one line: " << why;
  }
}

TEST(TrainOptions, BadNamesAndCombinationsNameTheOption) {
  EXPECT_NE(refusal({"--model.arch", "alexnet-huge"}).find("model.arch"), std::string::npos);
  EXPECT_NE(refusal({"--backend", "tpu"}).find("backend 'tpu'"), std::string::npos);
  EXPECT_NE(refusal({"--optim.name", "lbfgs"}).find("optim.name"), std::string::npos);
  EXPECT_NE(refusal({"--optim.schedule", "wavy"}).find("optim.schedule"), std::string::npos);
  EXPECT_NE(refusal({"--optim.momentum_rule", "x"}).find("optim.momentum_rule"), std::string::npos);
  EXPECT_NE(refusal({"--optim.milestones", "5,2"}).find("optim.milestones"), std::string::npos);
  EXPECT_NE(refusal({"--init.skip", "(("}).find("init.skip '(('"), std::string::npos);
  EXPECT_NE(refusal({"--precision", "bf16"}).find("precision bf16 needs the cuda backend"),
            std::string::npos);
  EXPECT_NE(refusal({"--optim.name", "adam", "--optim.nesterov", "1"}).find("nesterov"),
            std::string::npos);
  EXPECT_NE(refusal({"--comm.wire", "fp8"}).find("comm.wire 'fp8'"), std::string::npos);
}

TEST(TrainOptions, ConfigFilesThatAreNoConfigurationAreRefusedByName) {
  const auto dir = std::filesystem::temp_directory_path() / "alexnet-options-dir.cfg";
  std::filesystem::create_directories(dir);
  EXPECT_NE(refusal({"--config", dir.string()}).find("is a directory"), std::string::npos);
  const auto missing = dir / "missing.cfg";
  EXPECT_NE(refusal({"--config", missing.string()}).find("missing.cfg': no such file"),
            std::string::npos);
  const auto bad = dir / "bad.cfg";
  std::ofstream(bad) << "[train]\nbatch_size 3\n";
  EXPECT_NE(refusal({"--config", bad.string()}).find("bad.cfg'"), std::string::npos);
  const auto unknown = dir / "unknown.cfg";
  std::ofstream(unknown) << "[train]\nbatch_sise = 3\n";
  const std::string why = refusal({"--config", unknown.string()});
  EXPECT_NE(why.find("unknown.cfg'"), std::string::npos) << why;
  EXPECT_NE(why.find("batch_sise"), std::string::npos) << why;
  std::filesystem::remove_all(dir);
}

TEST(RequireInRange, MessagesNameTheOptionValueAndRange) {
  EXPECT_NO_THROW(require_in_range("--top", 5, 1, 10));
  try {
    require_in_range("--top", 0, 1, 10);
    FAIL();
  } catch (const io::OptionError& e) {
    EXPECT_STREQ(e.what(), "--top 0: expected a value in [1, 10]");
  }
  try {
    require_finite_in_range("--lr", std::nan(""), 0, 1, true, false);
    FAIL();
  } catch (const io::OptionError& e) {
    EXPECT_STREQ(e.what(), "--lr nan: expected a finite value in (0, 1]");
  }
}

TEST(RequireBatchFits, AHugeBatchIsRefusedBeforeAllocating) {
  const ModelSpec spec = build_model("alexnet-torchvision", 1000, 3);
  EXPECT_NO_THROW(require_batch_fits("--batch", 1, spec, true));
  EXPECT_THROW(require_batch_fits("--batch", kMaxBatch * 1000, spec, true), io::OptionError);
}

}  // namespace
}  // namespace alexnet::trainer
