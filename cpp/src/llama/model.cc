#include "llama/model.h"

#include <array>
#include <filesystem>
#include <fstream>
#include <utility>

#include "llama/backend.h"
#include "stars/errors.h"

namespace stars {
namespace {

// llama.cpp answers every bad file with a null model; these checks name the actual problem.
void CheckGgufFile(const std::string& path) {
  std::error_code ec;
  const std::filesystem::path fs_path(path);
  if (!std::filesystem::exists(fs_path, ec)) {
    throw ModelNotFoundError("model file not found: '" + path + "'");
  }
  if (std::filesystem::is_directory(fs_path, ec)) {
    throw ModelLoadError("model path is a directory, not a GGUF file: '" + path + "'");
  }
  const auto size = std::filesystem::file_size(fs_path, ec);
  if (ec) throw ModelLoadError("cannot read model file '" + path + "': " + ec.message());
  if (size == 0) throw ModelLoadError("model file is empty: '" + path + "'");
  std::array<char, 4> magic{};
  std::ifstream in(fs_path, std::ios::binary);
  if (!in.read(magic.data(), magic.size()) || std::string(magic.data(), 4) != "GGUF") {
    throw ModelLoadError("not a GGUF file (no 'GGUF' magic at its start): '" + path + "'");
  }
}

}  // namespace

std::shared_ptr<Model> Model::Load(const std::string& path, int32_t n_gpu_layers) {
  CheckGgufFile(path);
  EnsureBackend();
  llama_model_params params = llama_model_default_params();
  params.n_gpu_layers = n_gpu_layers;
  llama_model* model = llama_model_load_from_file(path.c_str(), params);
  if (model == nullptr) {
    throw ModelLoadError("llama.cpp could not load the GGUF file '" + path +
                         "' (unsupported architecture, truncated or corrupt file)");
  }
  return std::shared_ptr<Model>(new Model(model, nullptr, path, n_gpu_layers));
}

std::shared_ptr<Model> Model::Borrow(llama_model* model, std::shared_ptr<void> keep_alive,
                                     std::string description, int32_t n_gpu_layers) {
  if (model == nullptr) throw ModelLoadError("borrowed model handle is null: " + description);
  if (keep_alive == nullptr) throw ModelLoadError("borrowed model needs its owner: " + description);
  EnsureBackend();
  return std::shared_ptr<Model>(
      new Model(model, std::move(keep_alive), std::move(description), n_gpu_layers));
}

Model::Model(llama_model* model, std::shared_ptr<void> keep_alive, std::string description,
             int32_t n_gpu_layers)
    : model_(model),
      keep_alive_(std::move(keep_alive)),
      description_(std::move(description)),
      n_gpu_layers_(n_gpu_layers) {}

std::string Model::ClassifierLabel(int32_t i) const {
  const char* label = llama_model_cls_label(model_, static_cast<uint32_t>(i));
  return label == nullptr ? std::string() : std::string(label);
}

Model::~Model() {
  if (owned()) llama_model_free(model_);
}

}  // namespace stars
