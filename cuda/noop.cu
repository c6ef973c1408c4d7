// An empty kernel. Benchmarks add it after a step's launches (driver.go's
// extraLaunches) to measure what one more kernel boundary costs in a
// replayed step, which bounds what fusing a kernel into its neighbour saves.
#include "common.cuh"

// grid (1), block 32.
extern "C" __global__ void noop_boundary() {
  grid_dep_launch();
  grid_dep_wait();
}
