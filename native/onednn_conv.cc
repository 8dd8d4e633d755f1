// oneDNN convolutions as XLA FFI targets on the CPU: forward, backward-data and backward-weights
// of a 2-D convolution on convzoo's own layouts (NHWC activations, HWIO kernels; grouped kernels
// HW(C/G)(G·F/G)), float32 or bfloat16, square stride, explicit padding, groups.
//
// Why (issue 21; models/onednn.py and benchmarks/conv_routes.py have the figures): XLA:CPU's own
// convolution kernels run the zoo's 3×3 layers at a fraction of what the cores can do; oneDNN,
// PyTorch's CPU convolution library, runs them much faster. Called through the FFI, the
// convolution stays inside the XLA program and XLA still fuses everything around it.
//
// Layouts: activations are handed to oneDNN as they are (tag nhwc), so no activation is ever
// transposed; only the kernel is reordered into the blocked layout the chosen implementation
// wants (a kernel is small next to the activations), and the weight gradient back to HWIO.
//
// Primitives are cached by shape: creating one (choosing an implementation, generating its JIT
// code) costs milliseconds, running one on a small layer microseconds.
//
// Threads: oneDNN here is the OpenMP build. XLA runs one host device per core (or per share of
// the cores) and each device's thread calls these targets; every call sets the calling thread's
// OpenMP team size to the `threads` attribute (its device's share of the cores), so two devices
// on two cores run two one-thread convolutions, never four threads on two cores.

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "oneapi/dnnl/dnnl.hpp"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

enum Direction : int64_t { kForward = 0, kBackwardData = 1, kBackwardWeights = 2 };

// One convolution: input [n, h, w, c], kernel [kh, kw, c/groups, f], output [n, oh, ow, f].
struct Geometry {
  int64_t n, h, w, c, kh, kw, f, oh, ow;
  int64_t stride, pad_top, pad_bottom, pad_left, pad_right, groups;
  bool bf16;

  std::string Key(Direction direction, int64_t threads) const {
    std::string key;
    for (int64_t v : {static_cast<int64_t>(direction), n, h, w, c, kh, kw, f, oh, ow, stride,
                      pad_top, pad_bottom, pad_left, pad_right, groups,
                      static_cast<int64_t>(bf16), threads}) {
      key += std::to_string(v);
      key += ',';
    }
    return key;
  }
};

using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;

dnnl::engine& Engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

dnnl::memory::desc ActivationDesc(const Geometry& g, int64_t height, int64_t width,
                                  int64_t channels) {
  return dnnl::memory::desc({g.n, channels, height, width}, g.bf16 ? dt::bf16 : dt::f32,
                            tag::nhwc);
}

// The kernel as stored by convzoo: HWIO, or with groups H, W, C/G, (G, F/G).
dnnl::memory::desc KernelDesc(const Geometry& g, bool any) {
  const dt type = g.bf16 ? dt::bf16 : dt::f32;
  if (g.groups == 1) {
    return dnnl::memory::desc({g.f, g.c, g.kh, g.kw}, type, any ? tag::any : tag::hwio);
  }
  return dnnl::memory::desc({g.groups, g.f / g.groups, g.c / g.groups, g.kh, g.kw}, type,
                            any ? tag::any : tag::hwigo);
}

// Every primitive takes its scratch memory from the caller (see Run): by default oneDNN keeps
// one scratchpad per primitive (or one shared by all), and the devices' threads run the same
// cached primitive at once; with a shared scratchpad they overwrite each other's partial sums
// (found by tests/test_onednn.py: 8 devices trained to batch-norm means 7 % off 1 device's).
dnnl::primitive_attr Attributes() {
  dnnl::primitive_attr attributes;
  attributes.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attributes;
}

dnnl::convolution_forward::primitive_desc ForwardDesc(const Geometry& g) {
  return dnnl::convolution_forward::primitive_desc(
      Engine(), dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct,
      ActivationDesc(g, g.h, g.w, g.c), KernelDesc(g, /*any=*/true),
      ActivationDesc(g, g.oh, g.ow, g.f), {g.stride, g.stride}, {g.pad_top, g.pad_left},
      {g.pad_bottom, g.pad_right}, Attributes());
}

