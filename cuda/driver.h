// The narrow C surface over the NVIDIA driver API (libcuda.so.1), opened at
// run time with dlopen so that nothing CUDA is needed to build. Handles are
// opaque; every function returns the driver's status code (0 = success).
#ifndef BRIEF_DRIVER_H
#define BRIEF_DRIVER_H

#include <stddef.h>
#include <stdint.h>

typedef uint64_t bdev_ptr;  // CUdeviceptr

// bcu_open loads libcuda.so.1 and resolves every function used below. It
// returns 0, or -1 with a message in err.
int bcu_open(char *err, size_t errlen);

// bcu_error_name and bcu_error_string describe a status code ("" if unknown).
const char *bcu_error_name(int code);
const char *bcu_error_string(int code);

int bcu_init(void);
int bcu_device_count(int *n);
int bcu_device_get(int *dev, int ordinal);
int bcu_device_name(char *name, int len, int dev);
int bcu_device_attr(int *v, int attr, int dev);
// bcu_device_pci_bus_id writes the device's PCI bus id,
// "domain:bus:device.function" in hex.
int bcu_device_pci_bus_id(char *id, int len, int dev);
int bcu_device_total_mem(size_t *bytes, int dev);

int bcu_ctx_create(void **ctx, int dev);
int bcu_ctx_destroy(void *ctx);
int bcu_ctx_set_current(void *ctx);

int bcu_module_load(void **mod, const void *image);
// bcu_module_load_log is bcu_module_load that leaves the JIT compiler's
// error messages (PTX images) in log, NUL-terminated.
int bcu_module_load_log(void **mod, const void *image, char *log, size_t loglen);
int bcu_module_function(void **fn, void *mod, const char *name);
int bcu_module_unload(void *mod);
int bcu_func_set_max_dynamic_shared(void *fn, int bytes);

int bcu_mem_alloc(bdev_ptr *p, size_t bytes);
int bcu_mem_free(bdev_ptr p);
int bcu_mem_info(size_t *free_bytes, size_t *total_bytes);
int bcu_memcpy_dtoh(void *dst, bdev_ptr src, size_t bytes);
int bcu_memcpy_htod_async(bdev_ptr dst, const void *src, size_t bytes, void *stream);
int bcu_memcpy_dtoh_async(void *dst, bdev_ptr src, size_t bytes, void *stream);
// bcu_mem_alloc_host allocates page-locked host memory, which asynchronous
// copies from the device need in order not to wait for the stream.
int bcu_mem_alloc_host(void **p, size_t bytes);
int bcu_mem_free_host(void *p);
// bcu_mem_host_device_ptr is the address kernels use for page-locked host
// memory from bcu_mem_alloc_host (the same one where addressing is unified).
int bcu_mem_host_device_ptr(bdev_ptr *d, void *p);
int bcu_memset_d8(bdev_ptr dst, unsigned char v, size_t bytes);
int bcu_memset_d8_async(bdev_ptr dst, unsigned char v, size_t bytes, void *stream);

int bcu_stream_create(void **s);
int bcu_stream_destroy(void *s);
int bcu_stream_sync(void *s);

// bcu_launch launches fn with nargs parameters packed in args; the i-th
// parameter's bytes start at args + 8*i. overlap launches it with
// programmatic stream serialization (cuLaunchKernelEx, CUDA 12): it may
// start before the previous kernel on the stream ends, and must wait for it
// with griddepcontrol.wait (common.cuh: grid_dep_wait). cooperative
// launches it so that every block is resident at once, or fails (a kernel
// with grid barriers needs that), and not overlapped; it needs
// cuLaunchKernelEx.
int bcu_launch(void *fn, unsigned gx, unsigned gy, unsigned gz,
               unsigned bx, unsigned by, unsigned bz, unsigned shared,
               void *stream, void *args, int nargs, int overlap, int cooperative);

// bcu_has_launch_ex reports whether the driver has cuLaunchKernelEx.
int bcu_has_launch_ex(void);

int bcu_capture_begin(void *s);
int bcu_capture_end(void *s, void **graph);
int bcu_graph_instantiate(void **exec, void *graph);
int bcu_graph_launch(void *exec, void *s);
int bcu_graph_exec_destroy(void *exec);
int bcu_graph_destroy(void *graph);

int bcu_event_create(void **ev);
int bcu_event_create_sync(void **ev);
// bcu_stream_wait_event makes later work on s wait for ev's last record.
int bcu_stream_wait_event(void *s, void *ev);
int bcu_event_destroy(void *ev);
int bcu_event_record(void *ev, void *s);
int bcu_event_sync(void *ev);
int bcu_event_elapsed(float *ms, void *start, void *end);

#endif
