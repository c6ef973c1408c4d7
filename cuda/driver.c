// See driver.h. Function pointers are resolved once by bcu_open; the
// versioned names (_v2) are the ones the CUDA headers map the plain names to.
#include "driver.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

typedef int CUresult;

static CUresult (*p_cuInit)(unsigned);
static CUresult (*p_cuGetErrorName)(CUresult, const char **);
static CUresult (*p_cuGetErrorString)(CUresult, const char **);
static CUresult (*p_cuDeviceGetCount)(int *);
static CUresult (*p_cuDeviceGet)(int *, int);
static CUresult (*p_cuDeviceGetName)(char *, int, int);
static CUresult (*p_cuDeviceGetAttribute)(int *, int, int);
static CUresult (*p_cuDeviceGetPCIBusId)(char *, int, int);
static CUresult (*p_cuDeviceTotalMem)(size_t *, int);
static CUresult (*p_cuCtxCreate)(void **, unsigned, int);
static CUresult (*p_cuCtxDestroy)(void *);
static CUresult (*p_cuCtxSetCurrent)(void *);
static CUresult (*p_cuModuleLoadData)(void **, const void *);
static CUresult (*p_cuModuleLoadDataEx)(void **, const void *, unsigned, int *, void **);
static CUresult (*p_cuModuleGetFunction)(void **, void *, const char *);
static CUresult (*p_cuModuleUnload)(void *);
static CUresult (*p_cuFuncSetAttribute)(void *, int, int);
static CUresult (*p_cuMemAlloc)(bdev_ptr *, size_t);
static CUresult (*p_cuMemFree)(bdev_ptr);
static CUresult (*p_cuMemGetInfo)(size_t *, size_t *);
static CUresult (*p_cuMemcpyDtoH)(void *, bdev_ptr, size_t);
static CUresult (*p_cuMemcpyHtoDAsync)(bdev_ptr, const void *, size_t, void *);
static CUresult (*p_cuMemcpyDtoHAsync)(void *, bdev_ptr, size_t, void *);
static CUresult (*p_cuMemAllocHost)(void **, size_t);
static CUresult (*p_cuMemFreeHost)(void *);
static CUresult (*p_cuMemHostGetDevicePointer)(bdev_ptr *, void *, unsigned);
static CUresult (*p_cuMemsetD8)(bdev_ptr, unsigned char, size_t);
static CUresult (*p_cuMemsetD8Async)(bdev_ptr, unsigned char, size_t, void *);
static CUresult (*p_cuStreamCreate)(void **, unsigned);
static CUresult (*p_cuStreamDestroy)(void *);
static CUresult (*p_cuStreamSynchronize)(void *);
static CUresult (*p_cuLaunchKernel)(void *, unsigned, unsigned, unsigned,
                                    unsigned, unsigned, unsigned, unsigned,
                                    void *, void **, void **);
// cuLaunchKernelEx (CUDA 12.0) with the CUDA 12 header's layout of
// CUlaunchConfig and CUlaunchAttribute, declared here because the headers
// this builds against need not have them. Optional: NULL on older drivers.
typedef struct {
  int id;
  char pad[4];
  union {
    char raw[64];
    int programmatic_stream_serialization;
    int cooperative;
  } value;
} bcu_launch_attr;
typedef struct {
  unsigned gx, gy, gz, bx, by, bz, shared;
  void *stream;
  bcu_launch_attr *attrs;
  unsigned nattrs;
} bcu_launch_config;
static CUresult (*p_cuLaunchKernelEx)(const bcu_launch_config *, void *, void **, void **);
static CUresult (*p_cuStreamBeginCapture)(void *, int);
static CUresult (*p_cuStreamEndCapture)(void *, void **);
static CUresult (*p_cuGraphInstantiateWithFlags)(void **, void *, unsigned long long);
static CUresult (*p_cuGraphLaunch)(void *, void *);
static CUresult (*p_cuGraphExecDestroy)(void *);
static CUresult (*p_cuGraphDestroy)(void *);
static CUresult (*p_cuEventCreate)(void **, unsigned);
static CUresult (*p_cuEventDestroy)(void *);
static CUresult (*p_cuEventRecord)(void *, void *);
static CUresult (*p_cuEventSynchronize)(void *);
static CUresult (*p_cuEventElapsedTime)(float *, void *, void *);
static CUresult (*p_cuStreamWaitEvent)(void *, void *, unsigned);