// A cached primitive, the kernel layout it wants and the reorder between that and HWIO.
struct Entry {
  dnnl::primitive primitive;
  dnnl::memory::desc kernel_user, kernel_primitive;
  bool reorders_kernel = false;
  dnnl::reorder kernel_reorder;  // HWIO → primitive's (forward, backward-data) or back (weights)
  size_t scratchpad_bytes = 0;   // the most the primitive or the reorder needs
  std::string implementation;
};

Entry Create(Direction direction, const Geometry& g) {
  Entry entry;
  entry.kernel_user = KernelDesc(g, /*any=*/false);
  auto forward = ForwardDesc(g);
  if (direction == kForward) {
    entry.kernel_primitive = forward.weights_desc();
    entry.primitive = dnnl::convolution_forward(forward);
    entry.implementation = forward.impl_info_str();
    entry.scratchpad_bytes = forward.scratchpad_desc().get_size();
  } else if (direction == kBackwardData) {
    dnnl::convolution_backward_data::primitive_desc pd(
        Engine(), dnnl::algorithm::convolution_direct, ActivationDesc(g, g.h, g.w, g.c),
        KernelDesc(g, /*any=*/true), ActivationDesc(g, g.oh, g.ow, g.f), {g.stride, g.stride},
        {g.pad_top, g.pad_left}, {g.pad_bottom, g.pad_right}, forward, Attributes());
    entry.kernel_primitive = pd.weights_desc();
    entry.primitive = dnnl::convolution_backward_data(pd);
    entry.implementation = pd.impl_info_str();
    entry.scratchpad_bytes = pd.scratchpad_desc().get_size();
  } else {
    dnnl::convolution_backward_weights::primitive_desc pd(
        Engine(), dnnl::algorithm::convolution_direct, ActivationDesc(g, g.h, g.w, g.c),
        KernelDesc(g, /*any=*/true), ActivationDesc(g, g.oh, g.ow, g.f), {g.stride, g.stride},
        {g.pad_top, g.pad_left}, {g.pad_bottom, g.pad_right}, forward, Attributes());
    entry.kernel_primitive = pd.diff_weights_desc();
    entry.primitive = dnnl::convolution_backward_weights(pd);
    entry.implementation = pd.impl_info_str();
    entry.scratchpad_bytes = pd.scratchpad_desc().get_size();
  }
  entry.reorders_kernel = entry.kernel_primitive != entry.kernel_user;
  if (entry.reorders_kernel) {
    auto pd = direction == kBackwardWeights
                  ? dnnl::reorder::primitive_desc(Engine(), entry.kernel_primitive, Engine(),
                                                  entry.kernel_user, Attributes())
                  : dnnl::reorder::primitive_desc(Engine(), entry.kernel_user, Engine(),
                                                  entry.kernel_primitive, Attributes());
    entry.kernel_reorder = dnnl::reorder(pd);
    entry.scratchpad_bytes = std::max(entry.scratchpad_bytes, pd.scratchpad_desc().get_size());
  }
  return entry;
}

// Entries live as long as the process (a run meets a few dozen shapes); the map is shared by
// the devices' threads, so it is locked, but only to find or insert an entry.
const Entry& Cached(Direction direction, const Geometry& g, int64_t threads) {
  static std::mutex mutex;
  static auto* cache = new std::unordered_map<std::string, std::unique_ptr<Entry>>();
  const std::string key = g.Key(direction, threads);
  {
    std::lock_guard<std::mutex> lock(mutex);
    auto found = cache->find(key);
    if (found != cache->end()) return *found->second;
  }
  auto entry = std::make_unique<Entry>(Create(direction, g));  // slow: outside the lock
  std::lock_guard<std::mutex> lock(mutex);
  auto inserted = cache->emplace(key, std::move(entry));
  return *inserted.first->second;
}

