// CUDA graph capture/replay of the decode step, and CUDA-event timing helpers.
#include "jointnas/model/cuda_graph_decoder.h"

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>
#include <map>
#include <mutex>

namespace jointnas::model {

namespace {

// Every capture runs on one side stream per device. cuBLAS keeps a workspace per (handle, stream)
// pair, allocated through the caching allocator and never returned: with a fresh pool stream per
// capture, a validation of 32 CUDA-graph prefills kept up to 32 workspaces allocated, and the
// measured peak memory drifted up by ~30 MB per model (docs/benchmarks.md, issue 4).
c10::cuda::CUDAStream capture_stream() {
  static std::mutex mu;
  static std::map<c10::DeviceIndex, c10::cuda::CUDAStream> streams;
  const c10::DeviceIndex device = c10::cuda::current_device();
  const std::lock_guard<std::mutex> lock(mu);
  auto it = streams.find(device);
  if (it == streams.end()) it = streams.emplace(device, c10::cuda::getStreamFromPool(false, device)).first;
  return it->second;
}

}  // namespace

struct CudaGraphCall::Impl {
  at::cuda::CUDAGraph graph;
};

CudaGraphCall::CudaGraphCall(const std::function<void()>& fn) : impl_(std::make_unique<Impl>()) {
  c10::cuda::CUDAStream stream = capture_stream();
  c10::cuda::getCurrentCUDAStream().synchronize();
  {
    c10::cuda::CUDAStreamGuard guard(stream);
    for (int i = 0; i < 2; ++i) fn();
    stream.synchronize();
    impl_->graph.capture_begin();
    try {
      fn();
    } catch (...) {
      // End the capture so that the stream is usable again; the original error is the one to report.
      try {
        impl_->graph.capture_end();
      } catch (...) {
      }
      throw;
    }
    impl_->graph.capture_end();
  }
  stream.synchronize();
}

CudaGraphCall::~CudaGraphCall() = default;

void CudaGraphCall::replay() { impl_->graph.replay(); }

struct CudaGraphDecoder::Impl {
  at::Tensor token;   // [B, 1] int64, device
  at::Tensor pos;     // [1] int64, device
  at::Tensor logits;  // [B, 1, V], output of the captured step
  std::unique_ptr<CudaGraphCall> call;
};

CudaGraphDecoder::CudaGraphDecoder(const LlamaModel& model, KVCache& cache)
    : impl_(std::make_unique<Impl>()) {
  auto dev = model.options().device;
  impl_->token = at::zeros({cache.batch, 1}, at::TensorOptions().device(dev).dtype(at::kLong));
  impl_->pos = at::full({1}, cache.length, at::TensorOptions().device(dev).dtype(at::kLong));
  // The two warm-up calls of CudaGraphCall write K/V at `pos`, which the first real step overwrites.
  Impl* impl = impl_.get();
  impl_->call = std::make_unique<CudaGraphCall>(
      [impl, &model, &cache] { impl->logits = model.decode_step_static(impl->token, impl->pos, cache); });
}

CudaGraphDecoder::~CudaGraphDecoder() = default;

at::Tensor CudaGraphDecoder::step(int64_t token, int64_t pos) {
  impl_->token.fill_(token);
  impl_->pos.fill_(pos);
  impl_->call->replay();
  return impl_->logits;
}

void CudaGraphDecoder::replay() { impl_->call->replay(); }

void cuda_synchronize() { c10::cuda::getCurrentCUDAStream().synchronize(); }

double cuda_time_ms(const std::function<void()>& fn, int warmup, int repeats,
                    std::vector<double>* samples_ms) {
  for (int i = 0; i < warmup; ++i) fn();
  std::vector<double> t;
  auto stream = c10::cuda::getCurrentCUDAStream();
  for (int i = 0; i < repeats; ++i) {
    at::cuda::CUDAEvent start(cudaEventDefault), stop(cudaEventDefault);
    start.record(stream);
    fn();
    stop.record(stream);
    stop.synchronize();
    t.push_back(static_cast<double>(start.elapsed_time(stop)));
  }
  if (samples_ms != nullptr) *samples_ms = t;
  std::sort(t.begin(), t.end());
  return t.empty() ? 0.0 : t[t.size() / 2];
}

double cuda_copy_bandwidth(int64_t bytes) {
  auto opts = at::TensorOptions().device(at::kCUDA).dtype(at::kByte);
  at::Tensor a = at::randint(0, 255, {bytes}, opts), b = at::empty({bytes}, opts);
  double ms = cuda_time_ms([&] { b.copy_(a); }, 3, 20);
  return 2.0 * static_cast<double>(bytes) / (ms / 1000.0);
}

}  // namespace jointnas::model