static void *lib;

#define RESOLVE(ptr, name)                                              \
  do {                                                                  \
    *(void **)(&ptr) = dlsym(lib, name);                                \
    if (!ptr) {                                                         \
      snprintf(err, errlen, "libcuda.so.1 lacks %s (driver too old?)", \
               name);                                                   \
      return -1;                                                        \
    }                                                                   \
  } while (0)

int bcu_open(char *err, size_t errlen) {
  if (lib) return 0;
  lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    const char *e = dlerror();
    snprintf(err, errlen, "%s", e ? e : "dlopen failed");
    return -1;
  }
  RESOLVE(p_cuInit, "cuInit");
  RESOLVE(p_cuGetErrorName, "cuGetErrorName");
  RESOLVE(p_cuGetErrorString, "cuGetErrorString");
  RESOLVE(p_cuDeviceGetCount, "cuDeviceGetCount");
  RESOLVE(p_cuDeviceGet, "cuDeviceGet");
  RESOLVE(p_cuDeviceGetName, "cuDeviceGetName");
  RESOLVE(p_cuDeviceGetAttribute, "cuDeviceGetAttribute");
  RESOLVE(p_cuDeviceGetPCIBusId, "cuDeviceGetPCIBusId");
  RESOLVE(p_cuDeviceTotalMem, "cuDeviceTotalMem_v2");
  RESOLVE(p_cuCtxCreate, "cuCtxCreate_v2");
  RESOLVE(p_cuCtxDestroy, "cuCtxDestroy_v2");
  RESOLVE(p_cuCtxSetCurrent, "cuCtxSetCurrent");
  RESOLVE(p_cuModuleLoadData, "cuModuleLoadData");
  RESOLVE(p_cuModuleLoadDataEx, "cuModuleLoadDataEx");
  RESOLVE(p_cuModuleGetFunction, "cuModuleGetFunction");
  RESOLVE(p_cuModuleUnload, "cuModuleUnload");
  RESOLVE(p_cuFuncSetAttribute, "cuFuncSetAttribute");
  RESOLVE(p_cuMemAlloc, "cuMemAlloc_v2");
  RESOLVE(p_cuMemFree, "cuMemFree_v2");
  RESOLVE(p_cuMemGetInfo, "cuMemGetInfo_v2");
  RESOLVE(p_cuMemcpyDtoH, "cuMemcpyDtoH_v2");
  RESOLVE(p_cuMemcpyHtoDAsync, "cuMemcpyHtoDAsync_v2");
  RESOLVE(p_cuMemcpyDtoHAsync, "cuMemcpyDtoHAsync_v2");
  RESOLVE(p_cuMemAllocHost, "cuMemAllocHost_v2");
  RESOLVE(p_cuMemFreeHost, "cuMemFreeHost");
  RESOLVE(p_cuMemHostGetDevicePointer, "cuMemHostGetDevicePointer_v2");
  RESOLVE(p_cuMemsetD8, "cuMemsetD8_v2");
  RESOLVE(p_cuMemsetD8Async, "cuMemsetD8Async");
  RESOLVE(p_cuStreamCreate, "cuStreamCreate");
  RESOLVE(p_cuStreamDestroy, "cuStreamDestroy_v2");
  RESOLVE(p_cuStreamSynchronize, "cuStreamSynchronize");
  RESOLVE(p_cuLaunchKernel, "cuLaunchKernel");
  *(void **)(&p_cuLaunchKernelEx) = dlsym(lib, "cuLaunchKernelEx");
  RESOLVE(p_cuStreamBeginCapture, "cuStreamBeginCapture_v2");
  RESOLVE(p_cuStreamEndCapture, "cuStreamEndCapture");
  RESOLVE(p_cuGraphInstantiateWithFlags, "cuGraphInstantiateWithFlags");
  RESOLVE(p_cuGraphLaunch, "cuGraphLaunch");
  RESOLVE(p_cuGraphExecDestroy, "cuGraphExecDestroy");
  RESOLVE(p_cuGraphDestroy, "cuGraphDestroy");
  RESOLVE(p_cuEventCreate, "cuEventCreate");
  RESOLVE(p_cuEventDestroy, "cuEventDestroy_v2");
  RESOLVE(p_cuEventRecord, "cuEventRecord");
  RESOLVE(p_cuEventSynchronize, "cuEventSynchronize");
  RESOLVE(p_cuEventElapsedTime, "cuEventElapsedTime");
  RESOLVE(p_cuStreamWaitEvent, "cuStreamWaitEvent");
  return 0;
}