ffi::Error Run(Direction direction, const Geometry& g, int64_t threads, void* first,
               void* second, void* result) {
  try {
    if (omp_get_max_threads() != threads) omp_set_num_threads(static_cast<int>(threads));
    const Entry& entry = Cached(direction, g, threads);
    thread_local dnnl::stream stream(Engine());
    // This thread's scratch memory, grown to the largest any primitive has asked of it; the
    // primitive and its kernel reorder run one after the other, so they share it.
    thread_local std::vector<char> scratch;
    const size_t bytes = std::max<size_t>(entry.scratchpad_bytes, 1);
    if (scratch.size() < bytes) scratch.resize(bytes);
    dnnl::memory scratchpad(
        dnnl::memory::desc({static_cast<int64_t>(scratch.size())}, dt::u8, tag::x), Engine(),
        scratch.data());
    auto reorder = [&](const dnnl::memory& from, const dnnl::memory& to) {
      entry.kernel_reorder.execute(
          stream, {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}, {DNNL_ARG_SCRATCHPAD, scratchpad}});
    };
    auto input = ActivationDesc(g, g.h, g.w, g.c);
    auto output = ActivationDesc(g, g.oh, g.ow, g.f);
    dnnl::memory kernel_primitive;  // the kernel in the primitive's layout, when it differs
    if (direction == kForward || direction == kBackwardData) {
      dnnl::memory kernel(entry.kernel_user, Engine(), second);
      kernel_primitive = kernel;
      if (entry.reorders_kernel) {
        kernel_primitive = dnnl::memory(entry.kernel_primitive, Engine());
        reorder(kernel, kernel_primitive);
      }
      if (direction == kForward) {
        entry.primitive.execute(stream, {{DNNL_ARG_SRC, dnnl::memory(input, Engine(), first)},
                                         {DNNL_ARG_WEIGHTS, kernel_primitive},
                                         {DNNL_ARG_DST, dnnl::memory(output, Engine(), result)},
                                         {DNNL_ARG_SCRATCHPAD, scratchpad}});
      } else {
        entry.primitive.execute(stream,
                                {{DNNL_ARG_DIFF_DST, dnnl::memory(output, Engine(), first)},
                                 {DNNL_ARG_WEIGHTS, kernel_primitive},
                                 {DNNL_ARG_DIFF_SRC, dnnl::memory(input, Engine(), result)},
                                 {DNNL_ARG_SCRATCHPAD, scratchpad}});
      }
    } else {
      dnnl::memory kernel(entry.kernel_user, Engine(), result);
      kernel_primitive =
          entry.reorders_kernel ? dnnl::memory(entry.kernel_primitive, Engine()) : kernel;
      entry.primitive.execute(stream, {{DNNL_ARG_SRC, dnnl::memory(input, Engine(), first)},
                                       {DNNL_ARG_DIFF_DST, dnnl::memory(output, Engine(), second)},
                                       {DNNL_ARG_DIFF_WEIGHTS, kernel_primitive},
                                       {DNNL_ARG_SCRATCHPAD, scratchpad}});
      if (entry.reorders_kernel) reorder(kernel_primitive, kernel);
    }
    stream.wait();
    return ffi::Error::Success();
  } catch (const dnnl::error& e) {
    return ffi::Error::Internal(std::string("oneDNN convolution: ") + e.what());
  }
}

ffi::ErrorOr<Geometry> Describe(ffi::AnyBuffer::Dimensions input, ffi::AnyBuffer::Dimensions kernel,
                                ffi::AnyBuffer::Dimensions output, ffi::DataType type, int64_t stride,
                                int64_t pad_top, int64_t pad_bottom, int64_t pad_left,
                                int64_t pad_right, int64_t groups) {
  if (input.size() != 4 || kernel.size() != 4 || output.size() != 4) {
    return ffi::Unexpected(ffi::Error::InvalidArgument("expected NHWC, HWIO and NHWC operands"));
  }
  if (type != ffi::DataType::F32 && type != ffi::DataType::BF16) {
    return ffi::Unexpected(ffi::Error::InvalidArgument("expected float32 or bfloat16"));
  }
  Geometry g{input[0],  input[1],  input[2], input[3],   kernel[0], kernel[1],
             kernel[3], output[1], output[2], stride,    pad_top,   pad_bottom,
             pad_left,  pad_right, groups,   type == ffi::DataType::BF16};
  if (groups < 1 || g.c != kernel[2] * groups || g.f % groups != 0 || output[3] != g.f ||
      output[0] != g.n) {
    return ffi::Unexpected(ffi::Error::InvalidArgument("operand shapes do not match"));
  }
  return g;
}

#define CONVZOO_ATTRS                                                                     \
  .Attr<int64_t>("stride").Attr<int64_t>("pad_top").Attr<int64_t>("pad_bottom")           \
      .Attr<int64_t>("pad_left").Attr<int64_t>("pad_right").Attr<int64_t>("groups")        \
      .Attr<int64_t>("threads")

