package cuda

// Loading the embedded kernels into the device's context: the fatbins at
// open, the PTX modules (fatbin.go: ptxImages) when one of their kernels
// is first asked for, and the lookup of a kernel by name.

/*
#include <stdlib.h>
#include "driver.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"strings"
	"unsafe"
)

// loadModules loads every embedded fatbin. The PTX modules are loaded on
// demand (function).
func (d *device) loadModules() error {
	images, err := fatbins()
	if err != nil {
		return err
	}
	for _, img := range images {
		// The driver reads the image during the call; C memory keeps it
		// aligned and out of the Go heap.
		p := C.CBytes(img.data)
		var m unsafe.Pointer
		code := C.bcu_module_load(&m, p)
		C.free(p)
		if err := check(code, "load kernels %s on %s (sm_%d)", img.name, d.name, d.cc); err != nil {
			return err
		}
		d.modules = append(d.modules, m)
	}
	return nil
}

// loadPTXModules has the driver compile the PTX modules built for this
// chip (ptxImages: sm_90's on sm_90, none elsewhere), once. Their kernels
// have fallbacks in the fatbins (the wgmma GEMM: the mma.sync one), so a
// failure does not fail the device: it leaves d.jitErr set, with each
// module's name and the compiler's messages.
func (d *device) loadPTXModules() {
	if d.ptxTried {
		return
	}
	d.ptxTried = true
	ptx, err := ptxImages(d.cc)
	if err != nil {
		d.jitErr = err
		return
	}
	var errs []error
	for _, img := range ptx {
		m, err := d.loadPTX(img)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		d.modules = append(d.modules, m)
	}
	d.jitErr = errors.Join(errs...)
}

// loadPTX has the driver compile one PTX module. A failure is returned with
// the compiler's messages, for the caller to report and carry on without
// the module's kernels (the fatbins have fallbacks for them).
func (d *device) loadPTX(img fatbinImage) (unsafe.Pointer, error) {
	p := C.CBytes(img.data)
	defer C.free(p)
	var log [4096]C.char
	var m unsafe.Pointer
	code := C.bcu_module_load_log(&m, p, &log[0], C.size_t(len(log)))
	if err := check(code, "compile PTX kernels %s on %s (sm_%d)", img.name, d.name, d.cc); err != nil {
		if msg := strings.TrimSpace(C.GoString(&log[0])); msg != "" {
			return nil, fmt.Errorf("%w:\n%s", err, msg)
		}
		return nil, err
	}
	return m, nil
}

// hasKernel reports whether an embedded module defines kernel name for
// this chip (compiling the PTX modules if need be: see function).
func (d *device) hasKernel(name string) bool {
	_, err := d.function(name)
	return err == nil
}

// function finds a kernel by name in the loaded modules. A name the
// fatbins lack has the PTX modules for this chip compiled first (once,
// outside graph captures): an engine that never asks for them pays no
// compile.
func (d *device) function(name string) (unsafe.Pointer, error) {
	if f, ok := d.funcs[name]; ok {
		return f, nil
	}
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	for pass := 0; pass < 2; pass++ {
		for _, m := range d.modules {
			var f unsafe.Pointer
			if C.bcu_module_function(&f, m, cname) == 0 {
				d.funcs[name] = f
				return f, nil
			}
		}
		if d.ptxTried || d.capture {
			break
		}
		d.loadPTXModules()
	}
	if d.jitErr != nil {
		return nil, fmt.Errorf("kernel %s not found in the embedded kernels: %w", name, d.jitErr)
	}
	return nil, fmt.Errorf("kernel %s not found in the embedded kernels (run make -C cuda)", name)
}