const char *bcu_error_name(int code) {
  const char *s = 0;
  if (!p_cuGetErrorName || p_cuGetErrorName(code, &s) != 0 || !s) return "";
  return s;
}

const char *bcu_error_string(int code) {
  const char *s = 0;
  if (!p_cuGetErrorString || p_cuGetErrorString(code, &s) != 0 || !s) return "";
  return s;
}

int bcu_init(void) { return p_cuInit(0); }
int bcu_device_count(int *n) { return p_cuDeviceGetCount(n); }
int bcu_device_get(int *dev, int ordinal) { return p_cuDeviceGet(dev, ordinal); }
int bcu_device_name(char *name, int len, int dev) { return p_cuDeviceGetName(name, len, dev); }
int bcu_device_attr(int *v, int attr, int dev) { return p_cuDeviceGetAttribute(v, attr, dev); }
int bcu_device_pci_bus_id(char *id, int len, int dev) { return p_cuDeviceGetPCIBusId(id, len, dev); }
int bcu_device_total_mem(size_t *bytes, int dev) { return p_cuDeviceTotalMem(bytes, dev); }

int bcu_ctx_create(void **ctx, int dev) { return p_cuCtxCreate(ctx, 0, dev); }
int bcu_ctx_destroy(void *ctx) { return p_cuCtxDestroy(ctx); }
int bcu_ctx_set_current(void *ctx) { return p_cuCtxSetCurrent(ctx); }

int bcu_module_load(void **mod, const void *image) { return p_cuModuleLoadData(mod, image); }
// 5 and 6 are CU_JIT_ERROR_LOG_BUFFER and CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES.
int bcu_module_load_log(void **mod, const void *image, char *log, size_t loglen) {
  int opts[2] = {5, 6};
  void *vals[2] = {log, (void *)(uintptr_t)loglen};
  if (loglen > 0) log[0] = 0;
  return p_cuModuleLoadDataEx(mod, image, 2, opts, vals);
}
int bcu_module_function(void **fn, void *mod, const char *name) {
  return p_cuModuleGetFunction(fn, mod, name);
}
int bcu_module_unload(void *mod) { return p_cuModuleUnload(mod); }

// 8 is CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES.
int bcu_func_set_max_dynamic_shared(void *fn, int bytes) {
  return p_cuFuncSetAttribute(fn, 8, bytes);
}

int bcu_mem_alloc(bdev_ptr *p, size_t bytes) { return p_cuMemAlloc(p, bytes); }
int bcu_mem_free(bdev_ptr p) { return p_cuMemFree(p); }
int bcu_mem_info(size_t *f, size_t *t) { return p_cuMemGetInfo(f, t); }
int bcu_memcpy_dtoh(void *dst, bdev_ptr src, size_t n) { return p_cuMemcpyDtoH(dst, src, n); }
int bcu_memcpy_htod_async(bdev_ptr dst, const void *src, size_t n, void *s) {
  return p_cuMemcpyHtoDAsync(dst, src, n, s);
}
int bcu_memcpy_dtoh_async(void *dst, bdev_ptr src, size_t n, void *s) {
  return p_cuMemcpyDtoHAsync(dst, src, n, s);
}
int bcu_mem_alloc_host(void **p, size_t bytes) { return p_cuMemAllocHost(p, bytes); }
int bcu_mem_free_host(void *p) { return p_cuMemFreeHost(p); }
int bcu_mem_host_device_ptr(bdev_ptr *d, void *p) { return p_cuMemHostGetDevicePointer(d, p, 0); }
int bcu_memset_d8(bdev_ptr dst, unsigned char v, size_t n) { return p_cuMemsetD8(dst, v, n); }
int bcu_memset_d8_async(bdev_ptr dst, unsigned char v, size_t n, void *s) {
  return p_cuMemsetD8Async(dst, v, n, s);
}