ffi::Error Forward(ffi::AnyBuffer x, ffi::AnyBuffer w, ffi::Result<ffi::AnyBuffer> y,
                   int64_t stride, int64_t pt, int64_t pb, int64_t pl, int64_t pr, int64_t groups,
                   int64_t threads) {
  auto g = Describe(x.dimensions(), w.dimensions(), y->dimensions(), x.element_type(), stride,
                    pt, pb, pl, pr, groups);
  if (g.has_error()) return g.error();
  return Run(kForward, *g, threads, x.untyped_data(), w.untyped_data(), y->untyped_data());
}

ffi::Error BackwardData(ffi::AnyBuffer dy, ffi::AnyBuffer w, ffi::Result<ffi::AnyBuffer> dx,
                        int64_t stride, int64_t pt, int64_t pb, int64_t pl, int64_t pr,
                        int64_t groups, int64_t threads) {
  auto g = Describe(dx->dimensions(), w.dimensions(), dy.dimensions(), dy.element_type(), stride,
                    pt, pb, pl, pr, groups);
  if (g.has_error()) return g.error();
  return Run(kBackwardData, *g, threads, dy.untyped_data(), w.untyped_data(),
             dx->untyped_data());
}

ffi::Error BackwardWeights(ffi::AnyBuffer x, ffi::AnyBuffer dy, ffi::Result<ffi::AnyBuffer> dw,
                           int64_t stride, int64_t pt, int64_t pb, int64_t pl, int64_t pr,
                           int64_t groups, int64_t threads) {
  auto g = Describe(x.dimensions(), dw->dimensions(), dy.dimensions(), x.element_type(), stride,
                    pt, pb, pl, pr, groups);
  if (g.has_error()) return g.error();
  return Run(kBackwardWeights, *g, threads, x.untyped_data(), dy.untyped_data(),
             dw->untyped_data());
}

}  // namespace

// The library is built with hidden visibility; these are its only exports.
#define CONVZOO_EXPORT extern "C" __attribute__((visibility("default")))
CONVZOO_EXPORT XLA_FFI_Error* ConvzooOnednnForward(XLA_FFI_CallFrame* call_frame);
CONVZOO_EXPORT XLA_FFI_Error* ConvzooOnednnBackwardData(XLA_FFI_CallFrame* call_frame);
CONVZOO_EXPORT XLA_FFI_Error* ConvzooOnednnBackwardWeights(XLA_FFI_CallFrame* call_frame);

XLA_FFI_DEFINE_HANDLER_SYMBOL(ConvzooOnednnForward, Forward,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>() CONVZOO_ATTRS);
XLA_FFI_DEFINE_HANDLER_SYMBOL(ConvzooOnednnBackwardData, BackwardData,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>() CONVZOO_ATTRS);
XLA_FFI_DEFINE_HANDLER_SYMBOL(ConvzooOnednnBackwardWeights, BackwardWeights,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>() CONVZOO_ATTRS);

// For Python (ctypes): the implementation oneDNN chooses for a shape ("brg:avx512_core",
// "jit:avx2", "gemm:jit", "ref:any", …), written into `out`; 0 on success, -1 when oneDNN has
// no implementation at all. Lets the route measurement skip reference (unoptimised) kernels.
CONVZOO_EXPORT int convzoo_onednn_implementation(int64_t direction, const int64_t* shape,
                                             int64_t threads, char* out, int64_t size) {
  // shape: n, h, w, c, kh, kw, f, oh, ow, stride, pad_top, pad_bottom, pad_left, pad_right,
  // groups, bf16
  Geometry g{shape[0], shape[1],  shape[2],  shape[3],  shape[4],  shape[5],  shape[6], shape[7],
             shape[8], shape[9],  shape[10], shape[11], shape[12], shape[13], shape[14],
             shape[15] != 0};
  try {
    omp_set_num_threads(static_cast<int>(threads));
    const Entry& entry = Cached(static_cast<Direction>(direction), g, threads);
    std::strncpy(out, entry.implementation.c_str(), size - 1);
    out[size - 1] = '\0';
    return 0;
  } catch (const dnnl::error&) {
    return -1;
  }
}

// The instruction set oneDNN dispatches to on this processor (dnnl_cpu_isa_t's value).
CONVZOO_EXPORT int64_t convzoo_onednn_isa() {
  return static_cast<int64_t>(dnnl::get_effective_cpu_isa());
}
