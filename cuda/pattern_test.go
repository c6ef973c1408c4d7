package cuda

import (
	"crypto/rand"
	"errors"
	"fmt"
	"runtime"
	"testing"
)

// BenchmarkGemvPattern asks what keeps the one-token mat-vec from a plain
// read's rate: its arithmetic, or where and in what order it reads. On
// each 7B linear's shape, over copies of random weights (past L2), 32 or
// 64 launches a graph: the engine's awq_gemv_g128_n1; gemv_pattern
// (stream.cu) with the engine's loads and arithmetic (l0_c1, the same
// time as the engine's kernel), its loads only (c0), the group's MMAs on
// two or four chains (c2, c4: other bits), a group-major layout (l1), a
// rolling L2 prefetch PF groups ahead (pf3, pf4, pf6), each held to the
// engine kernel's blocks a multiprocessor by unused shared memory; and
// stream_read of the same bytes. Session 34, runs 277-283.
func BenchmarkGemvPattern(b *testing.B) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	d, err := openDevice(0)
	if errors.Is(err, ErrNoGPU) {
		b.Skip(err.Error())
	}
	if err != nil {
		b.Fatal(err)
	}
	defer d.close() // frees every allocation below
	shapes := []struct {
		name       string
		in, out    int
		perSM      int // the engine kernel's blocks a multiprocessor (registers)
		copies     int
		launches   int
		warpsCheck int
	}{
		{"gate_up", 4096, 28672, 5, 8, 32, 4},
		{"down", 14336, 4096, 2, 16, 32, 8},
		{"qkv", 4096, 6144, 5, 32, 64, 4},
		{"o_proj", 4096, 4096, 2, 48, 64, 8},
	}
	alloc := func(bytes int64, what string) devPtr {
		p, err := d.alloc(bytes, what)
		if err != nil {
			b.Fatal(err)
		}
		return p
	}
	const bufBytes = 520 << 20
	buf := alloc(bufBytes, "pattern weights")
	slab := make([]byte, 8<<20)
	rand.Read(slab)
	for i := 1; i < len(slab); i += 2 {
		slab[i] &= 0x3b // every fp16 (scales, zeros) finite
	}
	for off := 0; off < bufBytes; off += len(slab) {
		if err := d.upload(buf.at(off), slab[:min(len(slab), bufBytes-off)]); err != nil {
			b.Fatal(err)
		}
	}
	xb := make([]byte, 2*14336)
	for i := range 14336 {
		xb[2*i], xb[2*i+1] = 0, 0x3c // 1.0
	}
	x, y, ws := alloc(int64(len(xb)), "pattern x"), alloc(2*28672, "pattern y"), alloc(256, "pattern ws")
	if err := d.upload(x, xb); err != nil {
		b.Fatal(err)
	}
	sink := alloc(int64(4*4*d.sms), "pattern sink")
	sb := &streamBench{d: d, buf: buf, sink: sink, maxBlocks: 4 * d.sms}
	for _, sh := range shapes {
		p := &awqPacked{In: sh.in, Out: sh.out, Group: 128}
		bytes := (packedBytes(p) + 4095) &^ 4095
		if int64(sh.copies)*bytes > bufBytes {
			b.Fatalf("%s: %d copies of %d bytes", sh.name, sh.copies, bytes)
		}
		warps := awqGemvWarps(p, 1)
		if warps != sh.warpsCheck {
			b.Fatalf("%s: %d warps, want %d", sh.name, warps, sh.warpsCheck)
		}
		stripes := awqOutPad(sh.out) / awqStripe
		// Shared memory that allows perSM blocks and not one more: a
		// multiprocessor has 1 KB more than a block may opt into, and the
		// driver keeps 1 KB a block.
		pin := uint32((d.sharedOptin+1<<10)/sh.perSM - 1<<10 - 512)
		ls := launchShape{Grid: [3]uint32{uint32(stripes)}, Block: [3]uint32{uint32(32 * warps)}}
		kernels := []struct {
			name   string
			shared uint32
		}{
			{"awq_gemv_g128_n1", uint32(warps * 4 * 32 * 4)},
			{"gemv_pattern_l0_c1", pin},
			{"gemv_pattern_l0_c0", pin},
			{"gemv_pattern_l1_c1", pin},
			{"gemv_pattern_l1_c0", pin},
			{"gemv_pattern_l0_c2", pin},
			{"gemv_pattern_l0_c4", pin},
			{"stream_read", 0},
			{"gemv_pattern_pf3", pin},
			{"gemv_pattern_pf4", pin},
			{"gemv_pattern_pf6", pin},
		}
		for _, k := range kernels {
			// The PTX modules load on first use, never during a capture.
			if _, err := d.function(k.name); err != nil {
				b.Fatal(err)
			}
			g, err := d.captureGraph("pattern", func() error {
				for i := range sh.launches {
					w := buf.at(int(int64(i%sh.copies) * bytes))
					switch k.name {
					case "stream_read":
						if err := sb.read(int64(i%sh.copies)*bytes, packedBytes(p), 0); err != nil {
							return err
						}
					case "awq_gemv_g128_n1":
						l := ls
						l.Shared = k.shared
						if err := d.launch(k.name, l, "pattern", w, x, y, ws, 1, sh.in, sh.out); err != nil {
							return err
						}
					default:
						l := ls
						l.Shared = k.shared
						if err := d.launch(k.name, l, "pattern", w, x, y, sh.in, sh.out); err != nil {
							return err
						}
					}
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
			measureSub(b, d, fmt.Sprintf("%s/%s", sh.name, k.name), func() (float64, error) {
				return sb.time(func() error { return d.launchGraph(g, "pattern") })
			}, func(b *testing.B, ms float64) {
				us := ms * 1e3 / float64(sh.launches)
				b.ReportMetric(us, "us/kernel")
				b.ReportMetric(float64(packedBytes(p))/us/1e3, "GB/s")
			})
			g.destroy()
		}
	}
}