// 1 is CU_STREAM_NON_BLOCKING: the stream never waits on the legacy stream,
// so captures and copies are ordered only by what we put on it.
int bcu_stream_create(void **s) { return p_cuStreamCreate(s, 1); }
int bcu_stream_destroy(void *s) { return p_cuStreamDestroy(s); }
int bcu_stream_sync(void *s) { return p_cuStreamSynchronize(s); }

#define MAX_ARGS 32

int bcu_has_launch_ex(void) { return p_cuLaunchKernelEx != 0; }

int bcu_launch(void *fn, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
               unsigned by, unsigned bz, unsigned shared, void *stream,
               void *args, int nargs, int overlap, int cooperative) {
  void *params[MAX_ARGS];
  if (nargs > MAX_ARGS) return 1;  // CUDA_ERROR_INVALID_VALUE
  for (int i = 0; i < nargs; i++) params[i] = (char *)args + 8 * i;
  if (!p_cuLaunchKernelEx) {
    if (cooperative) return 801;  // CUDA_ERROR_NOT_SUPPORTED
    return p_cuLaunchKernel(fn, gx, gy, gz, bx, by, bz, shared, stream, params, 0);
  }
  bcu_launch_attr attrs[2];
  memset(attrs, 0, sizeof attrs);
  unsigned n = 0;
  if (overlap && !cooperative) {
    // 6 is CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION.
    attrs[n].id = 6;
    attrs[n++].value.programmatic_stream_serialization = 1;
  }
  if (cooperative) {
    // 2 is CU_LAUNCH_ATTRIBUTE_COOPERATIVE.
    attrs[n].id = 2;
    attrs[n++].value.cooperative = 1;
  }
  if (n == 0) return p_cuLaunchKernel(fn, gx, gy, gz, bx, by, bz, shared, stream, params, 0);
  bcu_launch_config cfg = {gx, gy, gz, bx, by, bz, shared, stream, attrs, n};
  return p_cuLaunchKernelEx(&cfg, fn, params, 0);
}

// 2 is CU_STREAM_CAPTURE_MODE_RELAXED.
int bcu_capture_begin(void *s) { return p_cuStreamBeginCapture(s, 2); }
int bcu_capture_end(void *s, void **graph) { return p_cuStreamEndCapture(s, graph); }
int bcu_graph_instantiate(void **exec, void *graph) {
  return p_cuGraphInstantiateWithFlags(exec, graph, 0);
}
int bcu_graph_launch(void *exec, void *s) { return p_cuGraphLaunch(exec, s); }
int bcu_graph_exec_destroy(void *exec) { return p_cuGraphExecDestroy(exec); }
int bcu_graph_destroy(void *graph) { return p_cuGraphDestroy(graph); }

int bcu_event_create(void **ev) { return p_cuEventCreate(ev, 0); }
// 2 is CU_EVENT_DISABLE_TIMING: an event only ordered against, never timed.
int bcu_event_create_sync(void **ev) { return p_cuEventCreate(ev, 2); }
int bcu_stream_wait_event(void *s, void *ev) { return p_cuStreamWaitEvent(s, ev, 0); }
int bcu_event_destroy(void *ev) { return p_cuEventDestroy(ev); }
int bcu_event_record(void *ev, void *s) { return p_cuEventRecord(ev, s); }
int bcu_event_sync(void *ev) { return p_cuEventSynchronize(ev); }
int bcu_event_elapsed(float *ms, void *a, void *b) { return p_cuEventElapsedTime(ms, a, b); }
